"""A disco-bench plug-in, torch-free at import (the light commands list and validate it): what each
method and evaluation is; the torch code lives in the modules the specs name."""

from dataclasses import dataclass
from typing import Any, ClassVar

from disco.evals import Evaluation
from disco.methods.registry import DisCoSimCLRConfig, MethodSpec, in_batch_negatives

METHODS = {
    "disco_l1": MethodSpec(
        "distill",
        DisCoSimCLRConfig,
        "disco_bench_example.l1_disco:L1DisCo",
        ("simclr", "disco"),  # the profile sections it reads: SimCLR's temperature, DisCo's weights
        description="DisCo with an L1 distance to the frozen teacher's embedding (example plug-in)",
        label="DisCo-L1",
        negatives=in_batch_negatives,  # its contrastive term is SimCLR's: chance is ln(2N-1)
        base="simclr",
    )
}


@dataclass(frozen=True)
class FeatureRankRecipe:
    """The profile's `eval_recipes: feature_rank:` section."""

    images: int = 512
    batch_size: int = 256

    SMOKE: ClassVar[dict[str, Any]] = {"images": 32, "batch_size": 16}

    def __post_init__(self) -> None:
        if self.images < 2 or self.batch_size < 1:
            raise ValueError(
                f"feature_rank needs images >= 2 and batch_size >= 1, got {self.images}, {self.batch_size}"
            )


EVALUATIONS = [
    Evaluation(
        "feature_rank",
        "disco_bench_example.feature_rank:feature_rank",
        FeatureRankRecipe,
        headline=("erank",),
        beside=("cosine", "mean cosine"),
    )
]
