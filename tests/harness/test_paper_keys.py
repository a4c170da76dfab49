"""The paper profile's stages keep the keys they had before pretraining methods came from the
registry and the probe gained its options (tests/harness/fixtures/paper_stage_keys.json was written
from the planner at that commit): a refactor must not send paper users' cached stages to be rerun."""

import json
from pathlib import Path

from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import REPO

FIXTURE = Path(__file__).parent / "fixtures" / "paper_stage_keys.json"


def test_paper_stage_keys_are_unchanged():
    bench = load_benchmarks(REPO / "benchmarks.yaml")
    planner = Planner(bench, "paper")
    distill = [name for name, method in bench.methods.items() if method.kind == "distill"]
    expected = json.loads(FIXTURE.read_text())
    planned = {}
    for pair in bench.pairs:
        if bench.pairs[pair].teacher in planner.profile.teacher_checkpoints:
            continue  # imported teachers are keyed by their file, absent here
        for seed in (0, 1):
            planned |= {stage.name: stage.key for stage in planner.cell(pair, seed, methods=distill).stages()}
    assert planned.keys() == expected.keys()
    changed = sorted(name for name in expected if planned[name] != expected[name])
    assert not changed, f"{len(changed)} paper stage keys changed, e.g. {changed[:3]}"
