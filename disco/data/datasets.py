"""torch Datasets over an ImageSet or any (image, label) dataset: two views for pretraining,
one transformed view for evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from disco.data.embedded import ImageSet


class TransformedImages(Dataset):
    def __init__(self, source: ImageSet | Dataset, transform: Callable[[Any], Any]):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def _raw(self, index: int):
        if isinstance(self.source, ImageSet):
            return self.source.images[index], int(self.source.labels[index])
        return self.source[index]

    def __getitem__(self, index: int):
        image, label = self._raw(index)
        return self.transform(image), label


class TwoViews(TransformedImages):
    """Two independently augmented views of each image (MoCo's TwoCropsTransform)."""

    def __getitem__(self, index: int):
        image, label = self._raw(index)
        return (self.transform(image), self.transform(image)), label
