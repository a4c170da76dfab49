"""The whole tiny pipeline on a few batches through the real CLI: stages, results, provenance, reuse."""

import json

from harness.config import load_benchmarks
from harness.stages import canonical_hash
from tests.conftest import REPO, disco_bench

EVALUATIONS = load_benchmarks(REPO / "benchmarks.yaml").profiles["tiny"].evals
STAGE_KINDS = {"pretrain": 2, "distill": 1, "init": 1, "eval": 4 * len(EVALUATIONS)}


def test_tiny_smoke_pipeline_runs_every_stage_writes_provenance_and_reuses_on_rerun(clean_smoke_cell):
    results = sorted((clean_smoke_cell.root / "r" / "tiny-smoke" / "stages").glob("*.json"))
    payloads = [json.loads(path.read_text()) for path in results]
    kinds = [payload["stage"]["kind"] for payload in payloads]
    assert {kind: kinds.count(kind) for kind in STAGE_KINDS} == STAGE_KINDS
    for payload in payloads:
        provenance = payload["provenance"]
        assert payload["status"] == "done" and payload["config_hash"] == canonical_hash(payload["config"])
        assert provenance["packages"]["torch"] and provenance["hardware"]["cpu_count"] >= 1
        assert provenance["wall_time_s"] >= 0 and "commit" in provenance["git"]
        assert provenance["seed"] == payload["config"]["seed"]
        assert provenance["hardware"]["tf32"] == {"cudnn": False, "matmul": False}  # fp32 is fp32
    linear = [p for p in payloads if p["stage"]["kind"] == "eval" and p["config"]["evaluation"] == "linear"]
    assert len(linear) == 4 and all(
        0.0 <= p["metrics"]["top1"] <= 100.0 and p["metrics"]["num_test"] > 0 for p in linear
    )
    assert {p["config"]["evaluation"] for p in payloads if p["stage"]["kind"] == "eval"} == set(EVALUATIONS)
    assert "DisCo - baseline gain" in clean_smoke_cell.stdout
    mtimes = {path: path.stat().st_mtime_ns for path in results}

    second = disco_bench(*clean_smoke_cell.args())
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{sum(STAGE_KINDS.values())} done, 0 to run" in second.stdout
    assert {path: path.stat().st_mtime_ns for path in results} == mtimes  # nothing recomputed


def test_smoke_stages_take_a_couple_of_steps_each(clean_smoke_cell):
    """Bounded in work, not in seconds: every training stage and every evaluation ran a couple of
    steps (disco/eval_recipes.py SMOKE), on one thread (tiny tensors)."""
    for path in (clean_smoke_cell.root / "r" / "tiny-smoke" / "stages").glob("*.json"):
        payload = json.loads(path.read_text())
        recipe = payload["config"].get("recipe", {})
        assert payload["provenance"]["hardware"]["torch_threads"] == 1, path.name
        assert recipe.get("epochs", 1) == 1 and len(payload["history"]) <= 1, (path.name, recipe)
        if payload["stage"]["kind"] != "init":
            assert recipe.get("limit_batches") == 2 or recipe.get("iterations") == 2, (path.name, recipe)
