"""Errors in what disco was given (a recipe value, a file), as opposed to bugs in disco.

The message says what is wrong, where and how to fix it, on one line; the CLI shows it as such with
exit code 2 (harness/cli.py). A ValueError, so callers that catch ValueError keep working."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a recipe field out of range, an unreadable file, an unknown name."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """`Type: first message line` of an exception (a parser's KeyError says only `101`), or its type
    alone when it has no message (an empty file's EOFError)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
