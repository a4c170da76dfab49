"""`--smoke` runs a cell's *paper*-profile code path (224 px, per-GPU BN groups, the paper's heads)
on synthetic images, a couple of steps per stage: one pair per teacher family and per student family."""

import json

import pytest

from harness.config import load_benchmarks
from tests.conftest import REPO, disco_bench

PAPER_EVALS = load_benchmarks(REPO / "benchmarks.yaml").profiles["paper"].evals

# teacher families: MoCo-v2 ResNet, SwAV ResNet-50x2, ViT, XCiT; student families: EfficientNet,
# MobileNetV3, ResNet, ViT, XCiT
PAIRS = ["r101-effb1", "r50w2-mbv3", "r152-r34", "vits-vitt", "xcits-xcitt"]


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS)
def test_paper_profile_smoke(pair, tmp_path, workspace_args):
    proc = disco_bench("run", "--pair", pair, "--profile", "paper", "--smoke", "--device", "cpu", *workspace_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = sorted((tmp_path / "results" / "paper-smoke" / "stages").glob("*.json"))
    assert len(stages) == 4 + 4 * len(PAPER_EVALS)
    distill = next(json.loads(path.read_text()) for path in stages if path.name.startswith("distill-"))
    assert distill["config"]["data"]["image_size"] == 224 and distill["config"]["data"]["smoke"] is True
    assert distill["metrics"]["epochs"] == 1 and distill["metrics"]["final_loss"] > 0
