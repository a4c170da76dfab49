"""Weighted kNN on L2-normalised frozen features (InstDisc, Wu et al. 2018): each of the k nearest
train features votes for its class with weight exp(cosine / T); top-1/top-5 over the summed votes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.nn import functional as F

from disco.data.augment import probe_test_transform
from disco.data.datasets import fixed_view
from disco.data.sources import Splits
from disco.eval_recipes import KnnRecipe, coerce_recipe
from disco.evaluate import ProgressFn, extract_features, topk_correct
from disco.models import Encoder

if TYPE_CHECKING:
    from torch import nn

    from disco.monitor import KnnFn


def knn_votes(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    num_classes: int,
    k: int,
    temperature: float,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Summed exp(cos/T) votes [num_test, num_classes] of each test feature's k nearest train features."""
    if len(train_feats) < k:
        raise ValueError(f"kNN with k={k} needs at least k train features, got {len(train_feats)}")
    bank = F.normalize(train_feats.float(), dim=1)
    labels = train_labels.to(bank.device)
    chunks = []
    for queries in F.normalize(test_feats.float(), dim=1).split(chunk_size):
        similarity, neighbours = (queries.to(bank.device) @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(queries), num_classes, device=bank.device)
        chunks.append(votes.scatter_add_(1, labels[neighbours], (similarity / temperature).exp()).cpu())
    return torch.cat(chunks)


def knn_accuracy(
    encoder: Encoder,
    splits: Splits,
    config: KnnRecipe,
    device: torch.device,
    progress: ProgressFn | None = None,
    numerics: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[dict[int, int], int, int, int]:
    """(top-1/top-5 correct counts, k used, train size, test size) of the weighted kNN on eval-mode pooled features."""
    transform = probe_test_transform(splits.image_size)

    def features(images: torch.Tensor) -> torch.Tensor:
        with numerics():
            return encoder.features(images).float()

    train_feats, train_labels = extract_features(
        features,
        fixed_view(splits.train, transform),
        config.batch_size,
        device,
        config.workers,
        config.limit_batches,
    )
    if progress:
        progress("features", 1, 2)
    test_feats, test_labels = extract_features(
        features,
        fixed_view(splits.test, transform),
        config.batch_size,
        device,
        config.workers,
        config.limit_batches,
    )
    k = min(config.k, len(train_feats))  # tiny/smoke sets can hold fewer than 200 images
    votes = knn_votes(
        train_feats.to(device), train_labels, test_feats, splits.num_classes, k, config.temperature, config.chunk_size
    )
    if progress:
        progress("features", 2, 2)
    return topk_correct(votes, test_labels), k, len(train_labels), len(test_labels)


def knn_monitor(
    splits: Splits,
    device: torch.device,
    config: KnnRecipe | None = None,
    numerics: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> KnnFn:
    """encoder -> kNN top-1 (%): the cheap learning monitor of the training stages (disco/health.py).
    numerics: the training stage's precision for the feature forwards (the vote stays fp32)."""
    config = config or KnnRecipe()

    def top1(encoder: nn.Module) -> float:  # the monitor's student: an Encoder
        correct, _, _, total = knn_accuracy(cast(Encoder, encoder), splits, config, device, numerics=numerics)
        return 100.0 * correct[1] / total

    return top1


def knn(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    config = coerce_recipe(KnnRecipe, recipe)
    encoder.eval().to(device)
    correct, k, num_train, total = knn_accuracy(encoder, splits, config, device, progress)
    return {
        "top1": 100.0 * correct[1] / total,
        "top5": 100.0 * correct[5] / total,
        "k": k,
        "temperature": config.temperature,
        "num_train": num_train,
        "num_test": total,
        "protocol": "weighted kNN (exp(cos/T) votes) on L2-normalised frozen eval-mode pooled features, test transform on both splits",
        "recipe": asdict(config),
    }
