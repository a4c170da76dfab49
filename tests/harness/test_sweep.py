"""The Distilling-Bottleneck sweep (benchmarks.yaml `sweeps:`, `run --sweep`): the student head's width
as a keyed setting, planned beside the default row, trained and reported against the width."""

import csv
import json
from pathlib import Path

import pytest

from harness.config import load_benchmarks
from harness.matrix import Planner, split_role
from harness.validate import validate_text
from tests.conftest import REPO, disco_bench, run_cli

WIDTHS = ["disco@h256", "disco@h512", "disco@h1024", "disco@h4096"]  # 2048: DisCo's default row


@pytest.fixture(scope="module")
def planner():
    return Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny")


def test_a_sweep_plans_its_method_at_each_width_beside_the_default_row(planner):
    roles = planner.sweep_roles("bottleneck")
    assert roles == WIDTHS and split_role("disco@h512") == ("disco", 512) and split_role("disco") == ("disco", None)
    cell = planner.cell("r50-effb0", 0, ["linear"], ["disco", *roles])
    default = cell.methods["disco"]
    assert "head_hidden" not in default.config  # keyed only when set: the default keys predate the setting
    assert default.key == planner.cell("r50-effb0", 0, ["linear"]).methods["disco"].key
    for role in roles:
        stage = cell.methods[role]
        width = split_role(role)[1]
        assert stage.config["head_hidden"] == width and stage.name == f"distill-disco-h{width}-r50-effb0-tiny-s0"
        assert stage.inputs["teacher"] is not None and stage.inputs["teacher"].key == default.inputs["teacher"].key
        assert {k: v for k, v in stage.config.items() if k != "head_hidden"} == default.config
    assert len({cell.methods[role].key for role in ["disco", *roles]}) == 5
    assert ("disco@h512", "linear") in cell.evals


def test_a_method_entry_can_set_its_head_width_for_every_cell(planner):
    bench = planner.bench
    methods = {**bench.methods, "disco": bench.methods["disco"].model_copy(update={"head_hidden": 1024})}
    wider = Planner(bench.model_copy(update={"methods": methods}), "tiny")
    assert wider.cell("r50-effb0").methods["disco"].config["head_hidden"] == 1024
    assert "disco@h1024" not in wider.sweep_roles("bottleneck") and "disco@h2048" in wider.sweep_roles("bottleneck")


def test_a_sweep_of_an_unknown_method_is_a_file_line_error():
    text = (
        (REPO / "benchmarks.yaml")
        .read_text()
        .replace("    method: disco\n    setting: head_hidden", "    method: dsco\n    setting: head_hidden")
    )
    outcome = validate_text(text)
    assert outcome.problems and "sweeps.bottleneck.method" in str(outcome.problems[0])
    assert "did you mean 'disco'" in str(outcome.problems[0])


def test_an_unknown_sweep_is_one_line_with_did_you_mean(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "run", "--profile", "tiny", "--sweep", "bottlenek", "--dry-run")
    assert code == 2 and "did you mean 'bottleneck'" in err and "Traceback" not in err + out


def test_the_sweep_trains_each_width_and_the_report_draws_the_evaluation_against_it(tmp_path: Path):
    """A smoke cell with the bottleneck sweep through the real CLI: each width trains its own head
    (the checkpoint holds it and reloads strictly for the probe), and the report has the width table and plot."""
    proc = disco_bench(
        "run",
        "--pair",
        "r50-effb0",
        "--profile",
        "tiny",
        "--smoke",
        "--evals",
        "linear",
        "--sweep",
        "bottleneck",
        "--artifacts",
        str(tmp_path / "a"),
        "--results",
        str(tmp_path / "r"),
        env={"OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "r" / "tiny-smoke"
    results = [json.loads(p.read_text()) for p in (folder / "stages").glob("distill-*.json")]
    widths = sorted(r["config"].get("head_hidden", 2048) for r in results)
    assert widths == [256, 512, 1024, 2048, 4096]
    import torch

    for result in results:
        stage = result["stage"]
        final = tmp_path / "a" / "stages" / f"{stage['name']}-{stage['key'][:10]}" / "final.pt"
        payload = torch.load(final, map_location="cpu", weights_only=False)
        assert payload.get("head_hidden") == result["config"].get("head_hidden")
        assert payload["encoder"]["backbone.classifier.0.weight"].shape[0] == result["config"].get("head_hidden", 2048)
    rows = list(csv.DictReader((folder / "report.csv").open()))
    assert {"disco@h256", "disco@h4096", "gain_disco@h256"} <= {row["role"] for row in rows}
    markdown = (folder / "report.md").read_text()
    assert "DisCo student by head hidden width · linear" in markdown and "| 256 | DisCo (head 256) |" in markdown
    assert (folder / "plots" / "r50-effb0-disco-width-linear.png").stat().st_size > 1000
