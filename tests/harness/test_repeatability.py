"""The same seed repeats bit for bit on CPU (same machine, versions and thread count): a whole smoke
cell, every evaluation included, run twice in separate processes whose environments ask for
different thread counts (the harness pins its own, `--threads`; smoke runs use one)."""

from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import SmokeCell, cell_results, cell_tensors, disco_bench


def test_a_cell_run_twice_gives_identical_results_and_checkpoints(clean_smoke_cell, tmp_path):
    again = SmokeCell(tmp_path, "")
    proc = disco_bench(*again.args(), env={"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "123"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = cell_results(clean_smoke_cell.root), cell_results(tmp_path)
    stages = len(Planner(load_benchmarks(), "tiny", smoke=True).cell("r50-effb0").stages())
    assert len(first) == stages and first == second  # metrics and per-epoch history (health included), exactly
    assert cell_tensors(clean_smoke_cell.root) == cell_tensors(tmp_path)
