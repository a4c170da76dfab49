"""DisCo: MoCo-v2 on the student plus MSE to a frozen teacher's embedding on both views
(docs/protocol.md 1.3-1.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from disco.contrast import MomentumContrast
from disco.losses import disco_loss
from disco.methods.mocov2 import MoCoV2Config
from disco.shuffle_bn import encode_in_groups
from disco.speed import SpeedOptions

TEACHER_BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class DisCoConfig(MoCoV2Config):
    # None: the official literal MSELoss(reduction='sum') over the local batch; a number w:
    # w * per-sample mean. The paper's effective weight is 32 on any GPU layout.
    mse_per_sample_weight: float | None = 32.0
    ce_weight: float = 1.0
    # "train": faithful, the frozen teacher normalises with per-GPU batch statistics and its
    # running stats drift, as in the official code; "eval": the clean variant.
    teacher_bn: str = "train"

    def validate(self, batch_size: int) -> None:
        super().validate(batch_size)
        if self.teacher_bn not in TEACHER_BN_MODES:
            raise ValueError(f"teacher_bn must be one of {TEACHER_BN_MODES}, got '{self.teacher_bn}'")
        if self.mse_per_sample_weight is not None and self.mse_per_sample_weight < 0:
            raise ValueError("mse_per_sample_weight must be >= 0 or null (literal sum)")


class DisCo(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module, config: DisCoConfig, speed: SpeedOptions | None = None):
        super().__init__()
        self.config = config
        self.speed = speed or SpeedOptions()
        if self.speed.teacher_batched and config.teacher_bn != "eval":
            raise ValueError(
                "teacher_batched changes the faithful train-mode teacher BN statistics; use teacher_bn: eval"
            )
        self.contrast = MomentumContrast(
            student, config.queue_size, config.momentum, config.temperature, config.bn_group_size
        )
        self.teacher = teacher
        for param in self.teacher.parameters():
            param.requires_grad = False

    @property
    def student(self) -> nn.Module:
        return self.contrast.encoder_q

    def train(self, mode: bool = True) -> DisCo:
        super().train(mode)
        if self.config.teacher_bn == "eval":
            self.teacher.eval()
        return self

    @torch.no_grad()
    def embed_teacher(self, x: torch.Tensor) -> torch.Tensor:
        with torch.profiler.record_function("teacher_forward"):
            groups = self.contrast.bn_groups(x.shape[0])
            return F.normalize(encode_in_groups(self.teacher, x, groups, self.contrast.fused_bn_groups).float(), dim=1)

    @torch.no_grad()
    def teacher_targets_batched(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views in one teacher call: exact because the teacher BN is then in eval mode."""
        both = self.embed_teacher(torch.cat([view1, view2]))
        return both[: len(view1)], both[len(view1) :]

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        view1, view2 = self.speed.prepare_input(view1), self.speed.prepare_input(view2)
        device = view1.device
        with self.speed.autocast(device), torch.profiler.record_function("student_forward"):
            q = self.contrast.embed_query(view1)
            qk = self.contrast.embed_query(view2)
        with torch.no_grad(), self.speed.autocast(device):
            # the official order: EMA, teacher(view2), shuffled keys, teacher(view1); the teacher's
            # train-mode BN makes the order of its two calls part of the computation
            self.contrast.momentum_update()
            if self.speed.teacher_batched:
                teacher_q, teacher_qk = self.teacher_targets_batched(view1, view2)
                k = self.contrast.embed_keys(view2)
            else:
                teacher_qk = self.embed_teacher(view2)
                k = self.contrast.embed_keys(view2)
                teacher_q = self.embed_teacher(view1)
        q, qk, k = q.float(), qk.float(), k.float()
        logits = self.contrast.logits(q, k)
        terms = disco_loss(
            logits, q, qk, teacher_q, teacher_qk, self.config.mse_per_sample_weight, self.config.ce_weight
        )
        self.contrast.enqueue(k)
        return {"loss": terms["loss"], **{name: value.detach() for name, value in terms.items() if name != "loss"}}
