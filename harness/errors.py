"""User-facing errors: one clear line, non-zero exit, never a traceback.

Exit codes of `disco-bench`, one per class (harness/cli.py maps them; README, "Exit codes"):

    0    success
    1    internal error: a bug (`--debug` shows the traceback)
    2    bad input: disco.errors.InputError, UserError here, a click usage error
    3    StageFailed: a stage's process exited non-zero (its log's tail in the message)
    4    disco.errors.DataUnavailable, preflight.PreflightFailed: a dataset missing or not laid out as expected
    5    disco.errors.CheckpointError: a checkpoint unreadable, unknown or not fitting the model
    6    disco.errors.BackendUnavailable: an optional package or device missing here
    7    disco.errors.TrainingDiverged: a training step's loss was NaN or infinite (the stage stopped, no result)
    8    disco.errors.DiskFull: a write found no space left (that file's previous version and every result intact)
    130  interrupted (Ctrl-C) or aborted
"""

from __future__ import annotations

from typing import IO, Any

import click

from disco.errors import InputError

INTERNAL_ERROR = 1
INTERRUPTED = 130


class UserError(click.ClickException):
    """Bad input or environment found by the harness: what, where and how to fix it. The harness's
    InputError (the same exit code); disco's errors are disco.errors's, since disco never imports harness."""

    exit_code = InputError.exit_code

    def show(self, file: IO[Any] | None = None) -> None:  # one line, no "Usage:" block
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class StageFailed(UserError):
    """A stage exited non-zero; the message carries the stage name and the tail of its log."""

    exit_code = 3
