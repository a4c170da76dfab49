"""The fixed held-out batch the health monitor (disco/health.py) looks at after every epoch: evenly
spaced test images (every class of a class-sorted split), their clean evaluation view and two
MoCo-v2 views drawn once from a fixed seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from disco.data.augment import mocov2_augmentation, probe_test_transform
from disco.data.embedded import ImageSet
from disco.monitor import HeldOut

if TYPE_CHECKING:
    from PIL import Image


def evenly_spaced(count: int, available: int) -> torch.Tensor:
    return torch.linspace(0, available - 1, min(count, available)).round().long().unique()


def _raw(dataset: ImageSet | Dataset, index: int) -> Image.Image | torch.Tensor:
    return dataset.images[index] if isinstance(dataset, ImageSet) else dataset[index][0]


def held_out_batch(test_set: ImageSet | Dataset, image_size: int, count: int, seed: int = 0) -> HeldOut:
    clean_view, augment = probe_test_transform(image_size), mocov2_augmentation(image_size)
    raw = [_raw(test_set, int(index)) for index in evenly_spaced(count, len(test_set))]  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        view1 = torch.stack([augment(image) for image in raw])
        view2 = torch.stack([augment(image) for image in raw])
    clean = torch.stack([torch.as_tensor(clean_view(image)) for image in raw])
    return HeldOut(clean.as_subclass(torch.Tensor), view1.as_subclass(torch.Tensor), view2.as_subclass(torch.Tensor))
