"""SwAV (Caron et al., NeurIPS 2020) as facebookresearch/swav main_swav.py trains it: the L2-normalised
embeddings of every crop scored against learnt prototypes (renormalised before each step), Sinkhorn
codes of the assigned crops predicted by every other crop, a queue of past embeddings from
`epoch_queue_starts` on, and the prototypes' gradients dropped for the first
`freeze_prototypes_niters` iterations. The prototypes live here, not in the encoder: the exported
encoder is the backbone and projection head, as SwAV's released checkpoints are read (prototypes
dropped). One process: the official Sinkhorn all-reduces over ranks and keeps a queue per rank."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from disco import distributed
from disco.errors import InputError
from disco.losses import swav_loss
from disco.methods.registry import SwAVConfig
from disco.models import EMBED_DIM, Encoder
from disco.speed import SpeedOptions


def resolution_groups(crops: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive crops of one width, as the official forward groups them (resnet50.py L310-313:
    torch.unique_consecutive over the crops' last dimension)."""
    groups: list[list[torch.Tensor]] = []
    for crop in crops:
        if groups and groups[-1][-1].shape[-1] == crop.shape[-1]:
            groups[-1].append(crop)
        else:
            groups.append([crop])
    return groups


def embed_crops(encoder: Encoder, crops: Sequence[torch.Tensor]) -> torch.Tensor:
    """The official multi-resolution forward (resnet50.py L308-323): the crops of one resolution go
    through the backbone together (one BN batch per resolution), the projection head sees every crop at
    once (its BN1d over all of them). Rows: crop after crop."""
    features = [encoder.features(torch.cat(group)) for group in resolution_groups(crops)]
    return encoder.project(torch.cat(features))


class SwAV(nn.Module):
    queue: torch.Tensor
    iteration: torch.Tensor

    def __init__(self, encoder: Encoder, config: SwAVConfig, speed: SpeedOptions | None = None):
        super().__init__()
        if distributed.world_size() > 1:
            raise InputError(
                "SwAV runs on one process here (its distributed Sinkhorn and per-rank queues are not "
                "implemented): run it without --nproc-per-node"
            )
        self.config = config
        self.speed = speed or SpeedOptions()
        self.encoder = encoder
        self.prototypes = nn.Linear(EMBED_DIM, config.nmb_prototypes, bias=False)
        # main_swav.py L226-231: [assigned crops, queue_length, feat_dim], zeros until filled
        self.register_buffer("queue", torch.zeros(len(config.crops_for_assign), config.queue_length, EMBED_DIM))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))  # optimizer steps taken (L273)
        self.queue_started = False

    @property
    def student(self) -> nn.Module:
        return self.encoder

    def start_epoch(self, epoch: int) -> None:
        """The training loop's call before epoch `epoch` (0-based): the queue is in use from
        `epoch_queue_starts` on (L226), kept in the state dict so that a resumed run continues it."""
        self.queue_started = self.config.queue_length > 0 and epoch >= self.config.epoch_queue_starts

    def before_optimizer_step(self) -> None:
        """After backward: no update of the prototypes at all (grad None: no momentum, no weight decay)
        during the first `freeze_prototypes_niters` iterations (L325-328)."""
        if int(self.iteration) < self.config.freeze_prototypes_niters:
            self.prototypes.weight.grad = None
        self.iteration.add_(1)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """L278-281: each prototype back on the unit sphere before the step's forward."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1, p=2))

    def embed(self, crops: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(L2-normalised embeddings, prototype scores) of every crop in fp32, crop after crop."""
        crops = [self.speed.prepare_input(crop) for crop in crops]
        with self.speed.autocast(crops[0].device), torch.profiler.record_function("student_forward"):
            projected = embed_crops(self.encoder, crops)
        embedding = F.normalize(projected.float(), dim=1, p=2)
        return embedding, self.prototypes(embedding)

    @torch.no_grad()
    def queued_scores(self) -> list[torch.Tensor | None] | None:
        """The queued embeddings' scores against the current prototypes (L295-301), per assigned crop,
        once the queue holds a full row (the official `use_the_queue`); None before."""
        if not self.queue_started or not torch.any(self.queue[:, -1] != 0):
            return None
        return [self.queue[index] @ self.prototypes.weight.t() for index in range(len(self.queue))]

    @torch.no_grad()
    def enqueue(self, embedding: torch.Tensor, batch: int) -> None:
        """L302-304: each assigned crop's embeddings in front of its queue, the oldest dropped."""
        if not self.queue_started:
            return
        for index, crop in enumerate(self.config.crops_for_assign):
            self.queue[index, batch:] = self.queue[index, :-batch].clone()
            self.queue[index, :batch] = embedding[crop * batch : (crop + 1) * batch]

    def swapped_prediction(self, embedding: torch.Tensor, scores: torch.Tensor, batch: int) -> torch.Tensor:
        """SwAV's loss on this step's scores (the queue's in front of the codes), then the queue filled."""
        config = self.config
        queued = self.queued_scores()
        loss = swav_loss(
            scores,
            batch,
            config.crops_for_assign,
            config.temperature,
            config.epsilon,
            config.sinkhorn_iterations,
            queued,
        )
        self.enqueue(embedding.detach(), batch)
        return loss

    def training_step(self, *crops: torch.Tensor) -> dict[str, torch.Tensor]:
        self.normalize_prototypes()
        embedding, scores = self.embed(crops)
        loss = self.swapped_prediction(embedding, scores, crops[0].shape[0])
        return {"loss": loss, "ce": loss.detach()}
