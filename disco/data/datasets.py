"""torch Datasets over an ImageSet or any (image, label) dataset: two views (or a multi-crop
method's crops) for pretraining, one transformed view for evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import Any, cast

import torch
from torch.utils.data import Dataset, TensorDataset

from disco.data.embedded import ImageSet


class TransformedImages(Dataset):
    """transform None: the raw images (uint8 tensors for an ImageSet), for batched augmentation."""

    def __init__(self, source: ImageSet | Dataset, transform: Callable[[Any], Any] | None):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]  # every dataset here is sized

    def _raw(self, index: int) -> tuple[Any, int]:
        if isinstance(self.source, ImageSet):
            return self.source.images[index], int(self.source.labels[index])
        return self.source[index]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self._raw(index)
        return (self.transform(image) if self.transform else image), label


class TwoViews(TransformedImages):
    """Two independently augmented views of each image (MoCo's TwoCropsTransform)."""

    def __getitem__(self, index: int) -> tuple[tuple[Any, Any], int]:
        image, label = self._raw(index)
        assert self.transform is not None, "TwoViews draws two views: it needs a transform"
        return (self.transform(image), self.transform(image)), label


class MultiViews(TransformedImages):
    """One view per transform, in order (SwAV's MultiCropDataset: multicropdataset.py L55-61)."""

    def __init__(self, source: ImageSet | Dataset, transforms: Sequence[Callable[[Any], Any]]):
        super().__init__(source, None)
        self.transforms = tuple(transforms)

    def __getitem__(self, index: int) -> tuple[tuple[Any, ...], int]:
        image, label = self._raw(index)
        return tuple(transform(image) for transform in self.transforms), label


def size(dataset: Dataset | ImageSet) -> int:
    """len() of a map-style dataset (torch's Dataset type does not declare __len__)."""
    return len(cast(Sized, dataset))


def fixed_view(source: ImageSet | Dataset, transform: Callable[[Any], Any]) -> Dataset:
    """A deterministic (evaluation) transform: for an in-memory ImageSet applied once to the whole
    batch (the same torchvision ops on a batched tensor, equal to the per-image result), otherwise
    lazily per item. Not for random transforms: a batched call would draw one crop for all images."""
    if isinstance(source, ImageSet):
        return TensorDataset(torch.as_tensor(transform(source.images)).as_subclass(torch.Tensor), source.labels)
    return TransformedImages(source, transform)
