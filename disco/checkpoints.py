"""Load official DisCo / MoCo-v2 / SwAV-family / main_lincls checkpoints, and our own, into `Encoder`s.

The load is strict on everything it keeps: a missing, unexpected or mis-shaped key raises
`CheckpointMismatch`, so a checkpoint for another architecture can never leave a backbone randomly
initialised. What it deliberately drops (key encoder, teacher, queue, prototypes, a head not asked
for) is listed in the `LoadReport`. Formats: docs/protocol.md sections 5.1-5.2.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from disco.errors import CheckpointError, first_line
from disco.models import ARCHS, Encoder, arch_spec, create_backbone, feature_dim, head_attr

StateDict = dict[str, torch.Tensor]
CheckpointSource = str | Path | Mapping[str, Any]

FORMATS: dict[str, str] = {
    "mocov2": "MoCo-v2 teacher/baseline (moco/main_moco.py: module.encoder_q/encoder_k, queue)",
    "disco": "DisCo student (DisCo/main.py: module.encoder_q/encoder_k, teacher_encoder_q/k, queue)",
    "swav": "SwAV / DeepCluster-v2 / SeLa-v2 (module.<resnet>, projection_head.{0,1,3}, prototypes)",
    "lincls": "linear-evaluation or plain backbone checkpoint (main_lincls.py: module.<backbone> [+ linear classifier])",
    "disco-bench": "disco-bench encoder checkpoint ({'encoder', 'arch', 'head'})",
    "disco-bench-train": "disco-bench training checkpoint ({'method': ...})",
}

# The official scripts record `args.arch`; these are their names for our architectures.
OFFICIAL_ARCH_NAMES: dict[str, str] = {
    "efficientb0": "effb0",
    "efficientb1": "effb1",
    "efficientnet-b0": "effb0",
    "mobilenetv3": "mbv3",
    "SWAVresnet50": "r50",
    "DCresnet50": "r50",
    "SELAresnet50": "r50",
}

_SHOWN_KEYS = 3  # keys listed per category in a one-line error


class CheckpointMismatch(CheckpointError):
    """The checkpoint's tensors do not fit the requested architecture/head exactly."""


@dataclass
class LoadReport:
    path: str
    format: str
    arch: str
    head: str  # "mocov2" | "disco" | "swav" | "linear" | "none" | our recorded head name | "mlp"
    head_layout: str  # layer widths, e.g. "1280-2048-128"; "" without a head
    loaded: int  # tensors copied into the encoder
    dropped: dict[str, list[str]] = field(default_factory=dict)  # group -> keys left out (after stripping `module.`)
    recorded_arch: str | None = None
    epoch: int | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        dropped = ", ".join(f"{group} {len(keys)}" for group, keys in self.dropped.items()) or "nothing"
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        head = f"{self.head} {self.head_layout}".strip()
        return f"loaded {self.loaded} tensors into {self.arch} (head: {head}) from {self.format} checkpoint {self.path}{epoch}; dropped: {dropped}"


@dataclass
class QueueState:
    queue: torch.Tensor  # [dim, K], columns L2-normalised keys
    ptr: int


@dataclass
class _Parsed:
    format: str
    encoder: StateDict  # backbone naming; the head under the checkpoint's own slot (swav: projection_head.*)
    dropped: dict[str, list[str]]
    stray: list[str]  # keys of no known group: reported as unexpected
    recorded_arch: str | None
    recorded_head: str | None
    epoch: int | None
    queue: StateDict


# ---------------------------------------------------------------- reading and format detection


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load on CPU with weights_only (no arbitrary code from a downloaded file)."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint file not found: {file} (give the path of a .pth/.pth.tar/.pt file)")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0][:160]
        raise CheckpointError(
            f"checkpoint {file} holds Python objects other than tensors and plain containers ({reason}); re-save only its state_dict"
        ) from None
    except Exception as exc:  # anything else the parser meets in a foreign or torn file (EOFError, KeyError, ...)
        raise CheckpointError(
            f"cannot read checkpoint {file}: {first_line(exc)} (truncated download or not a torch file?)"
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {file} holds a {type(obj).__name__}, not a dict of tensors")
    return dict(obj)


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return dict(state)


def _tensor_dict(state: Mapping[str, Any], where: str) -> StateDict:
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: entries {bad[:_SHOWN_KEYS]} are not tensors; this is not a state_dict")
    return dict(state)


def _raw_state(ckpt: Mapping[str, Any]) -> StateDict:
    inner = ckpt.get("state_dict")
    state = inner if isinstance(inner, Mapping) else ckpt
    return _tensor_dict(_strip_prefix(state, "module."), "checkpoint state_dict")


def detect_format(ckpt: Mapping[str, Any]) -> str:
    """One of FORMATS, from the key layout (docs/protocol.md 5.1)."""
    if isinstance(ckpt.get("encoder"), Mapping) and "arch" in ckpt:
        return "disco-bench"
    if isinstance(ckpt.get("method"), Mapping) and any(
        str(k).startswith("contrast.encoder_q.") for k in ckpt["method"]
    ):
        return "disco-bench-train"
    inner = ckpt.get("state_dict")
    state = _strip_prefix(inner if isinstance(inner, Mapping) else ckpt, "module.")
    keys = [str(key) for key in state]
    if any(key.startswith("teacher_encoder_q.") for key in keys):
        return "disco"
    if any(key.startswith("encoder_q.") for key in keys):
        return "mocov2"
    if any(key.startswith("projection_head.") for key in keys):
        return "swav"
    if any(key.endswith(".weight") for key in keys):  # a backbone, with or without its linear classifier
        return "lincls"
    shown = ", ".join(keys[:4]) or "no keys"
    raise CheckpointError(f"unknown checkpoint format (first keys: {shown}); expected one of: {', '.join(FORMATS)}")


def _split_groups(
    state: StateDict, keep: str, drop: tuple[str, ...]
) -> tuple[StateDict, dict[str, list[str]], list[str]]:
    """Keep `keep.*` (prefix stripped); group the `drop` prefixes; anything else is stray."""
    kept: StateDict = {}
    dropped: dict[str, list[str]] = {}
    stray: list[str] = []
    for key, value in state.items():
        group = key.split(".")[0]
        if group == keep:
            kept[key[len(keep) + 1 :]] = value
        elif group in drop:
            dropped.setdefault("queue" if group.startswith("queue") else group, []).append(key)
        else:
            stray.append(key)
    return kept, dropped, stray


def _meta(ckpt: Mapping[str, Any]) -> tuple[str | None, int | None]:
    arch = ckpt.get("arch")
    epoch = ckpt.get("epoch")
    return (str(arch) if isinstance(arch, str) else None, int(epoch) if isinstance(epoch, int) else None)


def _parse_official(ckpt: Mapping[str, Any], fmt: str) -> _Parsed:
    state = _raw_state(ckpt)
    recorded_arch, epoch = _meta(ckpt)
    queue: dict[str, torch.Tensor] = {name: state[name] for name in ("queue", "queue_ptr") if name in state}
    if fmt in ("mocov2", "disco"):
        drop = ("encoder_k", "queue", "queue_ptr") + (
            ("teacher_encoder_q", "teacher_encoder_k") if fmt == "disco" else ()
        )
        encoder, dropped, stray = _split_groups(state, "encoder_q", drop)
        return _Parsed(fmt, encoder, dropped, stray, recorded_arch, fmt, epoch, queue)
    dropped = {}
    encoder = dict(state)
    if fmt == "swav":
        prototypes = [key for key in state if key.startswith("prototypes")]
        if prototypes:  # SwAV's cluster prototypes: not part of the embedding DisCo distils
            dropped["prototypes"] = prototypes
        encoder = {key: value for key, value in state.items() if not key.startswith("prototypes")}
    return _Parsed(fmt, encoder, dropped, [], recorded_arch, "swav" if fmt == "swav" else "linear", epoch, {})


def _parse_train_method(method: StateDict) -> tuple[StateDict, dict[str, list[str]], list[str], StateDict]:
    """Our training checkpoint: contrast.encoder_q.backbone.* is the student; the rest is dropped."""
    encoder: StateDict = {}
    dropped: dict[str, list[str]] = {}
    stray: list[str] = []
    for key, value in method.items():
        if key.startswith("contrast.encoder_q.backbone."):
            encoder[key[len("contrast.encoder_q.backbone.") :]] = value
        elif key.startswith(("contrast.encoder_k.", "contrast.queue", "teacher.")):
            group = key.split(".")[1 if key.startswith("contrast.") else 0]
            dropped.setdefault("queue" if group.startswith("queue") else group, []).append(key)
        else:
            stray.append(key)
    queue = {name: method[f"contrast.{name}"] for name in ("queue", "queue_ptr") if f"contrast.{name}" in method}
    return encoder, dropped, stray, queue


def _parse_ours(ckpt: Mapping[str, Any], fmt: str) -> _Parsed:
    recorded_arch, epoch = _meta(ckpt)
    if fmt == "disco-bench":
        encoder = _tensor_dict(_strip_prefix(ckpt["encoder"], "backbone."), "checkpoint 'encoder'")
        head = ckpt.get("head")
        return _Parsed(fmt, encoder, {}, [], recorded_arch, str(head) if head else None, epoch, {})
    encoder, dropped, stray, queue = _parse_train_method(_tensor_dict(ckpt["method"], "checkpoint 'method'"))
    return _Parsed(fmt, encoder, dropped, stray, recorded_arch, None, epoch, queue)


def parse_checkpoint(ckpt: Mapping[str, Any]) -> _Parsed:
    fmt = detect_format(ckpt)
    return _parse_ours(ckpt, fmt) if fmt.startswith("disco-bench") else _parse_official(ckpt, fmt)


# ---------------------------------------------------------------- architecture and head


def _canonical_arch(name: str) -> str | None:
    try:
        return arch_spec(OFFICIAL_ARCH_NAMES.get(name, name)).name
    except KeyError:
        return None


def _resolve_arch(requested: str | None, parsed: _Parsed, where: str) -> str:
    recorded = _canonical_arch(parsed.recorded_arch) if parsed.recorded_arch else None
    if requested is not None:
        try:
            arch = arch_spec(requested).name
        except KeyError as exc:
            raise CheckpointError(str(exc.args[0])) from None
        if recorded is not None and recorded != arch:
            raise CheckpointMismatch(
                f"checkpoint {where} was trained as '{parsed.recorded_arch}' ({recorded}), not {arch}; pass arch '{recorded}'"
            )
        return arch
    if recorded is not None:
        return recorded
    if parsed.recorded_arch:
        raise CheckpointError(
            f"checkpoint {where} records arch '{parsed.recorded_arch}', which disco-bench does not know; pass one of {', '.join(ARCHS)}"
        )
    if parsed.format == "swav" and "conv1.weight" in parsed.encoder:
        return "r50w2" if parsed.encoder["conv1.weight"].shape[0] == 128 else "r50"
    raise CheckpointError(
        f"checkpoint {where} ({parsed.format}) does not record its architecture; pass one explicitly (e.g. --arch r50)"
    )


def _head_from_state(head_state: StateDict, in_dim: int, where: str) -> nn.Module:
    """Rebuild the head the checkpoint holds; in_dim comes from our backbone so a wrong arch shows as a shape mismatch."""
    keys = set(head_state)
    if keys == {"weight", "bias"}:
        return nn.Linear(in_dim, head_state["weight"].shape[0])
    if {"0.weight", "2.weight"} <= keys and not any(key.startswith("1.") for key in keys):
        hidden, out_dim = head_state["0.weight"].shape[0], head_state["2.weight"].shape[0]
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
    if {"0.weight", "1.running_mean", "3.weight"} <= keys:
        hidden, out_dim = head_state["0.weight"].shape[0], head_state["3.weight"].shape[0]
        return nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )
    if not keys:
        raise CheckpointMismatch(
            f"checkpoint {where} has no projection head or classifier; load it with with_head=False"
        )
    raise CheckpointMismatch(
        f"checkpoint {where}: unrecognised head layout {sorted(keys)[:6]}; expected Linear, Linear-ReLU-Linear or Linear-BN-ReLU-Linear"
    )


def _split_head(parsed: _Parsed, slot: str) -> tuple[StateDict, StateDict, str, dict[str, list[str]]]:
    """(backbone tensors, head tensors relative to the head module, the head's key prefix, extra dropped groups)."""
    head_prefix = "projection_head." if parsed.format == "swav" else f"{slot}."
    backbone = {key: value for key, value in parsed.encoder.items() if not key.startswith(head_prefix)}
    head = {key[len(head_prefix) :]: value for key, value in parsed.encoder.items() if key.startswith(head_prefix)}
    extra: dict[str, list[str]] = {}
    if parsed.format == "swav":
        unused = [key for key in backbone if key.startswith(f"{slot}.")]
        if unused:  # the SwAV-EfficientNet keeps an unused Linear(1280, 128) classifier (section 3.6)
            extra["unused classifier"] = unused
            backbone = {key: value for key, value in backbone.items() if not key.startswith(f"{slot}.")}
    return backbone, head, head_prefix, extra


def _head_layout(head: nn.Module | None) -> str:
    if head is None:
        return ""
    linears = [module for module in head.modules() if isinstance(module, nn.Linear)]
    widths = [linears[0].in_features] + [layer.out_features for layer in linears]
    return "-".join(str(width) for width in widths) + (
        " (BN)" if any(isinstance(m, nn.BatchNorm1d) for m in head.modules()) else ""
    )


def _shape(tensor: torch.Tensor) -> str:
    return "[" + ",".join(str(size) for size in tensor.shape) + "]"


def _listing(keys: list[str]) -> str:
    more = f", +{len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def check_state_dict(
    given: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], what: str, hint: str = ""
) -> None:
    """Raise CheckpointMismatch (one line) unless `given` has exactly the keys and shapes of `expected`."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    shapes = [
        f"{key} checkpoint {_shape(given[key])} vs model {_shape(expected[key])}"
        for key in expected
        if key in given and given[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [
        f"{len(missing)} missing ({_listing(missing)})" if missing else "",
        f"{len(unexpected)} unexpected ({_listing(unexpected)})" if unexpected else "",
        f"{len(shapes)} shape mismatches ({_listing(shapes)})" if shapes else "",
    ]
    raise CheckpointMismatch(f"{what}: " + "; ".join(part for part in parts if part) + (f"; {hint}" if hint else ""))


# ---------------------------------------------------------------- public API


def _source(source: CheckpointSource) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, Mapping):
        return source, "<in-memory checkpoint>"
    return read_checkpoint(source), str(source)


def load_encoder(
    source: CheckpointSource,
    arch: str | None = None,
    *,
    with_head: bool,
    image_size: int | None = None,
    expect_format: str | None = None,
) -> tuple[Encoder, LoadReport]:
    """Build `arch` (None: the arch the checkpoint records) and load the checkpoint's query encoder strictly.

    with_head=True also loads the projection head (or, for lincls, the linear classifier) the
    checkpoint holds; with_head=False drops it (listed in the report) and returns a headless Encoder.
    expect_format: one of FORMATS that the file must have (e.g. a teacher's `checkpoint_format`).
    """
    ckpt, where = _source(source)
    parsed = parse_checkpoint(ckpt)
    if expect_format is not None and parsed.format != expect_format:
        raise CheckpointMismatch(
            f"checkpoint {where} is a {parsed.format} checkpoint ({FORMATS[parsed.format]}), but a {expect_format} one is expected "
            f"({FORMATS.get(expect_format, expect_format)}); point the entry at the right file or fix the teacher's checkpoint_format"
        )
    arch = _resolve_arch(arch, parsed, where)
    backbone = create_backbone(arch, image_size)
    slot = head_attr(backbone)
    backbone_state, head_state, head_prefix, dropped = _split_head(parsed, slot)
    dropped = {**parsed.dropped, **dropped}
    what = f"checkpoint {where} ({parsed.format}) does not fit {arch}"
    hint = "" if parsed.recorded_arch else "is it for another architecture? pass the arch it was trained with"
    stray = {key: torch.empty(0) for key in parsed.stray}  # keys of no known group: always unexpected
    if with_head and not head_state:
        check_state_dict({**backbone_state, **stray}, Encoder(backbone, None).backbone.state_dict(), what, hint)
        raise CheckpointMismatch(
            f"checkpoint {where} ({parsed.format}) has no projection head or classifier; load it with with_head=False"
        )
    head = _head_from_state(head_state, feature_dim(backbone), where) if with_head else None
    if head_state and not with_head:
        dropped["linear classifier" if parsed.format == "lincls" else "projection head"] = [
            head_prefix + key for key in head_state
        ]
    encoder = Encoder(backbone, head)
    given = {**backbone_state, **({f"{slot}.{key}": value for key, value in head_state.items()} if with_head else {})}
    renamed = f", its {head_prefix}* as {slot}.*" if with_head and head_prefix != f"{slot}." else ""
    check_state_dict(
        {**given, **stray}, encoder.backbone.state_dict(), what + f" (with_head={with_head}{renamed})", hint
    )
    encoder.backbone.load_state_dict(given, strict=True)
    head_kind = (parsed.recorded_head or "mlp") if with_head else "none"
    report = LoadReport(
        where,
        parsed.format,
        arch,
        head_kind,
        _head_layout(head),
        len(given),
        dropped,
        parsed.recorded_arch,
        parsed.epoch,
    )
    if with_head and parsed.format == "swav":
        report.notes.append("SwAV-family heads L2-normalise their output (normalize=True): use disco.models.embed")
    return encoder, report


@dataclass(frozen=True)
class CheckpointInfo:
    format: str
    arch: str | None  # recorded or inferred; None when the checkpoint does not say
    has_head: bool
    epoch: int | None
    groups: dict[str, int]  # dropped group -> tensor count


def inspect_checkpoint(source: CheckpointSource) -> CheckpointInfo:
    ckpt, where = _source(source)
    parsed = parse_checkpoint(ckpt)
    try:
        arch: str | None = _resolve_arch(None, parsed, where)
    except CheckpointError:
        arch = None
    head_prefixes = ("projection_head.",) if parsed.format == "swav" else ("fc.", "classifier.", "head.")
    has_head = any(key.startswith(head_prefixes) for key in parsed.encoder)
    return CheckpointInfo(
        parsed.format, arch, has_head, parsed.epoch, {group: len(keys) for group, keys in parsed.dropped.items()}
    )


def queue_from_checkpoint(source: CheckpointSource, dim: int = 128) -> QueueState | None:
    """The MoCo queue a checkpoint carries (None for formats without one).

    DisCo's teacher loading renames only `encoder` keys, so a MoCo-v2 teacher's `queue`/`queue_ptr`
    land in the student and DisCo starts from the teacher's last keys (docs/protocol.md 1.6).
    """
    ckpt, where = _source(source)
    parsed = parse_checkpoint(ckpt)
    if "queue" not in parsed.queue:
        return None
    queue = parsed.queue["queue"]
    if queue.ndim != 2 or queue.shape[0] != dim:
        raise CheckpointMismatch(f"checkpoint {where}: queue has shape {_shape(queue)}, expected [{dim}, K]")
    ptr_tensor = parsed.queue.get("queue_ptr", torch.zeros(1, dtype=torch.long))
    ptr = int(ptr_tensor.reshape(-1)[0])
    if not 0 <= ptr < queue.shape[1]:
        raise CheckpointMismatch(f"checkpoint {where}: queue_ptr {ptr} is outside the queue of {queue.shape[1]} keys")
    return QueueState(queue.clone(), ptr)
