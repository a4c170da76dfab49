"""examples/plugin, pip-installed into a folder on PYTHONPATH (disco-bench's own files untouched): its
method, evaluation and executor are listed, validated, planned, run in a --smoke cell and reported
like the built-ins; a broken or clashing plug-in is one warning line and the rest still works."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, disco_bench

EXAMPLE = REPO / "examples" / "plugin"


def pip_install(source: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )


def fake_plugin(target: Path, name: str, entry_points: str, module: str = "", code: str = "") -> None:
    """A minimal installed distribution: its metadata, entry points and (optionally) one module."""
    info = target / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (target / f"{module}.py").write_text(code)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "plugin"  # pip builds in its source folder: not in the repo
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    pip_install(source, target)
    return target


MATRIX = """# a researcher's own matrix: ours (extends: default) plus the plug-in's method and evaluation
extends: default
methods:
  disco_l1: {kind: distill, head: disco, description: "DisCo with L1 (plug-in)"}
evaluations:
  feature_rank: {description: "effective rank of the frozen features (plug-in)"}
profiles:
  tiny:
    eval_recipes:
      feature_rank: {images: 256, batch_size: 128}
"""


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Path:
    """A user's own matrix file outside the repository, naming the plug-in's method and evaluation."""
    path = tmp_path_factory.mktemp("matrix") / "mine.yaml"
    path.write_text(MATRIX)
    return path


def test_the_plugin_is_listed_and_validated_like_a_builtin(site, matrix):
    env = {"PYTHONPATH": str(site)}
    listed = disco_bench("list", "--benchmarks", str(matrix), env=env)
    assert listed.returncode == 0 and "warning" not in listed.stderr, listed.stderr
    rows = {line.split("|")[1].strip(): line for line in listed.stdout.splitlines() if line.count("|") > 3}
    assert "distill" in rows["disco_l1"] and "erank ↑ (cosine beside)" in rows["feature_rank"]
    checked = disco_bench("validate", str(matrix), env=env)
    assert checked.returncode == 0 and "valid" in checked.stdout, checked.stdout + checked.stderr
    bad = matrix.with_name("bad.yaml")
    data = yaml.safe_load(matrix.read_text())
    data["profiles"]["tiny"]["eval_recipes"]["feature_rank"] = {"images": 1}
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    refused = disco_bench("validate", str(bad), env=env)
    assert refused.returncode == 2 and "eval_recipes.feature_rank" in refused.stdout + refused.stderr
    assert "images >= 2" in refused.stdout + refused.stderr


def test_the_plugin_trains_evaluates_and_reports_in_a_smoke_cell_on_its_executor(site, matrix, tmp_path):
    where = ["--artifacts", str(tmp_path / "artifacts"), "--results", str(tmp_path / "results"), "--reference", ""]
    run = disco_bench(
        "run",
        "--benchmarks",
        str(matrix),
        "--pair",
        "r50-effb0",
        "--smoke",
        "--methods",
        "disco,disco_l1",
        "--evals",
        "knn,feature_rank",
        "--executor",
        "inline",
        "--inline-tag",
        "example",
        *where,
        env={"PYTHONPATH": str(site)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[example] distill-disco_l1-r50-effb0-tiny-smoke-s0 done" in run.stderr
    report = (tmp_path / "results" / "tiny-smoke" / "report.md").read_text()
    assert "| DisCo-L1 student | done |" in report and "| DisCo-L1 - baseline gain | done |" in report
    assert "feature_rank erank" in report
    # the same cell again: every stage cached, the plug-in's included
    again = disco_bench(
        "run", "--benchmarks", str(matrix), "--pair", "r50-effb0", "--smoke", "--methods", "disco,disco_l1",
        "--evals", "knn,feature_rank", "--executor", "inline", "--dry-run", *where, env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert again.returncode == 0 and "0 to run" in again.stdout


def test_a_broken_or_clashing_plugin_is_one_line_and_the_rest_still_lists(tmp_path):
    fake_plugin(tmp_path, "broken-plugin", "[disco_bench.methods]\nbroken = no_such_module:METHODS\n")
    clash = "from disco.methods.registry import METHODS as BUILTIN\nMETHODS = {'disco': BUILTIN['seed']}\n"
    fake_plugin(tmp_path, "clashing-plugin", "[disco_bench.methods]\nclash = clashing:METHODS\n", "clashing", clash)
    listed = disco_bench("list", env={"PYTHONPATH": str(tmp_path)})
    assert listed.returncode == 0, listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("warning: plugin")]
    assert len(warnings) == 2 and "Traceback" not in listed.stderr
    assert any(
        "broken-plugin" in w and "no_such_module" in w and "fix or uninstall broken-plugin" in w for w in warnings
    )
    assert any("clashing-plugin" in w and "'disco' clashes" in w for w in warnings)
    rows = {line.split("|")[1].strip(): line for line in listed.stdout.splitlines() if line.count("|") > 3}
    assert "DisCo" in rows["disco"] and "seed" in rows  # the built-in kept its name
