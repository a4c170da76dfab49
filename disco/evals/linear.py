"""ImageNet-style linear evaluation (docs/protocol.md 4.1) on the frozen backbone."""

from __future__ import annotations

from typing import Any

import torch

from disco.data.augment import probe_test_transform, probe_train_transform
from disco.data.datasets import TransformedImages, fixed_view
from disco.data.sources import Splits
from disco.eval_recipes import ProbeRecipe, coerce_recipe
from disco.evaluate import ProgressFn, linear_probe
from disco.models import Encoder, feature_dim


def linear(
    encoder: Encoder,
    splits: Splits,
    recipe: ProbeRecipe | dict,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    recipe = coerce_recipe(ProbeRecipe, recipe)
    encoder.eval().to(device)
    for param in encoder.parameters():
        param.requires_grad = False
    train_transform = probe_train_transform(splits.image_size, recipe.train_augment)
    train = (
        TransformedImages(splits.train, train_transform)
        if recipe.train_augment
        else fixed_view(splits.train, train_transform)
    )
    test = fixed_view(splits.test, probe_test_transform(splits.image_size))
    metrics = linear_probe(
        encoder.features, feature_dim(encoder.backbone), splits.num_classes, train, test, recipe, device, seed, progress
    )
    return {**metrics, "protocol": "linear probe, frozen eval-mode backbone, N(0,0.01) head, SGD m=0.9 wd 0"}
