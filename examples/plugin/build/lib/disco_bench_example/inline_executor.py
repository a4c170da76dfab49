"""An executor: runs each stage's spec in this process, one line per stage (the Executor Protocol of
harness/executors/__init__.py; the module-level contract: NAME, OPTIONS, make_executor)."""

import time

import click

from harness.stages import Stage
from harness.workspace import Workspace

NAME = "inline"
OPTIONS: list = [
    click.option("--inline-tag", default="inline", show_default=True, help="Printed before each stage (example)."),
]


class InlineExecutor:
    name = NAME

    def __init__(self, tag: str):
        self.tag = tag

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        from harness.runner import run_stage_from_spec  # imports torch: only when stages run

        for stage in stages:
            started = time.perf_counter()
            run_stage_from_spec(stage.write_spec(workspace), workspace, None, executor=self.name)
            click.echo(f"[{self.tag}] {stage.name} done in {time.perf_counter() - started:.1f} s", err=True)


def make_executor(params: dict) -> InlineExecutor:
    return InlineExecutor(params.get("inline_tag") or "inline")
