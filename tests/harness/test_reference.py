"""The committed reference run and the user's own run are kept apart: a fresh checkout plans real work,
and its report still shows the reference column; `promote` makes a run the reference."""

import json

from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.reference import MANIFEST, promote, reference_workspace
from harness.workspace import Workspace
from tests.conftest import REPO, disco_bench
from tests.harness.test_report import store_cell


def test_a_fresh_checkout_plans_the_work_and_reports_the_committed_reference(tmp_path):
    runs = [
        "--results",
        str(tmp_path / "runs"),
        "--artifacts",
        str(tmp_path / "artifacts"),
    ]  # what a fresh clone has: nothing
    plan = disco_bench("run", "--pair", "r50-effb0", "--profile", "tiny", "--dry-run", *runs, env={"COLUMNS": "200"})
    assert plan.returncode == 0, plan.stderr
    stages = len(Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny").cell("r50-effb0").stages())
    assert (
        f"plan: 0 done, {stages} to run" in plan.stdout
    )  # the committed reference is not taken for this run's results
    assert "estimated cost of what will run" in plan.stdout and "unknown" not in plan.stdout
    report = disco_bench("report", "--profile", "tiny", "--no-files", *runs, env={"COLUMNS": "250"})
    assert report.returncode == 0, report.stderr
    assert "reference run" in report.stdout and "pending" in report.stdout


def test_the_committed_reference_is_complete_and_describes_itself():
    reference, label = reference_workspace(REPO / "results" / "reference", "tiny")
    assert reference is not None, (
        "results/reference/tiny is missing: run `make bench` and `disco-bench promote --profile tiny`"
    )
    manifest = json.loads((REPO / "results" / "reference" / "tiny" / MANIFEST).read_text())
    assert manifest["git"].get("commit") and manifest["hardware"].get("cpu") and manifest["seeds"]
    cell = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny").cell("r50-effb0")
    for stage in cell.stages():  # every stage of the default cell, for the committed config and code
        stored = json.loads(reference.result_path("tiny", stage.name).read_text())
        assert stored["stage"]["key"] == stage.key, (
            f"{stage.name}: the reference is stale; rerun make bench and promote"
        )
    assert "commit" in label


def test_promote_copies_a_run_and_leaves_the_run_untouched(tmp_path):
    bench = load_benchmarks(REPO / "benchmarks.yaml")
    run = Workspace(tmp_path / "artifacts", tmp_path / "runs")
    cell = Planner(bench, "tiny").cell("r50-effb0")
    store_cell(run, cell, {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    before = {path: path.read_bytes() for path in (run.results / "tiny" / "stages").glob("*.json")}
    target, manifest = promote(run, tmp_path / "reference", "tiny")
    assert sorted(path.name for path in (target / "stages").glob("*.json")) == sorted(path.name for path in before)
    assert manifest["stages"] == 4 and manifest["seeds"] == [0]
    assert {path: path.read_bytes() for path in before} == before
    promote(run, tmp_path / "reference", "tiny")  # again: replaced whole, nothing left beside it
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == ["tiny"]


def test_promote_without_results_is_one_line(tmp_path):
    proc = disco_bench(
        "promote",
        "--profile",
        "tiny",
        "--results",
        str(tmp_path / "nothing"),
        "--to",
        str(tmp_path / "ref"),
        "--readme",
        "",
    )
    assert (
        proc.returncode == 2
        and len(proc.stderr.strip().splitlines()) == 1
        and "no finished stage results" in proc.stderr
    )
    assert not (tmp_path / "ref").exists()


def test_the_dry_run_scales_a_measured_stage_time_by_its_epochs(tmp_path):
    """The reference run's teacher took T s for its epochs; planned with more epochs (a changed
    profile), the estimate is T scaled by the ratio, still marked as measured."""
    from harness.plan import estimated_seconds
    from harness.results import load_result

    bench = load_benchmarks(REPO / "benchmarks.yaml")
    teacher = Planner(bench, "tiny").cell("r50-effb0").teacher
    reference = Workspace(tmp_path, REPO / "results" / "reference")
    measured = load_result(reference.result_path("tiny", teacher.name))
    assert estimated_seconds(teacher, reference) == (measured.provenance.wall_time_s, True)
    recipe = teacher.config["recipe"]
    config = {**teacher.config, "recipe": {**recipe, "epochs": 2 * recipe["epochs"]}}
    longer = teacher.__class__(teacher.name, teacher.kind, teacher.profile, config, teacher.inputs, teacher.runtime)
    seconds, is_measured = estimated_seconds(longer, reference)
    assert is_measured and seconds == measured.provenance.wall_time_s * 2
