"""Run stages in this process, one after another, with rich progress bars."""

from __future__ import annotations

import subprocess

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import StageFailed
from harness.stages import Stage
from harness.workspace import Workspace

OPTIONS: list = [
    click.option("--nproc-per-node", type=click.IntRange(min=1), default=1, show_default=True, help="Training stages run under torchrun with this many processes (DDP; gloo on CPU, nccl on GPUs)."),
]
DDP_KINDS = ("pretrain", "distill")  # init/eval stages would only repeat the same work on every rank


class LocalExecutor:
    name = "local"

    def __init__(self, nproc_per_node: int = 1, console: Console | None = None):
        self.nproc_per_node = nproc_per_node
        self.console = console or Console(stderr=True)

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        from harness.runner import run_stage_from_spec  # imports torch: not at `--help`

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            overall = progress.add_task("stages", total=len(stages), detail="")
            for stage in stages:
                task = progress.add_task(stage.name, total=None, detail="")
                if self.nproc_per_node > 1 and stage.kind in DDP_KINDS:
                    progress.update(task, detail=f"torchrun x{self.nproc_per_node}")
                    self._run_torchrun(stage, workspace)
                else:
                    run_stage_from_spec(stage.write_spec(workspace), workspace, self._reporter(progress, task), executor=self.name)
                progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total or 1, detail="done")
                progress.advance(overall)

    def _run_torchrun(self, stage: Stage, workspace: Workspace) -> None:
        from disco.distributed import torchrun_command

        command = torchrun_command(stage.write_spec(workspace), workspace, self.nproc_per_node, extra_args=["--executor-name", "local-ddp"])
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise StageFailed(f"stage {stage.name} failed under torchrun (exit {proc.returncode}): {tail}")

    @staticmethod
    def _reporter(progress: Progress, task):
        def report(phase: str, done: int, total: int) -> None:
            if phase == "epoch":
                progress.update(task, completed=done, total=total, detail=f"epoch {done}/{total}")
            elif phase == "step":
                progress.update(task, detail=f"step {done}/{total}")
            elif phase == "waiting":
                progress.update(task, detail="waiting for another run's lock")

        return report


def make_executor(params: dict) -> LocalExecutor:
    return LocalExecutor(nproc_per_node=params.get("nproc_per_node") or 1)
