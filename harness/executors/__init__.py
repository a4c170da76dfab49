"""Executors run planned stages: locally in-process, in Docker containers, or as Slurm jobs.

Contract: every executor ends up calling `disco-bench run-stage SPEC --artifacts A --results R`
(or `harness.runner.run_stage_from_spec` in-process), where SPEC is the JSON written by
`Stage.write_spec`. Paths inside a spec are relative to the artifacts/results roots, so a
container or a compute node only needs those two roots mounted/shared.
"""

from __future__ import annotations

from typing import Protocol

from harness.stages import Stage
from harness.workspace import Workspace


class Executor(Protocol):
    name: str

    def run(self, stages: list[Stage], workspace: Workspace) -> None:
        """Run `stages` (topologically ordered, not yet done). Raise StageFailed on failure."""
        ...
