"""Per-group BatchNorm statistics in one call: the exact fusion of `encode_in_groups`.

The faithful recipe normalises every forward with the statistics of each per-GPU sub-batch of 32.
On one device that means G sequential calls on small batches. Here a train-mode BN layer instead
computes the G groups' statistics in one pass over the whole batch, and updates the running
statistics exactly as G sequential calls would (r <- (1-m)^G r + sum_g m (1-m)^(G-g) s_g). The
outputs equal the sequential calls up to floating-point rounding; convolutions see the full batch.

Every BN layer is grouped, whatever its input rank: BatchNorm2d in the backbones and BatchNorm1d
in the SwAV-family projection head (Linear-BN1d-ReLU-Linear), which the official per-GPU batch
also normalises with 32-image statistics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_state = threading.local()


def current_groups() -> int:
    return getattr(_state, "groups", 1)


@contextmanager
def bn_groups(groups: int) -> Iterator[None]:
    previous = current_groups()
    _state.groups = groups
    try:
        yield
    finally:
        _state.groups = previous


def _grouped_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, groups: int) -> torch.Tensor:
    """x: [N, C, *spatial] (BN1d: [N, C] or [N, C, L]; BN2d: [N, C, H, W]), N = groups * group size."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    grouped = x.reshape(groups, n // groups, c, *spatial)
    stats_input = (
        grouped if grouped.dtype in (torch.float32, torch.float64) else grouped.float()
    )  # fp32 stats under autocast, as native BN
    reduce = (1, *range(3, grouped.dim()))
    var, mean = torch.var_mean(stats_input, dim=reduce, unbiased=False, keepdim=True)
    per_channel = (1, 1, c) + (1,) * len(spatial)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.view(per_channel)
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.view(per_channel)
    out = torch.addcmul(shift.to(x.dtype), grouped, scale.to(x.dtype)).reshape(x.shape)
    if bn.track_running_stats:
        _update_running_stats(bn, mean.view(groups, c), var.view(groups, c), count=(n // groups) * spatial.numel())
    return out


@torch.no_grad()
def _update_running_stats(
    bn: nn.modules.batchnorm._BatchNorm, means: torch.Tensor, variances: torch.Tensor, count: int
) -> None:
    """G sequential momentum updates in closed form: r <- (1-m)^G r + sum_g m (1-m)^(G-1-g) s_g."""
    groups = means.shape[0]
    running_mean, running_var, tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert running_mean is not None and running_var is not None and tracked is not None  # only tracked BNs are grouped
    if bn.momentum is None:  # cumulative average: fall back to the sequential definition
        for mean, var in zip(means, variances * (count / max(count - 1, 1))):
            tracked.add_(1)
            factor = 1.0 / float(tracked)
            running_mean.mul_(1 - factor).add_(mean.to(running_mean.dtype), alpha=factor)
            running_var.mul_(1 - factor).add_(var.to(running_var.dtype), alpha=factor)
        return
    keep = 1.0 - bn.momentum
    weights = torch.tensor(
        [bn.momentum * keep ** (groups - 1 - g) for g in range(groups)], device=means.device, dtype=means.dtype
    )
    unbiased = variances * (count / max(count - 1, 1))
    running_mean.mul_(keep**groups).add_((weights @ means).to(running_mean.dtype))
    running_var.mul_(keep**groups).add_((weights @ unbiased).to(running_var.dtype))
    tracked.add_(groups)


GROUPED_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # SyncBatchNorm syncs across ranks instead


def _install(bn: nn.modules.batchnorm._BatchNorm) -> None:
    plain_forward = bn.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        groups = current_groups()
        if groups <= 1 or not bn.training or x.dim() < 2:
            return plain_forward(x)
        out = _grouped_batch_norm(bn, x, groups)
        if hasattr(bn, "act"):  # timm's BatchNormAct2d: BN, then dropout and activation
            out = bn.act(bn.drop(out))  # type: ignore[operator]
        return out

    bn.forward = forward  # type: ignore[method-assign,assignment]  # per-instance patch: state_dict keys unchanged


def enable_grouped_bn(module: nn.Module) -> int:
    """Make every BatchNorm layer (1d, 2d, 3d) in `module` honour `bn_groups(G)`; returns how many were patched."""
    patched = 0
    for child in module.modules():
        if isinstance(child, GROUPED_TYPES) and not getattr(child, "_grouped_bn", False):
            _install(child)
            setattr(child, "_grouped_bn", True)  # noqa: B010  (a flag on a torch module)
            patched += 1
    return patched
