"""The one evaluation loop: a linear classifier on a frozen, eval-mode backbone (docs/protocol.md
4.1), parametrized by recipe; plus feature extraction shared with kNN and other probes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from disco.data.datasets import size
from disco.schedules import lr_at

if TYPE_CHECKING:
    from disco.eval_recipes import ProbeRecipe


FeatureFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[str, int, int], None]


def tensor_batches(
    dataset: TensorDataset, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, ...]]:
    """DataLoader(dataset, batch_size, shuffle=generator is not None, generator=generator)'s batches,
    sliced from the tensors instead of collated item by item, and the same ones: the loader's
    iterator first draws its workers' base seed from the generator, then RandomSampler draws
    torch.randperm(n, generator=generator); both draws are repeated here."""
    count = len(dataset.tensors[0])
    if generator is None:
        yield from zip(*(tensor.split(batch_size) for tensor in dataset.tensors))
        return
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base seed
    for indices in torch.randperm(count, generator=generator).split(batch_size):
        yield tuple(tensor[indices] for tensor in dataset.tensors)


def batches(
    dataset: Dataset, batch_size: int, workers: int = 0, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, ...]] | DataLoader:
    if isinstance(dataset, TensorDataset):
        return tensor_batches(dataset, batch_size, generator)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator, num_workers=workers
    )


@torch.no_grad()
def extract_features(
    features: FeatureFn,
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    limit_batches: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for index, (images, targets) in enumerate(batches(dataset, batch_size, workers)):
        if limit_batches is not None and index >= limit_batches:
            break
        feats.append(features(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(feats), torch.cat(labels)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    top = logits.topk(max(ks), dim=1).indices
    hits = top == labels.unsqueeze(1)
    return {k: int(hits[:, : min(k, logits.shape[1])].any(dim=1).sum()) for k in ks}


def linear_probe(
    features: FeatureFn,
    feature_dim: int,
    num_classes: int,
    train_set: Dataset,
    test_set: Dataset,
    recipe: ProbeRecipe,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """Train Linear(feature_dim, classes) on frozen features with the official recipe; top-1/top-5
    on `test_set` after every epoch (the official scripts report the best epoch; we keep both).
    recipe.feature_norm "standardize": a fixed per-dimension standardisation before the layer, its
    statistics from the training split (feature_statistics)."""
    torch.manual_seed(seed)
    linear = nn.Linear(feature_dim, num_classes)
    nn.init.normal_(linear.weight, mean=0.0, std=0.01)
    nn.init.zeros_(linear.bias)
    test_feats, test_labels = extract_features(
        features, test_set, recipe.batch_size, device, recipe.workers, recipe.limit_batches
    )
    cached_train = (
        None
        if recipe.train_augment
        else TensorDataset(
            *extract_features(features, train_set, recipe.batch_size, device, recipe.workers, recipe.limit_batches)
        )
    )
    head: nn.Module = linear.to(device)
    if recipe.feature_norm == "standardize":
        mean, std = feature_statistics(features, cached_train or train_set, recipe, device)
        head = nn.Sequential(Standardize(mean, std), linear).to(device)
    optimizer = torch.optim.SGD(
        linear.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    best, last = {"top1": 0.0, "top5": 0.0}, {"top1": 0.0, "top5": 0.0}
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe.schedule, recipe.lr, epoch, recipe.epochs, recipe.milestones, recipe.gamma)
        generator = torch.Generator().manual_seed(seed * 7919 + epoch)
        for index, (inputs, targets) in enumerate(
            batches(cached_train or train_set, recipe.batch_size, recipe.workers, generator)
        ):
            if recipe.limit_batches is not None and index >= recipe.limit_batches:
                break
            inputs, targets = inputs.to(device), torch.as_tensor(targets).to(device)
            with torch.no_grad():
                feats = inputs if cached_train else features(inputs)
            loss = F.cross_entropy(head(feats.float()), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        last = evaluate_head(head, test_feats, test_labels, device)
        best = max(best, last, key=lambda metrics: metrics["top1"])
        if progress:
            progress("epoch", epoch + 1, recipe.epochs)
    return {
        "top1": last["top1"],
        "top5": last["top5"],
        "top1_best": best["top1"],
        "top5_at_best": best["top5"],
        "num_train": size(train_set),
        "num_test": len(test_labels),
    }


class Standardize(nn.Module):
    """(x - mean) / std per feature dimension, fixed: no parameter, the same in train and eval."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def feature_statistics(
    features: FeatureFn, train: Dataset, recipe: ProbeRecipe, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation of the training split's features (one pass over it;
    the cached features when the probe caches them). A constant dimension keeps scale 1; the
    statistics are in float64, so they are exact whatever the features' magnitude."""
    if isinstance(train, TensorDataset):
        feats = train.tensors[0]
    else:
        feats, _ = extract_features(features, train, recipe.batch_size, device, recipe.workers, recipe.limit_batches)
    feats = feats.double()
    mean, std = feats.mean(dim=0), feats.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.float(), std.float()


@torch.no_grad()
def evaluate_head(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, device: torch.device) -> dict[str, float]:
    logits = head(feats.to(device)).cpu()
    correct = topk_correct(logits, labels)
    return {"top1": 100.0 * correct[1] / len(labels), "top5": 100.0 * correct[5] / len(labels)}
