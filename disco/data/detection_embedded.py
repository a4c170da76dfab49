"""A tiny, offline detection set: embedded digits pasted on black canvases, with exact boxes.

Each digit is cropped to its ink (pixels > 0), resized to a random height (aspect kept) and
pasted at a random position where it overlaps no earlier digit, so every box is tight and the
canvas is black outside the boxes. Deterministic for a given source and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from disco.data.embedded import ImageSet

PLACEMENT_TRIES = 20


@dataclass(frozen=True)
class DetectionSet:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    boxes: list[torch.Tensor]  # float32 [K, 4] per image, (x0, y0, x1, y1) in pixels, x1/y1 exclusive
    labels: list[torch.Tensor]  # int64 [K] per image, 0-based classes of the source set
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.images)


def ink_crop(image: torch.Tensor) -> torch.Tensor:
    """The smallest rectangle of a [3, H, W] uint8 image holding all non-zero pixels, as [H', W'] gray."""
    gray = image.max(dim=0).values
    rows = torch.nonzero(gray.any(dim=1)).flatten()
    cols = torch.nonzero(gray.any(dim=0)).flatten()
    if len(rows) == 0:
        raise ValueError("cannot paste an all-black image: it has no ink to box")
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _resized(crop: torch.Tensor, height: int, canvas: int) -> torch.Tensor:
    width = max(1, min(canvas, round(crop.shape[1] * height / crop.shape[0])))
    resized = F.interpolate(
        crop[None, None].float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0, 0].round().clamp(0, 255).to(torch.uint8)


def _overlaps(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < tx1 and tx0 < x1 and y0 < ty1 and ty0 < y1 for tx0, ty0, tx1, ty1 in taken)


def _check_args(source: ImageSet, count: int, canvas: int, per_image: tuple[int, int], height: tuple[int, int]) -> None:
    if count < 1 or len(source) == 0:
        raise ValueError(
            f"need at least one canvas and one source image, got count={count}, {len(source)} source images"
        )
    if not 1 <= per_image[0] <= per_image[1]:
        raise ValueError(f"digits_per_image must be (min, max) with 1 <= min <= max, got {per_image}")
    if not 4 <= height[0] <= height[1] <= canvas:
        raise ValueError(f"digit_height must be (min, max) with 4 <= min <= max <= canvas {canvas}, got {height}")


def paste_digits(
    source: ImageSet,
    count: int,
    canvas: int = 64,
    digits_per_image: tuple[int, int] = (1, 3),
    digit_height: tuple[int, int] = (16, 40),
    seed: int = 0,
) -> DetectionSet:
    """`count` canvases of `canvas` px, each with 1..3 non-overlapping digits drawn from `source`."""
    _check_args(source, count, canvas, digits_per_image, digit_height)
    generator = torch.Generator().manual_seed(seed)
    draw = lambda low, high: int(torch.randint(low, high + 1, (1,), generator=generator))  # noqa: E731
    images = torch.zeros(count, 3, canvas, canvas, dtype=torch.uint8)
    all_boxes, all_labels = [], []
    for index in range(count):
        taken: list[tuple[int, int, int, int]] = []
        labels: list[int] = []
        for _ in range(draw(*digits_per_image)):
            pick = draw(0, len(source) - 1)
            digit = _resized(ink_crop(source.images[pick]), draw(*digit_height), canvas)
            height, width = digit.shape
            for _ in range(PLACEMENT_TRIES):
                x0, y0 = draw(0, canvas - width), draw(0, canvas - height)
                box = (x0, y0, x0 + width, y0 + height)
                if not _overlaps(box, taken):
                    images[index, :, y0 : y0 + height, x0 : x0 + width] = digit
                    taken.append(box)
                    labels.append(int(source.labels[pick]))
                    break
        all_boxes.append(torch.tensor(taken, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
    return DetectionSet(images, all_boxes, all_labels, source.num_classes, f"{source.name}-paste{canvas}")
