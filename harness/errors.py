"""User-facing errors: one clear line, non-zero exit, never a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """Bad input or environment: says what, where and how to fix it. Exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # one line, no "Usage:" block
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class StageFailed(UserError):
    """A stage exited non-zero; the message carries the stage name and the tail of its log."""

    exit_code = 3
