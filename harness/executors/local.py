"""Run stages in this process, one after another, with rich progress bars."""

from __future__ import annotations

import subprocess
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import StageFailed
from harness.progress import EpochLines, bar_reporter, clock
from harness.stages import Stage
from harness.workspace import Workspace

OPTIONS: list = [
    click.option(
        "--nproc-per-node",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Training stages run under torchrun with this many processes (DDP; gloo on CPU, nccl on GPUs).",
    ),
]
DDP_KINDS = ("pretrain", "distill")  # init/eval stages would only repeat the same work on every rank


class LocalExecutor:
    name = "local"

    def __init__(self, nproc_per_node: int = 1, console: Console | None = None):
        self.nproc_per_node = nproc_per_node
        self.console = console or Console(stderr=True)

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        if not self.console.is_terminal:
            return self._run_plain(stages, workspace)
        from harness.runner import run_stage_from_spec  # imports torch: not at `--help`

        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=self.console, transient=False) as progress:
            overall = progress.add_task("stages", total=len(stages), detail="")
            for stage in stages:
                task = progress.add_task(stage.name, total=None, detail="")
                if self.nproc_per_node > 1 and stage.kind in DDP_KINDS:
                    progress.update(task, detail=f"torchrun x{self.nproc_per_node}")
                    self._run_torchrun(stage, workspace)
                else:
                    run_stage_from_spec(
                        stage.write_spec(workspace), workspace, bar_reporter(progress, task), executor=self.name
                    )
                progress.update(
                    task,
                    completed=progress.tasks[task].total or 1,
                    total=progress.tasks[task].total or 1,
                    detail="done",
                )
                progress.advance(overall)

    def _run_torchrun(self, stage: Stage, workspace: Workspace) -> None:
        from disco.distributed import torchrun_command

        command = torchrun_command(
            stage.write_spec(workspace), workspace, self.nproc_per_node, extra_args=["--executor-name", "local-ddp"]
        )
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise StageFailed(f"stage {stage.name} failed under torchrun (exit {proc.returncode}): {tail}")

    def _run_plain(self, stages: list[Stage], workspace: Workspace) -> None:
        """Not a terminal (CI, a log file, `tee`): plain lines, one per stage start/end and per training epoch."""
        from harness.runner import run_stage_from_spec  # imports torch: not at `--help`

        echo = lambda line: self.console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
        for index, stage in enumerate(stages, start=1):
            echo(f"[{stage.name}] stage {index}/{len(stages)} started")
            started = time.monotonic()
            if self.nproc_per_node > 1 and stage.kind in DDP_KINDS:
                self._run_torchrun(stage, workspace)
            else:
                run_stage_from_spec(
                    stage.write_spec(workspace), workspace, EpochLines(stage.name, echo), executor=self.name
                )
            echo(f"[{stage.name}] done in {clock(time.monotonic() - started)}")


def make_executor(params: dict) -> LocalExecutor:
    return LocalExecutor(nproc_per_node=params.get("nproc_per_node") or 1)
