"""The effective rank (exp of the entropy of the normalised singular values) of an encoder's frozen,
pooled features on the test split, and their mean pairwise cosine: how much of the feature space the
encoder uses."""

from typing import Any

import torch
from torch.nn import functional as F

from disco.data.augment import probe_test_transform
from disco.data.datasets import fixed_view
from disco.eval_recipes import coerce_recipe
from disco.evaluate import extract_features
from disco_bench_example import FeatureRankRecipe


def feature_rank(encoder, splits, recipe, device, seed: int = 0, progress=None) -> dict[str, Any]:
    config = coerce_recipe(FeatureRankRecipe, recipe)
    batches = max(1, config.images // config.batch_size)
    features, _ = extract_features(
        encoder.features,
        fixed_view(splits.test, probe_test_transform(splits.image_size)),
        config.batch_size,
        device,
        0,
        batches,
    )
    features = features[: config.images].float()
    singular = torch.linalg.svdvals(features - features.mean(dim=0))
    p = singular / singular.sum()
    erank = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
    unit = F.normalize(features, dim=1)
    n = len(unit)
    cosine = float((unit @ unit.T).sum() - n) / (n * (n - 1))
    return {"erank": erank, "cosine": cosine, "num_test": n}
