import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def disco_bench(
    *args: str, cwd: Path = REPO, env: dict | None = None, timeout: int | None = None
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would). No timeout by default: on a busy machine a
    test must not fail for being slow (a hang is CI's job limit to catch)."""
    command = [sys.executable, "-m", "harness", *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def workspace_args(tmp_path):
    return ["--artifacts", str(tmp_path / "artifacts"), "--results", str(tmp_path / "results")]


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point, in this process (a subprocess would re-import torch and timm)."""
    from harness.cli import main

    monkeypatch.setattr(sys, "argv", ["disco-bench", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def wait_until_paused(proc: subprocess.Popen, marker: Path) -> str:
    """Wait for a process started with DISCO_PAUSE_AT / DISCO_PAUSE_MARKER (disco/pause_points.py) to
    stop itself at its pause point, then SIGKILL it there; returns the point's name. No deadline:
    it fails if the process ends without reaching the point."""
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"exited ({proc.returncode}) before its pause point {os.environ.get('DISCO_PAUSE_AT', '')}"
            )
        time.sleep(0.2)
    pid, _, point = marker.read_text().strip().partition(" ")
    assert int(pid) == proc.pid, marker.read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker.unlink()
    return point


def paused_env(point: str, marker: Path) -> dict[str, str]:
    return {"DISCO_PAUSE_AT": point, "DISCO_PAUSE_MARKER": str(marker)}


SMOKE_CELL = ("run", "--pair", "r50-effb0", "--profile", "tiny", "--smoke")


@dataclass(frozen=True)
class SmokeCell:
    root: Path  # artifacts under a/, results under r/
    stdout: str
    seconds: float = 0.0  # how long the run took (only to spread kill moments over it, never asserted)

    def args(self) -> list[str]:
        return [*SMOKE_CELL, "--artifacts", str(self.root / "a"), "--results", str(self.root / "r")]


@pytest.fixture(scope="session")
def clean_smoke_cell(tmp_path_factory) -> SmokeCell:
    """One uninterrupted smoke run of the default cell, every evaluation included; the tests that
    compare against it or rerun it share it (a cell is the costliest thing the fast suite runs)."""
    cell = SmokeCell(tmp_path_factory.mktemp("clean-smoke-cell"), "")
    started = time.monotonic()
    proc = disco_bench(*cell.args(), env={"OMP_NUM_THREADS": "2"})  # the harness pins its own count
    assert proc.returncode == 0, proc.stderr[-2000:]
    return SmokeCell(cell.root, proc.stdout, time.monotonic() - started)


def cell_results(root: Path) -> dict[str, dict]:
    """Every smoke stage result's config, metrics and history, without wall times and resume counts; each must load."""
    from harness.results import load_result

    results = {}
    for path in sorted((root / "r" / "tiny-smoke" / "stages").glob("*.json")):
        result = load_result(path)
        assert result is not None, f"{path} is not a valid result"
        results[path.name] = without_timings(
            {"config": result.config, "metrics": result.metrics, "history": result.history}
        )
    return results


RUN_DEPENDENT = ("resumed_from_epoch",)  # says how a result was reached, not what it is


def without_timings(value):
    if isinstance(value, dict):
        return {
            key: without_timings(item)
            for key, item in value.items()
            if not key.endswith("seconds") and key not in RUN_DEPENDENT
        }
    return [without_timings(item) for item in value] if isinstance(value, list) else value


def cell_tensors(root: Path) -> dict[str, dict[str, bytes]]:
    """Every stage's final encoder, loaded in full, as the bytes of each tensor."""
    import torch

    finals = sorted((root / "a").rglob("final.pt"))
    assert finals, f"no final checkpoint under {root / 'a'}"
    return {
        str(path.relative_to(root / "a")): {
            key: tensor.numpy().tobytes() for key, tensor in torch.load(path, weights_only=True)["encoder"].items()
        }
        for path in finals
    }
