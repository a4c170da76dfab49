"""Shuffle-BN for the key encoder (docs/protocol.md section 1.3c).

Under DDP: gather the key batch from all ranks, apply rank 0's permutation, encode this rank's
slice with its own BN statistics, gather and un-shuffle. On one device it is emulated: the batch is
permuted and encoded in `groups` sub-batches (one per virtual GPU), each with its own BN statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import distributed as dist

from disco.grouped_bn import bn_groups

Encode = Callable[[torch.Tensor], torch.Tensor]


def encode_in_groups(encode: Encode, x: torch.Tensor, groups: int, fused: bool = False) -> torch.Tensor:
    """Encode `x` as `groups` equal sub-batches, so BN sees per-group statistics (virtual GPUs).
    fused: one call whose BN layers compute the groups' statistics together (disco/grouped_bn.py)."""
    if groups <= 1:
        return encode(x)
    if x.shape[0] % groups:
        raise ValueError(f"batch {x.shape[0]} is not divisible into {groups} BN groups")
    if fused:
        with bn_groups(groups):
            return encode(x)
    return torch.cat([encode(chunk) for chunk in x.chunk(groups)], dim=0)


def shuffled_encode(
    encode: Encode, x: torch.Tensor, groups: int, generator: torch.Generator | None = None, fused: bool = False
) -> torch.Tensor:
    """Single-device shuffle-BN: permute, encode per group, restore the original order."""
    perm = torch.randperm(x.shape[0], device=x.device, generator=generator)
    encoded = encode_in_groups(encode, x[perm], groups, fused)
    return encoded[torch.argsort(perm)]


def distributed_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' tensors concatenated in rank order (no gradient), as the official code does."""
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


@torch.no_grad()
def ddp_shuffled_encode(encode: Encode, x: torch.Tensor) -> torch.Tensor:
    """Cross-rank shuffle-BN exactly as MoCo/DisCo: every rank uses rank 0's permutation."""
    local = x.shape[0]
    everything = concat_all_gather(x)
    perm = torch.randperm(everything.shape[0], device=x.device)
    dist.broadcast(perm, src=0)
    rank = dist.get_rank()
    mine = perm.view(dist.get_world_size(), -1)[rank]
    encoded = concat_all_gather(encode(everything[mine]))
    restored = encoded[torch.argsort(perm)]
    return restored[rank * local : (rank + 1) * local]
