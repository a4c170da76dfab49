"""Deterministic synthetic images for --smoke runs: exercises any profile's code path in seconds."""

from __future__ import annotations

import torch

from disco.data.embedded import ImageSet


def synthetic_images(count: int, size: int, num_classes: int = 10, seed: int = 0) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % num_classes
    base = torch.randint(0, 256, (num_classes, 3, 1, 1), generator=generator)
    noise = torch.randint(-40, 41, (count, 3, size, size), generator=generator)
    images = (base[labels] + noise).clamp(0, 255).to(torch.uint8)
    return ImageSet(images, labels, num_classes, f"synthetic{size}")
