"""'did you mean': the one nearest-name rule for every unknown name (an architecture, a method, an
evaluation, a recipe field, a YAML key, a Slurm partition), torch-free."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.5  # difflib's similarity ratio: a typo or a transposition, not an unrelated word


def nearest(name: object, choices: Iterable[object]) -> str | None:
    close = difflib.get_close_matches(str(name), [str(choice) for choice in choices], n=1, cutoff=CUTOFF)
    return close[0] if close else None


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """` (did you mean 'x'?)` for the nearest choice, or '' when none is near."""
    match = nearest(name, choices)
    return f" (did you mean '{match}'?)" if match else ""
