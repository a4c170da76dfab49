"""Transfer by linear probe (docs/protocol.md 4.3, moco/cifar_main_lincls.py without the MI code).

Frozen eval-mode backbone, N(0, 0.01) head, lr 3.0 constant, 200 epochs, wd 0, at the profile's
resolution (224 for the paper): train RandomResizedCrop(bicubic, scale 0.08-1) + flip, test
Resize(bicubic) + CenterCrop, ImageNet statistics.

transfer_cifar10 / transfer_cifar100: torchvision CIFAR from `root` (no download).
transfer_digits: scikit-learn's 8x8 digits (embedded), upsampled bicubic as CIFAR's 32 px are.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any, cast

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from disco.data.augment import IMAGENET_MEAN, IMAGENET_STD, probe_test_transform
from disco.data.datasets import TransformedImages, fixed_view
from disco.data.embedded import ImageSet, load_embedded, stratified_split
from disco.data.sources import Splits
from disco.errors import InputError
from disco.eval_recipes import TransferRecipe, coerce_recipe
from disco.evaluate import ProgressFn, linear_probe
from disco.models import Encoder, feature_dim

TARGETS = ("cifar10", "cifar100", "digits")
DIGITS_NATIVE_SIZE = 8


def transfer_train_transform(image_size: int, augment: bool) -> v2.Compose:
    if not augment:  # features cached once: the test transform, exact for a frozen eval-mode backbone
        return transfer_test_transform(image_size)
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def transfer_test_transform(image_size: int) -> v2.Compose:
    return probe_test_transform(image_size, resize_ratio=1.0, interpolation="bicubic")


def transfer_sets(target: str, config: TransferRecipe) -> tuple[ImageSet | Dataset, ImageSet | Dataset, int]:
    """(train, test, classes) of a transfer target, untransformed."""
    if target == "digits":
        digits = load_embedded("digits", DIGITS_NATIVE_SIZE)
        train, test = stratified_split(digits, config.test_fraction, seed=0)
        return train, test, digits.num_classes
    if target not in TARGETS:
        raise InputError(f"unknown transfer target '{target}'; valid: {', '.join(TARGETS)}")
    root = config.root or os.environ.get("DISCO_CIFAR")
    if not root:
        raise InputError(
            f"transfer_{target} needs `root` in its recipe or DISCO_CIFAR: the directory holding torchvision's CIFAR folders (e.g. <root>/cifar-10-batches-py)"
        )
    from disco.data.real import cifar

    cifar_train, cifar_test = cifar(target, root, train=True), cifar(target, root, train=False)
    return cifar_train, cifar_test, len(cast(Any, cifar_train).classes)


def transfer(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
    *,
    target: str,
) -> dict[str, Any]:
    config = coerce_recipe(TransferRecipe, recipe)
    if splits.synthetic and target != "digits":  # --smoke: the code path on synthetic images, no CIFAR needed
        train_images, test_images, num_classes = splits.train, splits.test, splits.num_classes
    else:
        train_images, test_images, num_classes = transfer_sets(target, config)
    encoder.eval().to(device)
    for param in encoder.parameters():
        param.requires_grad = False
    size = splits.image_size  # the pretraining resolution: 224 in the paper, the profile's in tiny runs
    train_transform = transfer_train_transform(size, config.train_augment)
    train = (
        TransformedImages(train_images, train_transform)
        if config.train_augment
        else fixed_view(train_images, train_transform)
    )
    test = fixed_view(test_images, transfer_test_transform(size))
    metrics = linear_probe(
        encoder.features, feature_dim(encoder.backbone), num_classes, train, test, config, device, seed, progress
    )
    protocol = (
        f"linear probe on frozen eval-mode backbone, {target} upsampled bicubic to {size} px (cifar_main_lincls.py)"
    )
    return {**metrics, "target": target, "protocol": protocol, "recipe": asdict(config)}
