"""MoCo-v2 "aug-plus" on a whole batch of uint8 images on the device, one random draw per image
(kornia), instead of one Python pipeline call per image in DataLoader workers.

Equivalence to the per-image pipeline (disco/data/augment.py): equal in distribution, not bitwise.
Every image gets its own crop box (torchvision's RandomResizedCrop sampling: scale, log-ratio, ten
tries, centre-crop fallback), its own jitter factors from the same ranges and its own random order of
the four colour steps (torchvision's formulas), its own grayscale/blur/flip coin and blur sigma. Two
deviations, both documented: the image stays float between steps (the per-image uint8 path rounds
after each colour step), and the random stream differs (a seeded run is still exactly reproducible).
Used for in-memory tensor datasets (the tiny profile) in the optimized speed mode.
"""

from __future__ import annotations

import math

import kornia.augmentation as K
import torch
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)
from torch import nn

from disco.data.augment import IMAGENET_MEAN, IMAGENET_STD, SWAV_JITTER, SWAV_STD, _odd_kernel

JITTER_STRENGTH = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P, GRAYSCALE_P, BLUR_P = 0.8, 0.2, 0.5


def _hue_turns(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    return adjust_hue(images, turns * 2 * math.pi)  # torchvision's hue factor is in turns, kornia's in radians


COLOUR_STEPS = (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_saturation_with_gray_subtraction,
    _hue_turns,
)


def jitter_factors(
    batch: int, device: torch.device, strength: tuple[float, float, float, float] = JITTER_STRENGTH
) -> torch.Tensor:
    """[batch, 4] factors: brightness/contrast/saturation in [1-s, 1+s], hue in [-h, h]."""
    b, c, s, h = strength
    low = torch.tensor([1 - b, 1 - c, 1 - s, -h], device=device)
    high = torch.tensor([1 + b, 1 + c, 1 + s, h], device=device)
    return low + (high - low) * torch.rand(batch, 4, device=device)


def per_image_colour_jitter(
    images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, applied: torch.Tensor
) -> torch.Tensor:
    """ColorJitter with each image's own factors and own step order (torchvision draws both per call,
    i.e. per image). order: [batch, 4] permutations of 0..3; applied: [batch] bool (the p=0.8 coin)."""
    out = images.clone()
    for position in range(len(COLOUR_STEPS)):
        for step_index, step in enumerate(COLOUR_STEPS):
            chosen = applied & (order[:, position] == step_index)
            if chosen.any():
                out[chosen] = step(out[chosen], factors[chosen, step_index]).clamp(0, 1)
    return out


class BatchedMoCoV2Augmentation(nn.Module):
    """uint8 [B, 3, H, W] -> normalized float views, parameters drawn per image from torch's global RNG
    (seeded per epoch by the training loop, so resume stays exact). `swav_crop` makes one of SwAV's
    multi-crop views with it: stronger jitter, its std, the flip drawn last instead of after the crop
    (equal in distribution: a flip commutes with per-pixel colour steps and a symmetric blur)."""

    def __init__(
        self,
        image_size: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        flip: bool = True,
        jitter: tuple[float, float, float, float] = JITTER_STRENGTH,
        std: tuple[float, float, float] = IMAGENET_STD,
        sigma_scale: float | None = None,
    ):
        super().__init__()
        # as the per-image pipeline: the 224-px blur range, rescaled (by default to this view's size)
        sigma_scale = image_size / 224.0 if sigma_scale is None else sigma_scale
        sigma = (0.1 * sigma_scale, 2.0 * sigma_scale)
        self.jitter = jitter
        kernel = _odd_kernel(sigma[1])
        self.crop = K.RandomResizedCrop((image_size, image_size), scale=crop_scale, ratio=(3 / 4, 4 / 3))
        self.grayscale = K.RandomGrayscale(p=GRAYSCALE_P)
        self.blur = K.RandomGaussianBlur((kernel, kernel), sigma, p=BLUR_P)
        self.flip = K.RandomHorizontalFlip(p=0.5 if flip else 0.0)
        self.normalize = K.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(std))

    @classmethod
    def swav_crop(
        cls, size: int, scale: tuple[float, float], blur_scale: float, flip: bool = True
    ) -> BatchedMoCoV2Augmentation:
        """disco/data/augment.py swav_crop_augmentation, batched."""
        return cls(size, scale, flip, SWAV_JITTER, SWAV_STD, blur_scale)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = self.crop(images.float() / 255.0)
        batch, device = views.shape[0], views.device
        order = torch.argsort(torch.rand(batch, len(COLOUR_STEPS), device=device), dim=1)
        applied = torch.rand(batch, device=device) < JITTER_P
        views = per_image_colour_jitter(views, jitter_factors(batch, device, self.jitter), order, applied)
        views = self.flip(self.blur(self.grayscale(views)))
        return self.normalize(views)
