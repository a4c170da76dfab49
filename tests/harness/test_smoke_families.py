"""`--smoke` runs a cell's *paper*-profile code path (224 px, per-GPU BN groups, the paper's heads)
on synthetic images, a couple of steps per stage: one pair per teacher family and per student family."""

import json

import pytest

from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import REPO, disco_bench

SMOKE_PLANNER = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "paper", smoke=True)

# teacher families: MoCo-v2 ResNet, SwAV ResNet-50x2, ViT, XCiT; student families: EfficientNet,
# MobileNetV3, ResNet, ViT, XCiT
PAIRS = ["r101-effb1", "r50w2-mbv3", "r152-r34", "vits-vitt", "xcits-xcitt"]


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS)
def test_paper_profile_smoke(pair, tmp_path, workspace_args):
    proc = disco_bench("run", "--pair", pair, "--profile", "paper", "--smoke", "--device", "cpu", *workspace_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = sorted((tmp_path / "results" / "paper-smoke" / "stages").glob("*.json"))
    # the paper's evaluations, CIFAR on synthetic images; detectron2 detection has no smoke mode
    assert len(stages) == len(SMOKE_PLANNER.cell(pair).stages()) == 4 + 4 * len(SMOKE_PLANNER.default_evaluations())
    distill = next(json.loads(path.read_text()) for path in stages if path.name.startswith("distill-"))
    assert distill["config"]["data"]["image_size"] == 224 and distill["config"]["data"]["smoke"] is True
    assert distill["metrics"]["epochs"] == 1 and distill["metrics"]["final_loss"] > 0
