"""The MoCo machinery shared by MoCo-v2 and DisCo: query encoder, momentum key encoder (EMA of
parameters only), shuffle-BN key encoding and the queue of student keys (docs/protocol.md 1.3)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from disco.losses import contrastive_logits
from disco.shuffle_bn import (
    concat_all_gather,
    ddp_shuffled_encode,
    distributed_active,
    encode_in_groups,
    shuffled_encode,
)


class MomentumContrast(nn.Module):
    queue: torch.Tensor  # (dim, K) buffer of past keys
    queue_ptr: torch.Tensor  # (1,) long buffer

    def __init__(
        self,
        encoder_q: nn.Module,
        queue_size: int,
        momentum: float,
        temperature: float,
        bn_group_size: int,
        dim: int = 128,
    ):
        super().__init__()
        self.encoder_q = encoder_q
        self.encoder_k = copy.deepcopy(encoder_q)
        for param in self.encoder_k.parameters():
            param.requires_grad = False
        self.momentum = momentum
        self.temperature = temperature
        self.bn_group_size = bn_group_size
        self.fused_bn_groups = False  # set by the speed options once grouped BN is installed
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def bn_groups(self, batch: int) -> int:
        """How many BN sub-batches emulate the paper's per-GPU batch on this device."""
        return max(1, batch // self.bn_group_size)

    def embed_query(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(encode_in_groups(self.encoder_q, x, self.bn_groups(x.shape[0]), self.fused_bn_groups), dim=1)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q, parameters only: BN buffers are not copied."""
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.mul_(self.momentum).add_(param_q.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    @torch.profiler.record_function("key_forward")
    def embed_keys(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.bn_groups(x.shape[0])

        def encode(batch: torch.Tensor) -> torch.Tensor:
            return F.normalize(encode_in_groups(self.encoder_k, batch, groups, self.fused_bn_groups), dim=1)

        if distributed_active():
            return ddp_shuffled_encode(encode, x)
        return shuffled_encode(
            lambda batch: F.normalize(self.encoder_k(batch), dim=1), x, groups, fused=self.fused_bn_groups
        )

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        enqueue(self.queue, self.queue_ptr, keys)

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        # clone: the queue is updated in place after the logits, before backward.
        return contrastive_logits(q, k, self.queue.clone(), self.temperature)


@torch.no_grad()
def enqueue(queue: torch.Tensor, queue_ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Overwrite the oldest entries of a [dim, K] ring buffer with the global batch's keys."""
    if distributed_active():
        keys = concat_all_gather(keys)
    count, capacity = keys.shape[0], queue.shape[1]
    if capacity % count:
        raise ValueError(f"queue size {capacity} must be a multiple of the global batch {count}")
    ptr = int(queue_ptr)
    queue[:, ptr : ptr + count] = keys.T
    queue_ptr[0] = (ptr + count) % capacity
