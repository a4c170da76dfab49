"""The training-health metrics (disco/health.py has their meaning and the verdict) and the
per-epoch monitor the training loop calls."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from disco.health import chance_ratio


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    z = F.normalize(z.double(), dim=1)
    n = z.shape[0]
    if n < 2:
        raise ValueError("the mean pairwise cosine needs at least 2 vectors")
    total = z.sum(dim=0).pow(2).sum() - z.pow(2).sum()  # sum over i != j of z_i . z_j
    return float(total / (n * (n - 1)))


def effective_rank(z: torch.Tensor) -> float:
    singular = torch.linalg.svdvals(F.normalize(z.double(), dim=1))
    p = singular / singular.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> float:
    return float((F.normalize(z1.double(), dim=1) - F.normalize(z2.double(), dim=1)).pow(2).sum(dim=1).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    z = F.normalize(z.double(), dim=1)
    return float(torch.pdist(z).pow(2).mul(-t).exp().mean().log())


def embedding_health(
    embeddings: torch.Tensor, features: torch.Tensor, view1: torch.Tensor, view2: torch.Tensor
) -> dict[str, float]:
    """Health of one held-out batch: its clean embeddings and pooled backbone features, and the
    embeddings of two augmented views of it (for alignment)."""
    return {
        "emb_cosine": mean_pairwise_cosine(embeddings),
        "emb_erank": effective_rank(embeddings),
        "feat_cosine": mean_pairwise_cosine(features),
        "feat_erank": effective_rank(features),
        "alignment": alignment(view1, view2),
        "uniformity": uniformity(embeddings),
    }


KnnFn = Callable[[nn.Module], float]  # encoder -> kNN top-1 (%) of its pooled features


@dataclass(frozen=True)
class HeldOut:
    """A fixed held-out batch: its clean evaluation view and two augmented views, drawn once."""

    clean: torch.Tensor
    view1: torch.Tensor
    view2: torch.Tensor


class HealthMonitor:
    """Called by the training loop after every epoch with the student encoder; returns the health
    entries of that epoch's history. In eval mode (what the evaluations see; BN statistics are not
    touched) on the same fixed inputs every epoch, consuming no random numbers, so training is unchanged."""

    def __init__(
        self,
        held_out: HeldOut,
        negatives: int | None,
        knn: KnnFn | None = None,
        knn_every: int = 0,
        batch_size: int = 256,
        numerics: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ):
        self.held_out = held_out
        self.negatives = negatives  # K of the method's contrastive term `ce` (None: it has none)
        self.knn = knn
        self.knn_every = knn_every
        self.batch_size = batch_size
        self.numerics = numerics  # the training stage's precision (its autocast), for the forwards only

    @torch.no_grad()
    def __call__(self, encoder: nn.Module, epoch: int, total_epochs: int, losses: dict[str, float]) -> dict[str, Any]:
        was_training = encoder.training
        encoder.eval()
        try:
            held, device = self.held_out, next(encoder.parameters()).device

            def forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                with self.numerics():
                    return fn(x.to(device)).float().cpu()

            run = lambda fn, x: torch.cat([forward(fn, chunk) for chunk in x.split(self.batch_size)])  # noqa: E731
            metrics = {}
            if "ce" in losses and self.negatives is not None:
                metrics["ce_chance_ratio"] = chance_ratio(losses["ce"], self.negatives)
            metrics |= embedding_health(
                run(encoder, held.clean),
                run(encoder.features, held.clean),
                run(encoder, held.view1),
                run(encoder, held.view2),
            )
            if self.knn is not None and self.knn_every and (epoch % self.knn_every == 0 or epoch == total_epochs):
                metrics["knn_top1"] = self.knn(encoder)
        finally:
            encoder.train(was_training)
        return metrics
