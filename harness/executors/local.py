"""Run stages in this process, one after another, with rich progress bars."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.runner import run_stage_from_spec
from harness.stages import Stage
from harness.workspace import Workspace

OPTIONS: list = []


class LocalExecutor:
    name = "local"

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=False) as progress:
            overall = progress.add_task("stages", total=len(stages), detail="")
            for stage in stages:
                task = progress.add_task(stage.name, total=None, detail="")
                run_stage_from_spec(stage.write_spec(workspace), workspace, self._reporter(progress, task), executor=self.name)
                progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total or 1, detail="done")
                progress.advance(overall)

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
    return LocalExecutor()
