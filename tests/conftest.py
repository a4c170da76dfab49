import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def disco_bench(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would)."""
    command = [sys.executable, "-m", "harness", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


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
