"""Every registered distillation method through the real CLI in one smoke cell: one teacher, one
baseline, a student per method, and a report row per method."""

import csv
import json

import pytest

from disco.methods.registry import METHODS
from tests.conftest import disco_bench

DISTILL = [name for name, spec in METHODS.items() if spec.kind == "distill"]
# the methods that compose with the SimCLR base of the tiny profile (SEED uses no base loss)
OVER_SIMCLR = [name for name in DISTILL if METHODS[name].base is None or "simclr" in METHODS[name].variants]


@pytest.mark.parametrize(
    ("profile", "methods"),
    [("tiny-mocov2", DISTILL), ("tiny", OVER_SIMCLR)],
    ids=["every-method-over-mocov2", "every-method-over-simclr"],
)
def test_one_smoke_cell_trains_every_method_against_one_teacher_and_reports_a_row_each(tmp_path, profile, methods):
    proc = disco_bench(
        "run",
        "--pair",
        "r50-effb0",
        "--profile",
        profile,
        "--smoke",
        "--evals",
        "linear",
        "--methods",
        ",".join(methods),
        "--artifacts",
        str(tmp_path / "a"),
        "--results",
        str(tmp_path / "r"),
        env={"OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "r" / f"{profile}-smoke" / "stages").glob("*.json")]
    kinds = [r["stage"]["kind"] for r in results]
    assert (kinds.count("pretrain"), kinds.count("distill"), kinds.count("eval")) == (2, len(methods), 3 + len(methods))
    trained = {r["config"]["method"]: r["metrics"] for r in results if r["stage"]["kind"] == "distill"}
    assert set(trained) == set(methods) and all(m["epochs"] == 1 for m in trained.values())
    report = tmp_path / "r" / f"{profile}-smoke" / "report.csv"
    rows = [row for row in csv.DictReader(report.open()) if row["evaluation"] == "linear"]
    roles = [row["role"] for row in rows]
    assert sorted(roles[2 : 2 + len(methods)]) == sorted(methods) and all(row["status"] == "done" for row in rows)
    assert {f"gain_{name}" for name in methods} <= set(roles)


def test_a_training_spec_without_its_method_is_one_input_error(tmp_path):
    import torch

    from disco.errors import InputError
    from disco.tasks import run_task

    with pytest.raises(InputError, match="names no `method`"):
        run_task("pretrain", {"arch": "r18", "head": "mocov2", "seed": 0}, {}, tmp_path, {}, torch.device("cpu"), None)
