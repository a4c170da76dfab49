"""Speed options for the training step, each with its equivalence to the official computation.

reference: fp32, NCHW, eager, one teacher call per view: the official computation.
optimized: what measurably helps on the device (see `disco-bench perf`), in fp32 unless asked:
  grouped_bn     the per-GPU (32-image) BN groups computed in one call instead of G sequential
                 calls: exact up to rounding, running statistics included (disco/grouped_bn.py);
                 CUDA only (no gain measured on CPU).
  channels_last  exact up to fp32 rounding (other conv algorithms). Per encoder, where it pays: every
                 encoder on CUDA (NHWC tensor cores) and under bf16 autocast on CPU (oneDNN's bf16
                 convolutions are NHWC: the ResNet-50 step at 32 px 1.8x faster than fp32 NCHW with
                 NHWC weights and inputs, 1.4x with NCHW inputs, on a 2-core AMD EPYC with avx512_bf16);
                 in fp32 on CPU only encoders with depthwise convolutions (EfficientNet, MobileNet:
                 ~2x training, ~4x inference), since the ResNet step was ~5% slower in NHWC on the
                 reference CPU. A conv follows its weight's format, so fp32 CPU inputs stay NCHW.
  bf16 autocast  not a speed mode but a precision (`precision: bf16`, in the stage key): an explicit,
                 documented deviation, off by default since the official code is fp32 throughout;
                 embeddings agree to ~1e-2; the loss is computed in fp32. On a CPU without AMX it pays
                 for ResNets (above) but halves the EfficientNet-B0 step (depthwise convolutions).
  compile        torch.compile of student and teacher: exact up to rounding; opt-in (compile time).
  batched_augment the two views drawn on the device for a whole uint8 batch in the training process
                 (kornia, disco/data/batched_augment.py) instead of per image in loader workers:
                 equal in distribution, a different random stream; in-memory tensor datasets only
                 (the tiny profile). On 2 CPU cores a loader worker also steals a core from the step.
  teacher_batched both views in one teacher call: exact only with an eval-mode teacher BN; with the
                 faithful train-mode BN it changes the statistics, so it is refused there.
fp32 is fp32: on Ampere and newer GPUs PyTorch runs fp32 convolutions in TF32 by default
(torch.backends.cudnn.allow_tf32), which the official code predates; every stage runs with TF32 off
(`strict_fp32`), and its result records the flags it ran under (provenance.hardware.tf32).
The teacher runs under no_grad, not inference_mode: its embeddings are the MSE targets, which
autograd saves for the backward pass, and inference tensors cannot be saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn

MODES = ("reference", "optimized")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class SpeedOptions:
    grouped_bn: bool = False
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    teacher_batched: bool = False
    batched_augment: bool = False
    channels_last_input: bool = False  # CUDA: hand the views over in NHWC (every encoder is NHWC there)
    teacher_bf16: bool = False  # a distillation stage's frozen teacher in bf16 (its profile's teacher_precision)

    @classmethod
    def for_mode(
        cls,
        mode: str,
        device: torch.device,
        teacher_bn: str = "train",
        compile_models: bool = False,
        precision: str = "fp32",
        teacher_precision: str | None = None,
    ) -> SpeedOptions:
        if mode not in MODES:
            raise ValueError(f"unknown speed mode '{mode}' ({', '.join(MODES)})")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}' ({', '.join(PRECISIONS)})")
        bf16 = precision == "bf16"
        teacher_bf16 = (teacher_precision or precision) == "bf16"
        if teacher_precision is not None and teacher_precision not in PRECISIONS:
            raise ValueError(f"unknown teacher precision '{teacher_precision}' ({', '.join(PRECISIONS)})")
        if mode == "reference":
            return cls(bf16=bf16, teacher_bf16=teacher_bf16)
        # grouped BN measured no faster on CPU (the per-group calls are already large enough
        # there relative to the Python overhead): on only where it pays, on GPUs
        cuda = device.type == "cuda"
        return cls(
            grouped_bn=cuda,
            channels_last=True,
            channels_last_input=cuda or bf16 or teacher_bf16,
            bf16=bf16,
            teacher_bf16=teacher_bf16,
            compile=compile_models,
            teacher_batched=teacher_bn == "eval",
            batched_augment=True,
        )

    def describe(self) -> dict[str, bool]:
        return asdict(self)

    def autocast(self, device: torch.device) -> AbstractContextManager[None]:
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def teacher_autocast(self, device: torch.device) -> AbstractContextManager[None]:
        """The frozen teacher's forward: in bf16 where the stage or its teacher runs in bf16."""
        bf16 = self.bf16 or self.teacher_bf16
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last_input and x.dim() == 4 else x


def tf32_flags() -> dict[str, bool]:
    return {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}


@contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off for convolutions and matmuls (fp32 as the official code computed it), restored after."""
    before = tf32_flags()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before["cudnn"], before["matmul"]


def has_depthwise_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in module.modules())


def wants_channels_last(encoder: nn.Module, device: torch.device, bf16: bool = False) -> bool:
    return device.type == "cuda" or bf16 or has_depthwise_conv(encoder)


def to_channels_last_where_it_pays(
    module: nn.Module, device: torch.device, bf16: bool = False, teacher_bf16: bool = False
) -> None:
    """Each encoder inside `module` (student, key encoder, teacher) in NHWC where that pays on `device`."""
    from disco.models import Encoder

    encoders: list[nn.Module] = [m for m in module.modules() if isinstance(m, Encoder)] or [module]
    teacher = getattr(module, "teacher", None)
    for encoder in encoders:
        if wants_channels_last(encoder, device, bf16 or (teacher_bf16 and encoder is teacher)):
            encoder.to(memory_format=torch.channels_last)


def apply_to_modules(modules: list[nn.Module], options: SpeedOptions, device: torch.device) -> None:
    from disco.grouped_bn import enable_grouped_bn

    for module in modules:
        if options.grouped_bn:
            enable_grouped_bn(module)
            for contrast in (m for m in module.modules() if hasattr(m, "fused_bn_groups")):
                setattr(contrast, "fused_bn_groups", True)  # noqa: B010  (an attribute of MomentumContrast)
        if options.channels_last:
            to_channels_last_where_it_pays(module, device, options.bf16, options.teacher_bf16)
        if options.compile:
            module.compile()
