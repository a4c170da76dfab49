"""Reports rendered from synthetic stored results (no training): n/a and pending, seed statistics
against hand-computed numbers, verdicts, and the markdown/CSV/HTML/PNG files."""

import csv
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from harness.config import Evaluation, load_benchmarks
from harness.matrix import CellPlan, Planner
from harness.report import (
    ABOVE,
    BELOW,
    CONTRADICTED,
    INCONCLUSIVE,
    OPPOSITE_DIRECTION,
    PENDING,
    REPRODUCED,
    SAME_DIRECTION,
    UNHEALTHY,
    beside_metric,
    build_report,
    compare,
    document,
    headline_metric,
    print_cell_reports,
    profile_cells,
    write_report_files,
)
from harness.report.render import render_csv, render_markdown
from harness.report.stats import t_critical
from harness.report.verdicts import ABOVE_BASELINE, NOT_ABOVE_BASELINE, OTHER_SCHEDULE
from harness.results import Provenance, StageRef, StageResult
from harness.stages import Stage
from harness.workspace import Workspace, atomic_write_json
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
SOURCE = {"source": "test_source", "confidence": "high"}
REFERENCE = {
    "sources": {"test_source": "made up for the tests"},
    "teachers": {"r50": {"top1": 67.4, **SOURCE}, "r152": {"top1": None}},
    "baselines": {"effb0": {"top1": 42.2, **SOURCE}, "r18": {"top1": 52.5, **SOURCE}},
    "pairs": {
        "r50-effb0": {
            "disco": {"top1": None, "gain_over_baseline": 19.7, "gain_source": "test_source", "gain_confidence": "high"}
        },
        "r50-r18": {"disco": {"top1": 60.6, **SOURCE}},
    },
}


@pytest.fixture(scope="module")
def bench():
    real = load_benchmarks(REPO / "benchmarks.yaml")
    evaluations = {"linear": Evaluation(), "knn": Evaluation(), "detection": Evaluation()}
    profiles = {name: profile.model_copy(update={"evals": ["linear"]}) for name, profile in real.profiles.items()}
    return real.model_copy(update={"reference": REFERENCE, "evaluations": evaluations, "profiles": profiles})


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "artifacts", tmp_path / "results")


def write_result(workspace: Workspace, stage: Stage, metrics: dict, key: str | None = None) -> Path:
    result = StageResult(
        stage=StageRef(name=stage.name, kind=stage.kind, key=key or stage.key, profile=stage.profile),
        config=stage.config,
        config_hash="0" * 64,
        inputs={},
        metrics=metrics,
        provenance=Provenance(
            git={},
            packages={},
            hardware={},
            seed=stage.config["seed"],
            wall_time_s=1.0,
            started_at="t0",
            finished_at="t1",
        ),
    )
    path = workspace.result_path(stage.profile, stage.name)
    atomic_write_json(path, result.model_dump())
    return path


def store_cell(workspace: Workspace, cell: CellPlan, top1: dict[str, float], evaluation: str = "linear") -> None:
    for role, value in top1.items():
        write_result(workspace, cell.evals[(role, evaluation)], {"top1": value, "top5": 99.0, "num_test": 1000})


def rows_of(report, pair: str, evaluation: str = "linear"):
    pair_report = next(p for p in report.pairs if p.pair == pair)
    return next(ev for ev in pair_report.evals if ev.evaluation == evaluation)


def test_nulls_show_na_and_a_missing_stage_shows_pending(bench, workspace):
    cell = Planner(bench, "tiny").cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 11.0, "baseline": 50.0, "teacher": 70.0})  # no DisCo result
    report = build_report(bench, [cell], workspace)
    ev = rows_of(report, "r50-effb0")
    assert ev.rows["disco"].status == PENDING and ev.rows["disco"].paper is None and ev.verdict == PENDING
    assert ev.rows["gain_disco"].paper.value == 19.7 and ev.rows["baseline"].paper.value == 42.2
    markdown = render_markdown(document(report))
    assert "| DisCo student | pending | pending |  | n/a | n/a | pending |" in markdown
    assert "| SimCLR baseline | done | 50.0 |  | 42.2 | n/a | > control | test_source (high) |" in markdown
    records = {r["role"]: r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert (
        records["disco"]["paper"] == "n/a"
        and records["disco"]["status"] == PENDING
        and records["disco"]["mean"] == "n/a"
    )
    assert records["teacher"]["paper"] == "67.4000" and records["teacher"]["delta"] == "n/a"  # context only on tiny


def test_stale_result_is_not_used(bench, workspace):
    cell = Planner(bench, "tiny").cell("r50-effb0")
    write_result(workspace, cell.evals[("disco", "linear")], {"top1": 99.0}, key="0" * 64)
    row = rows_of(build_report(bench, [cell], workspace), "r50-effb0").rows["disco"]
    assert row.status == "stale" and row.stat is None


def test_multi_seed_mean_std_and_t_interval_match_hand_computation(bench, workspace):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(3)]
    for cell, baseline, disco in zip(cells, (50.0, 52.0, 57.0), (60.0, 63.0, 66.0)):
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": baseline, "disco": disco, "teacher": 70.0})
    ev = rows_of(build_report(bench, cells, workspace), "r50-effb0")
    baseline, gain = ev.rows["baseline"].stat, ev.rows["gain_disco"].stat
    # baseline 50, 52, 57: mean 53, sample sd sqrt(26/2) = 3.6056, 95% CI 53 ± 4.303 * 3.6056 / sqrt(3) = 53 ± 8.957
    assert baseline.mean == pytest.approx(53.0) and baseline.std == pytest.approx(3.605551, abs=1e-5)
    assert baseline.ci95 == pytest.approx((44.0428, 61.9572), abs=1e-3)
    # gains paired by seed: 10, 11, 9: mean 10, sd 1, CI 10 ± 4.303 / sqrt(3) = 10 ± 2.4843
    assert (
        gain.values == (10.0, 11.0, 9.0)
        and gain.std == pytest.approx(1.0)
        and gain.ci95 == pytest.approx((7.5157, 12.4843), abs=1e-3)
    )
    # tiny's data is not the paper's: its number is context, no delta is computed against it
    assert ev.rows["gain_disco"].paper.value == 19.7 and ev.rows["gain_disco"].delta is None


def test_partial_seeds_are_counted(bench, workspace):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(2)]
    store_cell(workspace, cells[0], {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    store_cell(workspace, cells[1], {"baseline": 51.0})
    ev = rows_of(build_report(bench, cells, workspace), "r50-effb0")
    assert (
        ev.rows["baseline"].status == "done"
        and ev.rows["disco"].status == "1/2 seeds"
        and ev.rows["gain_disco"].stat.values == (10.0,)
    )


def test_t_table():
    assert (t_critical(1), t_critical(2), t_critical(9), t_critical(35), t_critical(500)) == (
        12.706,
        4.303,
        2.262,
        2.042,
        1.960,
    )


def test_one_seed_shows_a_direction_never_a_reproduction(bench, workspace):
    cell = Planner(bench, "tiny").cell("r50-effb0")
    cases = [
        (
            {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0},
            SAME_DIRECTION,
            ("> control", "> baseline"),
        ),
        (
            {"random_init": 10.0, "baseline": 50.0, "disco": 45.0, "teacher": 70.0},
            OPPOSITE_DIRECTION,
            ("> control", "<= baseline"),
        ),
        (
            {"random_init": 55.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0},
            SAME_DIRECTION,
            ("<= control", "> baseline"),
        ),
    ]
    for values, verdict, (baseline, disco) in cases:
        store_cell(workspace, cell, values)
        ev = rows_of(build_report(bench, [cell], workspace), "r50-effb0")
        assert (ev.verdict, ev.rows["baseline"].verdict, ev.rows["disco"].verdict) == (verdict, baseline, disco)
        assert (
            "one seed" in ev.note and ev.rows["teacher"].verdict == "context"
        )  # the ImageNet number is context only here


@pytest.mark.parametrize(
    ("disco", "verdict"),
    [
        ((60.0, 61.0, 62.0), REPRODUCED),  # gains 10, 9, 10: the 95% interval [8.2, 10.8] excludes 0
        ((45.0, 48.0, 47.0), CONTRADICTED),  # gains -5, -4, -5: [-6.1, -3.2]
        ((58.0, 47.0, 47.0), INCONCLUSIVE),  # gains 8, -4, -5: the interval includes 0
    ],
)
def test_several_seeds_decide_by_the_gain_interval(bench, workspace, disco, verdict):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(3)]
    for cell, baseline, value in zip(cells, (50.0, 52.0, 52.0), disco):
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": baseline, "disco": value, "teacher": 70.0})
    ev = rows_of(build_report(bench, cells, workspace), "r50-effb0")
    assert ev.verdict == verdict and ev.rows["gain_disco"].verdict == verdict and "95% CI" in ev.note


def store_health(workspace, stage, status, cosine):
    write_result(
        workspace,
        stage,
        {
            "health": status,
            "health_reasons": [f"mean pairwise cosine {cosine} > 0.9"] if status == "collapsed" else [],
            "final_emb_cosine": cosine,
            "final_ce_chance_ratio": 0.5,
        },
    )


def test_a_collapsed_encoder_makes_the_cell_unhealthy_whatever_its_numbers(bench, workspace):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(3)]
    for cell, baseline, value in zip(cells, (50.0, 52.0, 52.0), (60.0, 61.0, 62.0)):
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": baseline, "disco": value, "teacher": 70.0})
        store_health(workspace, cell.baseline, "healthy", 0.2)
        store_health(workspace, cell.methods["disco"], "healthy", 0.3)
    store_health(workspace, cells[0].teacher, "healthy", 0.1)
    assert rows_of(build_report(bench, cells, workspace), "r50-effb0").verdict == REPRODUCED
    store_health(workspace, cells[0].teacher, "collapsed", 0.99)
    report = build_report(bench, cells, workspace)
    ev = rows_of(report, "r50-effb0")
    assert ev.verdict == UNHEALTHY and cells[0].teacher.name in ev.note and "would be `reproduced`" in ev.note
    markdown = render_markdown(document(report))
    assert f"| SimCLR teacher | {cells[0].teacher.name} | collapsed | 0.50 | 0.99 |" in markdown


def test_discrimination_compares_teacher_and_control_with_the_seed_noise(bench, workspace):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(2)]
    for cell, control in zip(cells, (10.0, 14.0)):  # control sd 2.83: twice that is 5.66
        store_cell(workspace, cell, {"random_init": control, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    assert "separates a trained encoder" in rows_of(build_report(bench, cells, workspace), "r50-effb0").discrimination
    for cell, control in zip(cells, (66.0, 70.0)):
        store_cell(workspace, cell, {"random_init": control, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    assert "does NOT separate" in rows_of(build_report(bench, cells, workspace), "r50-effb0").discrimination


def test_the_reference_run_is_a_column_beside_this_run(bench, workspace, tmp_path):
    reference = Workspace(tmp_path / "ref-artifacts", tmp_path / "reference")
    cell = Planner(bench, "tiny").cell("r50-effb0")
    store_cell(reference, cell, {"random_init": 10.0, "baseline": 40.0, "disco": 47.0, "teacher": 70.0})
    report = build_report(
        bench, [cell], workspace, reference=reference, reference_label="results/reference/tiny (commit abc)"
    )
    ev = rows_of(report, "r50-effb0")
    assert (
        ev.rows["disco"].status == PENDING
        and ev.rows["disco"].reference.mean == 47.0
        and ev.rows["gain_disco"].reference.mean == 7.0
    )
    markdown = render_markdown(document(report))
    assert "| encoder | status | this run | 95% CI | reference run | paper |" in markdown
    assert (
        "| DisCo student | pending | pending |  | 47.0 | n/a |" in markdown
        and "Reference run: results/reference/tiny (commit abc)." in markdown
    )


def test_absolute_verdicts_at_the_paper_profile(bench, workspace):
    assert [compare(m, 60.6, 1.0) for m in (60.0, 61.6, 59.5, 61.7)] == [REPRODUCED, REPRODUCED, BELOW, ABOVE]
    assert compare(58.0, 60.6, 3.0) == REPRODUCED
    cell = Planner(bench, "paper").cell("r50-r18")
    store_cell(workspace, cell, {"random_init": 1.0, "baseline": 52.0, "disco": 58.0, "teacher": 67.0})
    ev = rows_of(build_report(bench, [cell], workspace, tolerance=1.0), "r50-r18")
    assert (ev.verdict, ev.rows["baseline"].verdict, ev.rows["teacher"].verdict, ev.rows["random_init"].verdict) == (
        BELOW,
        REPRODUCED,
        REPRODUCED,
        "n/a",
    )
    assert ev.rows["gain_disco"].paper.derived and ev.rows["gain_disco"].paper.value == pytest.approx(60.6 - 52.5)
    assert rows_of(build_report(bench, [cell], workspace, tolerance=3.0), "r50-r18").verdict == REPRODUCED
    # no paper DisCo number: the stated gain decides
    cell = Planner(bench, "paper").cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 1.0, "baseline": 42.0, "disco": 62.0, "teacher": 67.0})
    assert rows_of(build_report(bench, [cell], workspace), "r50-effb0").verdict == REPRODUCED  # gain 20.0 vs 19.7


def test_headline_metric_per_evaluation():
    assert headline_metric("linear", [{"top5": 1.0, "top1": 2.0}]) == "top1"  # a result from before top1_best
    for evaluation in ("linear", "semi_linear_1pct", "semi_finetune_10pct", "transfer_cifar10", "transfer_digits"):
        assert (
            headline_metric(evaluation, [{"top1": 2.0, "top5": 9.0, "top1_best": 3.0, "top5_at_best": 9.5}])
            == "top1_best"
        ), evaluation
    assert headline_metric("knn", [{"top1": 2.0, "top5": 3.0}]) == "top1"
    # what detection writes (detectron2's bbox dict and the embedded back end alike)
    for evaluation in ("detection", "detection_voc", "detection_coco"):
        assert (
            headline_metric(evaluation, [{"AP": 30.0, "AP50": 50.0, "AP75": 31.0, "depth": 18, "final_loss": 0.3}])
            == "AP"
        ), evaluation
    assert headline_metric("detection", [{"map": 30.0}]) == "map"
    assert headline_metric("segmentation", [{"num_test": 5, "miou": 40.0}]) == "miou"
    assert headline_metric("knn", []) == "top1"


def test_a_column_per_evaluation_and_discovered_seeds(bench, workspace):
    planner = Planner(bench, "tiny")
    for seed in range(2):
        cell = planner.cell("r50-effb0", seed, ["linear", "knn", "detection"])
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0 + seed, "disco": 60.0, "teacher": 70.0})
        store_cell(
            workspace, cell, {"random_init": 5.0, "baseline": 40.0, "disco": 45.0, "teacher": 50.0}, evaluation="knn"
        )
        for role, value in {"random_init": 1.0, "baseline": 20.0, "disco": 25.0, "teacher": 30.0}.items():
            write_result(workspace, cell.evals[(role, "detection")], {"AP": value, "AP50": 2 * value, "AP75": 10.0})
    cells = profile_cells(planner, workspace)
    assert {(c.pair, c.seed) for c in cells} == {("r50-effb0", 0), ("r50-effb0", 1)} | {
        (p, 0) for p in bench.default_pairs
    }
    report = build_report(bench, cells, workspace)
    assert report.evaluations() == [("linear", "top1"), ("knn", "top1"), ("detection", "AP")]
    markdown = render_markdown(document(report))
    assert (
        "| pair | teacher | student | seeds | linear top1: DisCo (gain) verdict | knn top1: DisCo (gain) verdict | detection AP: DisCo (gain) verdict |"
        in markdown
    )
    assert "| DisCo student | done | 25.0 ± 0.00 | 50.0 ± 0.00 |" in markdown  # AP50 beside AP
    assert (
        "| r50-effb0 | r50 | effb0 | 2 | 60.0 (+9.5) reproduced | 45.0 (+5.0) reproduced | 25.0 (+5.0) reproduced |"
        in markdown
    )


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_files_are_written_parseable_and_results_untouched(bench, workspace):
    planner = Planner(bench, "tiny")
    cells = [planner.cell("r50-effb0", seed) for seed in range(2)] + [planner.cell("r50-r18")]
    for cell in cells[:2]:
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0 + cell.seed, "disco": 60.0, "teacher": 70.0})
    stored = {
        path: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in (workspace.results / "tiny" / "stages").glob("*.json")
    }
    written = write_report_files(build_report(bench, cells, workspace), workspace)
    folder = workspace.results / "tiny"
    assert {path.relative_to(workspace.results).as_posix() for path in written} == {
        "tiny/report.md",
        "tiny/report.csv",
        "tiny/report.html",
        "tiny/plots/effb0-linear.png",
        "tiny/plots/r18-linear.png",
    }
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in stored} == stored
    records = list(csv.DictReader((folder / "report.csv").open()))
    assert len(records) == 2 * 5 and {r["role"] for r in records} == {
        "random_init",
        "baseline",
        "disco",
        "teacher",
        "gain_disco",
    }
    effb0_gain = next(r for r in records if r["pair"] == "r50-effb0" and r["role"] == "gain_disco")
    assert (effb0_gain["n"], effb0_gain["values"], effb0_gain["mean"], effb0_gain["std"]) == (
        "2",
        "10.0000;9.0000",
        "9.5000",
        "0.7071",
    )
    disco_cell = next(r for r in records if r["pair"] == "r50-effb0" and r["role"] == "disco")
    assert disco_cell["paper_tables"] == "table1_linear"  # the CSV holds the paper tables' cells in long form
    parser = _Tags()
    parser.feed((folder / "report.html").read_text())
    assert (
        parser.tags.count("table") == 8 and parser.tags.count("img") == 2
    )  # overview, the paper's Table 1, teacher-variant and transformer tables (linear), a health and a linear table per pair
    assert all(
        (folder / "plots" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        for name in ("effb0-linear.png", "r18-linear.png")
    )


def test_print_cell_reports_prints_the_cells_and_writes_the_profile_files(bench, workspace):
    cell = Planner(bench, "tiny", smoke=True).cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    console = Console(file=io.StringIO(), width=120)
    written = print_cell_reports(console, bench, [cell], workspace)
    output = console.file.getvalue()
    assert "DisCo - baseline gain" in output and "same direction" in output
    assert workspace.results / "tiny-smoke" / "report.md" in written and not (workspace.results / "README.md").exists()


def test_report_command_renders_stored_results(workspace, monkeypatch, capsys):
    bench = load_benchmarks(REPO / "benchmarks.yaml")
    store_cell(
        workspace,
        Planner(bench, "tiny").cell("r50-effb0"),
        {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0},
    )
    where = ["--results", str(workspace.results), "--artifacts", str(workspace.artifacts)]
    code, out, err = run_cli(monkeypatch, capsys, "report", "--profile", "tiny", *where)
    assert code == 0, err
    markdown = (workspace.results / "tiny" / "report.md").read_text()
    assert (
        "60.0 (+10.0) same direction" in markdown
        and (workspace.results / "tiny" / "report.html").exists()
        and "Overview" in out
    )
    # stdout is not a terminal here (a CI or Slurm log): tables come as Markdown, no cell cut to a width
    assert "60.0 (+10.0) same direction" in out and "…" not in out and "| encoder | status | this run |" in out
    code, _, err = run_cli(monkeypatch, capsys, "report", "--pair", "r50-efb0", *where)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "did you mean 'r50-effb0'" in err


def store_probe(workspace, cell, best: dict[str, float], last: dict[str, float], evaluation: str = "linear") -> None:
    for role in best:
        write_result(
            workspace,
            cell.evals[(role, evaluation)],
            {"top1": last[role], "top5": 90.0, "top1_best": best[role], "top5_at_best": 91.0, "num_test": 1000},
        )


def test_probes_report_the_official_best_epoch_with_the_last_epoch_beside_it(bench, workspace):
    cell = Planner(bench, "paper").cell("r50-r18")
    best = {"random_init": 5.0, "baseline": 52.5, "disco": 60.6, "teacher": 67.4}
    store_probe(workspace, cell, best, {role: value - 2.0 for role, value in best.items()})
    report = build_report(bench, [cell], workspace)
    ev = rows_of(report, "r50-r18")
    assert (ev.metric, ev.beside) == ("top1_best", ("top1", "last epoch"))
    # the paper's top-1 is the official (best-epoch) number: compared with top1_best, not the last epoch
    assert (
        ev.rows["disco"].stat.mean == 60.6
        and ev.rows["disco"].paper.value == 60.6
        and ev.rows["disco"].verdict == REPRODUCED
    )
    assert ev.rows["disco"].beside.mean == 58.6
    markdown = render_markdown(document(report))
    assert "| encoder | status | this run | last epoch | 95% CI | paper |" in markdown
    assert "| DisCo student | done | 60.6 | 58.6 |  | 60.6 | +0.0 | reproduced |" in markdown
    assert (
        "`measured` is the best epoch's top-1" in markdown
        and "`last epoch` is the top-1 after the final epoch" in markdown
    )
    record = next(r for r in csv.DictReader(io.StringIO(render_csv(report))) if r["role"] == "disco")
    assert (record["metric"], record["mean"], record["beside_metric"], record["beside_mean"]) == (
        "top1_best",
        "60.6000",
        "top1",
        "58.6000",
    )


def test_an_evaluation_that_skips_an_encoder_shows_na_for_it(bench, workspace):
    evaluations = {**bench.evaluations, "detection": Evaluation(archs=["r18"])}
    restricted = bench.model_copy(update={"evaluations": evaluations})
    cell = Planner(restricted, "tiny").cell("r50-r18", 0, ["detection"])
    assert ("teacher", "detection") not in cell.evals and (
        "disco",
        "detection",
    ) in cell.evals  # the r50 teacher is skipped
    for role, value in {"random_init": 1.0, "baseline": 20.0, "disco": 25.0}.items():
        write_result(workspace, cell.evals[(role, "detection")], {"AP": value, "AP50": 40.0})
    ev = rows_of(build_report(restricted, [cell], workspace), "r50-r18", "detection")
    assert (ev.rows["teacher"].status, ev.rows["teacher"].verdict) == ("n/a", "n/a") and ev.verdict == SAME_DIRECTION


def test_bf16_training_is_reported_as_a_deviation(bench, workspace):
    fp32_cell, bf16_cell = (
        Planner(bench, "tiny", precision="fp32").cell("r50-effb0"),  # --precision: every stage, the teacher too
        Planner(bench, "tiny", precision="bf16").cell("r50-effb0"),
    )
    assert "Deviations" not in render_markdown(document(build_report(bench, [fp32_cell], workspace)))
    markdown = render_markdown(document(build_report(bench, [bf16_cell], workspace)))
    assert "Deviations from the official computation (r50-effb0): bf16 autocast in training" in markdown
    assert "distill-disco-r50-effb0-tiny-s0" in markdown
    # the tiny profile's teacher_precision: the teacher alone, in its pretraining and as the frozen teacher
    markdown = render_markdown(document(build_report(bench, [Planner(bench, "tiny").cell("r50-effb0")], workspace)))
    assert (
        "bf16 autocast in training (precision: bf16; the official code is fp32, embeddings differ by ~1e-2) for pretrain-simclr-r50-tiny-s0;"
        in markdown
    )
    assert (
        "the frozen teacher's forward in bf16 autocast (teacher_precision: bf16) for distill-disco-r50-effb0-tiny-s0"
        in markdown
    )


# ---------------------------------------------------------------- a row per method


def with_seed_reference(bench):
    pairs = {**REFERENCE["pairs"], "r50-r18": {"disco": {"top1": 60.6, **SOURCE}, "seed": {"top1": 57.6, **SOURCE}}}
    return bench.model_copy(update={"reference": {**REFERENCE, "pairs": pairs}})


def test_each_method_has_a_row_and_a_gain_row_with_the_papers_number(bench, workspace):
    bench = with_seed_reference(bench)
    cell = Planner(bench, "paper").cell("r50-r18", 0, ["linear"], ["disco", "seed", "rkd"])
    store_cell(
        workspace,
        cell,
        {"random_init": 1.0, "baseline": 52.0, "disco": 60.0, "seed": 57.0, "rkd": 50.0, "teacher": 67.0},
    )
    ev = rows_of(build_report(bench, [cell], workspace, tolerance=1.0), "r50-r18")
    assert list(ev.rows) == [
        "random_init",
        "baseline",
        "disco",
        "seed",
        "rkd",
        "teacher",
        "gain_disco",
        "gain_seed",
        "gain_rkd",
    ]
    assert ev.rows["seed"].paper.value == 57.6 and ev.rows["seed"].verdict == REPRODUCED
    assert ev.rows["gain_seed"].stat.mean == 5.0 and ev.rows["gain_seed"].paper.value == pytest.approx(57.6 - 52.5)
    assert ev.rows["rkd"].paper is None and ev.rows["gain_rkd"].stat.mean == -2.0
    assert ev.primary == "disco" and ev.verdict == REPRODUCED  # DisCo 60.0 vs the paper's 60.6
    markdown = render_markdown(document(build_report(bench, [cell], workspace)))
    assert "| SEED student | done | 57.0 |" in markdown and "| SEED - baseline gain | done | +5.0 |" in markdown
    roles = [r["role"] for r in csv.DictReader(io.StringIO(render_csv(build_report(bench, [cell], workspace))))]
    assert roles == list(ev.rows)


def test_without_disco_the_first_method_gives_the_verdict_and_direction_rows_per_method(bench, workspace):
    cell = Planner(bench, "tiny").cell("r50-effb0", 0, ["linear"], ["seed", "disco_only_mse"])
    store_cell(
        workspace, cell, {"random_init": 10.0, "baseline": 50.0, "seed": 60.0, "disco_only_mse": 45.0, "teacher": 70.0}
    )
    ev = rows_of(build_report(bench, [cell], workspace), "r50-effb0")
    assert ev.primary == "seed" and ev.verdict == ev.rows["gain_seed"].verdict
    assert (ev.rows["seed"].verdict, ev.rows["disco_only_mse"].verdict) == (ABOVE_BASELINE, NOT_ABOVE_BASELINE)


def test_stored_results_of_another_method_bring_its_rows_into_the_profile_report(bench, workspace):
    planner = Planner(bench, "tiny")
    cell = planner.cell("r50-effb0", 0, ["linear"], ["disco", "seed"])
    store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "seed": 58.0, "teacher": 70.0})
    cells = profile_cells(planner, workspace)
    assert list(next(c for c in cells if c.pair == "r50-effb0").methods) == ["disco", "seed"]
    ev = rows_of(build_report(bench, cells, workspace), "r50-effb0")
    assert ev.rows["seed"].stat.mean == 58.0


def test_headline_and_beside_metrics_come_from_the_evaluation_registry(monkeypatch):
    import dataclasses

    from disco.evals import EVALUATIONS

    probe = {"top1": 2.0, "top1_best": 3.0, "AP50": 7.0}
    assert beside_metric("linear", "top1_best", [probe]) == ("top1", "last epoch")
    assert beside_metric("linear", "top1", [probe]) is None  # an old result's fallback headline: nothing beside it
    assert beside_metric("detection", "AP", [{"AP": 1.0}]) is None  # no AP50 stored
    changed = dataclasses.replace(EVALUATIONS["knn"], headline=("top5", "top1"), beside=("top1", "top-1"))
    monkeypatch.setitem(EVALUATIONS, "knn", changed)
    assert headline_metric("knn", [{"top1": 2.0, "top5": 3.0}]) == "top5"
    assert beside_metric("knn", "top5", [{"top1": 2.0, "top5": 3.0}]) == ("top1", "top-1")


def test_eval_checkpoint_table_cells_follow_the_registry():
    from harness.commands.eval import headline_cells

    assert headline_cells("linear", {"top1": 2.0, "top1_best": 3.5}) == (
        "top1_best (best epoch)",
        "3.50",
        "last epoch 2.00",
    )
    assert headline_cells("knn", {"top1": 2.0, "top5": 3.0}) == ("top1", "2.00", "")
    assert headline_cells("detection_voc", {"AP": 30.0, "AP50": 50.0}) == ("AP", "30.00", "AP50 50.00")


def test_one_decision_whether_a_stage_is_done_for_runner_status_and_report(workspace):
    from harness.commands.listing import stage_state
    from harness.report.collect import stored
    from harness.stages import DAMAGED, DONE, PENDING, STALE

    stage = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny").baseline("effb0", 0)
    assert stage.stored(workspace).state == PENDING and stored(workspace, stage).status == PENDING
    write_result(workspace, stage, {"health": "healthy"}, key="f" * 64)
    assert stage.stored(workspace).state == STALE and stored(workspace, stage).status == STALE
    assert stage_state(stage, workspace).state == STALE and not stage.is_done(workspace)
    path = write_result(workspace, stage, {"health": "healthy"})
    assert stage.stored(workspace).state == DONE and stage.is_done(workspace)
    assert stage_state(stage, workspace).state == DONE and stored(workspace, stage).status == DONE
    payload = json.loads(path.read_text())
    final = workspace.artifacts / "stages" / "x" / "final.pt"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"torn")
    path.write_text(json.dumps(payload | {"artifacts": {"final": "stages/x/final.pt"}}))
    assert stage.stored(workspace).state == DAMAGED and not stage.is_done(workspace)
    assert stage_state(stage, workspace).state == DAMAGED
    assert stored(workspace, stage).metrics == {"health": "healthy"}  # measured before the checkpoint was torn


def test_a_lower_is_better_headline_reverses_the_direction_verdicts(bench, workspace, monkeypatch):
    import dataclasses

    from disco.evals import EVALUATIONS

    lower = dataclasses.replace(EVALUATIONS["linear"], headline=("top1",), beside=None, higher_is_better=False)
    monkeypatch.setitem(EVALUATIONS, "linear", lower)
    cell = Planner(bench, "tiny").cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 70.0, "baseline": 50.0, "disco": 40.0, "teacher": 10.0})
    ev = rows_of(build_report(bench, [cell], workspace), "r50-effb0")
    assert (ev.verdict, ev.rows["baseline"].verdict, ev.rows["disco"].verdict) == (
        SAME_DIRECTION,
        "> control",
        "> baseline",
    )
    assert "it separates them" in ev.discrimination and "lower is better" in ev.discrimination
    monkeypatch.setitem(EVALUATIONS, "linear", dataclasses.replace(lower, higher_is_better=True))
    ev = rows_of(build_report(bench, [cell], workspace), "r50-effb0")
    assert (ev.verdict, ev.rows["disco"].verdict) == (OPPOSITE_DIRECTION, "<= baseline")
    assert "does NOT separate" in ev.discrimination


@pytest.mark.parametrize(
    ("gains", "higher_is_better", "verdict"),
    [
        ((10.0, 9.0, 10.0), True, REPRODUCED),
        ((10.0, 9.0, 10.0), False, CONTRADICTED),
        ((-10.0, -9.0, -10.0), False, REPRODUCED),
        ((-10.0, 9.0, 1.0), False, INCONCLUSIVE),
    ],
)
def test_gain_verdict_follows_the_metric_direction(gains, higher_is_better, verdict):
    from harness.report.stats import Stat
    from harness.report.verdicts import gain_verdict

    assert gain_verdict(Stat(gains), higher_is_better)[0] == verdict


def test_semi_supervised_numbers_come_from_where_the_evaluation_registry_says(bench, workspace):
    """semi_linear_1pct reads `reference.semi_supervised.<student>.<entry>.pct1` (disco.evals.PaperNumbers):
    beside the measured numbers at the paper profile, as context only (no delta, no verdict) on tiny."""
    semi = {"baseline": {"pct1": 30.9, **SOURCE}, "disco_r50": {"pct1": 39.2, **SOURCE}}
    bench = bench.model_copy(
        update={
            "reference": REFERENCE | {"semi_supervised": {"protocol_note": "x", "r18": semi, "effb0": semi}},
            "evaluations": bench.evaluations | {"semi_linear_1pct": Evaluation()},
        }
    )
    cell = Planner(bench, "paper").cell("r50-r18", 0, ["semi_linear_1pct"])
    values = {"random_init": 1.0, "baseline": 31.0, "disco": 39.0, "teacher": 50.0}
    for role, value in values.items():
        write_result(workspace, cell.evals[(role, "semi_linear_1pct")], {"top1": value, "top1_best": value})
    ev = rows_of(build_report(bench, [cell], workspace, tolerance=1.0), "r50-r18", "semi_linear_1pct")
    assert (ev.rows["baseline"].paper.value, ev.rows["disco"].paper.value) == (30.9, 39.2)
    assert ev.rows["teacher"].paper is None and ev.rows["disco"].delta == pytest.approx(-0.2)
    assert ev.rows["gain_disco"].paper.derived and ev.rows["gain_disco"].paper.value == pytest.approx(39.2 - 30.9)
    assert ev.verdict == REPRODUCED and "| DisCo student | done | 39.0 |" in render_markdown(
        document(build_report(bench, [cell], workspace))
    )
    # another teacher's DisCo has no number; tiny shows the paper's number as context, never a delta
    other = Planner(bench, "paper").cell("r152-r18", 0, ["semi_linear_1pct"])
    for role, value in values.items():
        write_result(workspace, other.evals[(role, "semi_linear_1pct")], {"top1": value, "top1_best": value})
    assert rows_of(build_report(bench, [other], workspace), "r152-r18", "semi_linear_1pct").rows["disco"].paper is None
    tiny = Planner(bench, "tiny").cell("r50-effb0", 0, ["semi_linear_1pct"])
    for role, value in values.items():
        write_result(workspace, tiny.evals[(role, "semi_linear_1pct")], {"top1": value, "top1_best": value})
    row = rows_of(build_report(bench, [tiny], workspace), "r50-effb0", "semi_linear_1pct").rows["disco"]
    assert row.paper.value == 39.2 and row.delta is None


def test_paper_tables_lay_out_students_by_teachers_from_stored_results(bench, workspace):
    """Table 1 at the paper profile from constructed results of two pairs (two teachers), one of them
    over two seeds, with DisCo and SEED: each cell is this run, its interval and the paper; a cell not
    run names the command that fills it; a pair the matrix lacks is '-'."""
    bench = with_seed_reference(bench)
    planner = Planner(bench, "paper")
    cells = [planner.cell("r50-r18", seed, ["linear"], ["disco", "seed"]) for seed in (0, 1)]
    cells.append(planner.cell("r152-r18", 0, ["linear"], ["disco", "seed"]))
    for cell, disco in zip(cells, (60.0, 61.0, 65.0)):
        store_cell(
            workspace, cell, {"random_init": 1.0, "baseline": 52.0, "disco": disco, "seed": 57.0, "teacher": 67.0}
        )
    report = build_report(bench, cells, workspace, tolerance=1.0)
    table = next(t for t in report.tables if t.name == "table1_linear")
    assert table.teachers == ["r50", "r101", "r152", "r50w2"] and table.measured
    rows = {(row.student, row.role): row for row in table.rows}
    assert [role for student, role in rows if student == "r18"] == ["baseline", "disco", "seed"]
    disco_r50, disco_r101, disco_r152, _ = rows[("r18", "disco")].cells
    assert disco_r50.row.stat.mean == pytest.approx(60.5) and disco_r50.row.stat.n == 2
    assert disco_r50.paper.value == 60.6 and disco_r50.row.verdict == REPRODUCED and disco_r50.command == ""
    assert disco_r152.row.stat.mean == 65.0 and disco_r152.paper is None
    assert disco_r101.row is None and disco_r101.command == "disco-bench run --pair r101-r18 --profile paper"
    assert rows[("r18", "seed")].cells[1].command.endswith("--methods seed")
    assert rows[("effb0", "baseline")].cells[0].paper.value == 42.2  # not run: the paper's number all the same
    markdown = render_markdown(document(report))
    assert "**Table 1 · ImageNet linear evaluation (top-1), students x teachers · linear top1 (%)**" in markdown
    line = next(line for line in markdown.splitlines() if line.startswith("| r18 | DisCo student |"))
    assert line.split(" | ")[2].startswith("60.5 [") and "paper 60.6 · reproduced" in line
    assert "not run · paper n/a · `disco-bench run --pair r101-r18 --profile paper`" in line
    assert [t.name for t in report.tables if t.evaluation == "linear"] == [
        "table1_linear",
        "teacher_variants",
        "transformers",
    ]
    vit = next(t for t in report.tables if t.name == "transformers")
    assert [cell.pair for cell in vit.rows[1].cells] == ["vits-vitt", None]  # no pair xcits -> vitt in the matrix
    assert (
        "| vitt | baseline | not run · paper n/a · `disco-bench run --pair vits-vitt --profile paper` | - |" in markdown
    )


def test_the_teacher_variant_table_and_where_each_teacher_comes_from(bench, workspace, monkeypatch, tmp_path):
    """Table 6 (SwAV / DeepCluster-v2 / SeLa-v2 teachers, R-34 student): a cell run shows its numbers, the
    others n/a and their command; the notes say which teacher was imported and which trained here."""
    monkeypatch.chdir(tmp_path)  # no released file anywhere
    for name in [name for name in os.environ if name.endswith("_CHECKPOINT")]:
        monkeypatch.delenv(name)
    swav = Planner(bench, "paper").cell("r50swav-r34", 0, ["linear"])
    store_cell(workspace, swav, {"random_init": 1.0, "baseline": 57.0, "disco": 62.0, "teacher": 75.0})
    r152 = Planner(bench, "paper", pretrain_teachers=True).cell("r152-r18", 0, ["linear"])
    report = build_report(bench, [swav, r152], workspace)
    assert report.teachers == {
        "r50swav": "imported (swav_800ep_pretrain.pth.tar)",
        "r152": "trained here (MoCo-v2, 800 epochs)",
    }
    table = next(t for t in report.tables if t.name == "teacher_variants")
    assert table.teachers == ["r50", "r50swav", "r50dc2", "r50sela2"]
    rows = {(row.student, row.role): row for row in table.rows}
    assert rows[("r34", "disco")].cells[1].row.stat.mean == 62.0
    markdown = render_markdown(document(report))
    variants = markdown.split("Teacher pre-training methods")[1]
    line = next(line for line in variants.splitlines() if line.startswith("| r34 | DisCo student |"))
    assert line.split(" | ")[3].startswith("62.0")
    for teacher in ("r50dc2", "r50sela2"):
        assert f"not run · paper n/a · `disco-bench run --pair {teacher}-r34 --profile paper`" in line
    assert (
        "Teachers: r50swav imported (swav_800ep_pretrain.pth.tar); r152 trained here (MoCo-v2, 800 epochs)." in markdown
    )


def test_paper_tables_of_a_smoke_run_name_the_smoke_command(bench, workspace):
    cell = Planner(bench, "tiny", smoke=True).cell("r50-effb0")
    store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0, "disco": 60.0, "teacher": 70.0})
    table = build_report(bench, [cell], workspace).tables[0]
    assert table.rows[1].cells[0].row.stat.mean == 50.0
    assert table.rows[1].cells[1].command == "disco-bench run --pair r101-effb0 --profile tiny --smoke"


@pytest.mark.parametrize(
    ("schedule", "verdict"),
    [
        ({}, REPRODUCED),  # the protocol's schedule: compared
        ({"epochs": 200}, REPRODUCED),  # the run's 200 epochs: compared
        ({"epochs": 800}, OTHER_SCHEDULE),  # an 800-epoch number against a 200-epoch run: not compared
        ({"schedule": "SEED's abstract, schedule unverified"}, OTHER_SCHEDULE),
    ],
)
def test_a_paper_number_from_another_schedule_is_context_not_a_verdict(bench, workspace, schedule, verdict):
    pairs = {**REFERENCE["pairs"], "r50-r18": {"seed": {"top1": 57.6, **SOURCE, **schedule}}}
    bench = bench.model_copy(update={"reference": {**REFERENCE, "pairs": pairs}})
    cell = Planner(bench, "paper").cell("r50-r18", 0, ["linear"], ["seed"])
    assert cell.methods["seed"].config["recipe"]["epochs"] == 200
    store_cell(workspace, cell, {"random_init": 1.0, "baseline": 52.0, "seed": 57.0, "teacher": 67.0})
    ev = rows_of(build_report(bench, [cell], workspace, tolerance=1.0), "r50-r18")
    assert ev.verdict == verdict and ev.rows["seed"].verdict == verdict
    assert ev.rows["seed"].paper.value == 57.6  # shown either way
    if verdict == OTHER_SCHEDULE:
        assert ev.rows["seed"].delta is None and "compared only with a run of that schedule" in ev.note
        assert ev.rows["gain_seed"].verdict in (OTHER_SCHEDULE, "n/a")


def test_a_run_with_only_seed_has_verdicts_that_name_seed(bench, workspace):
    cells = [Planner(bench, "tiny").cell("r50-effb0", seed, ["linear"], ["seed"]) for seed in (0, 1, 2)]
    for cell, seed_top1 in zip(cells, (58.0, 60.0, 59.0)):
        store_cell(workspace, cell, {"random_init": 10.0, "baseline": 50.0, "seed": seed_top1, "teacher": 70.0})
    report = build_report(bench, cells, workspace)
    ev = rows_of(report, "r50-effb0")
    assert ev.primary == "seed" and ev.verdict == REPRODUCED and list(ev.rows)[-1] == "gain_seed"
    assert "SEED" in ev.note and "DisCo" not in ev.note
    markdown = render_markdown(document(report))
    verdicts = [line for line in markdown.splitlines() if line.startswith("Verdict (") or "gain) verdict" in line]
    assert verdicts and all("DisCo" not in line for line in verdicts) and "SEED (gain) verdict" in markdown


def test_seeds_are_found_through_the_stage_graph_not_file_names(bench, workspace):
    """A result copied under another seed's name (it records seed 0) adds no seed; neither does a
    damaged file; a stage planned at a stored seed whose name matches does."""
    planner = Planner(bench, "tiny")
    for seed in (0, 2):
        store_cell(workspace, planner.cell("r50-effb0", seed), {"random_init": 1.0, "baseline": 5.0, "disco": 6.0})
    folder = workspace.results / "tiny" / "stages"
    evaluated = planner.cell("r50-effb0", 0).evals[("disco", "linear")].name
    (folder / f"{evaluated.removesuffix('-s0')}-s7.json").write_text((folder / f"{evaluated}.json").read_text())
    (folder / f"{evaluated.removesuffix('-s0')}-s9.json").write_text("{torn")
    assert sorted({cell.seed for cell in profile_cells(planner, workspace) if cell.pair == "r50-effb0"}) == [0, 2]
