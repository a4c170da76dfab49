"""The `disco-bench` command line. Commands live in harness/commands/, one module per topic,
each registering itself on the `cli` group defined here."""

from __future__ import annotations

import os
import sys

import click

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler used by `perf` is chatty on stderr

from disco.errors import DiscoError, disk_full, is_no_space
from harness.errors import INTERNAL_ERROR, INTERRUPTED, UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Reproduce and check DisCo (ECCV 2022) teacher/student cells against the paper."""
    ctx.ensure_object(dict)["debug"] = debug


def main() -> None:
    from disco.plugins import load_plugins, problems

    load_plugins()  # before the commands build the profile schema from the registries
    from harness import commands  # noqa: F401  (registers the subcommands)

    for problem in problems():  # a broken plug-in: one line each; every other method still works
        click.echo(f"warning: {problem}", err=True)

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:  # UserError included: one line, non-zero exit
        if isinstance(exc, UserError):
            exc.show()
        else:
            click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except DiscoError as exc:  # found inside disco (a recipe value, a dataset, a checkpoint): the user's to fix
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(INTERRUPTED)
    except Exception as exc:  # an internal error still gets one line unless --debug
        if is_no_space(exc):  # a write outside the atomic ones (a log line, a directory): still the user's to fix
            full = disk_full(getattr(exc, "filename", None))
            click.echo(f"error: {full}", err=True)
            sys.exit(full.exit_code)
        if "--debug" in sys.argv:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        sys.exit(INTERNAL_ERROR)
