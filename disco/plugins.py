"""Plug-ins: methods, evaluations and executors from other installed packages, found through Python
entry points, torch-free. A package declares, in its pyproject.toml,

    [project.entry-points."disco_bench.methods"]
    my_methods = "my_package.specs:METHODS"        # {name: MethodSpec}
    [project.entry-points."disco_bench.evaluations"]
    my_evals = "my_package.specs:EVALUATIONS"      # Evaluation or a list of them
    [project.entry-points."disco_bench.executors"]
    inline = "my_package.executor"                 # a module: OPTIONS, make_executor(params)

and the registries (disco/methods/registry.py, disco/evals/__init__.py, harness/commands/run.py) take
them in through `register`, the one path the built-ins take too. `load_plugins()` (the CLI calls it
first; a Python user calls it before planning) registers the methods and evaluations once the
registries hold the built-ins, so a plug-in may import them. The object an entry point names must
import without torch (the light commands list and validate it); torch belongs in the modules the specs
name, imported when a stage runs. A plug-in that fails to load, lacks a field or reuses a taken name is
one line in `problems()` naming its package; the others still load. docs/extending.md is the how-to.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

GROUPS = {
    "methods": "disco_bench.methods",
    "evaluations": "disco_bench.evaluations",
    "executors": "disco_bench.executors",
}
BUILTIN = "disco-bench"  # the package name the built-ins register under

_problems: list[str] = []
T = TypeVar("T")


def problems() -> list[str]:
    """One line per plug-in that could not be registered (what, which package, how to fix)."""
    return list(dict.fromkeys(_problems))


def package_of(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else entry_point.value.split(":")[0].split(".")[0]


def entry_points(kind: str) -> list[tuple[str, Any]]:
    """(package, loaded object) of every entry point of `kind`; a failing one becomes a problem line."""
    found = []
    for entry_point in importlib.metadata.entry_points(group=GROUPS[kind]):
        package = package_of(entry_point)
        try:
            found.append((package, entry_point.load()))
        except Exception as exc:  # a plug-in's own bug must not stop the others: one line, no traceback
            _problems.append(
                f"plugin {package}: its {kind} entry point '{entry_point.name} = {entry_point.value}' failed to load "
                f"({type(exc).__name__}: {exc}); fix or uninstall {package}"
            )
    return found


def register(
    registry: dict[str, T],
    kind: str,
    package: str,
    entries: Mapping[str, Any],
    check: Callable[[Any], str | None],
) -> None:
    """Add `entries` (name -> object) to `registry`; `check` returns why an object is not one (or None).
    A built-in name is never replaced: a clash is a problem line naming the plug-in's package."""
    for name, entry in entries.items():
        why = check(entry)
        if why is not None:
            _problems.append(f"plugin {package}: {kind} '{name}' {why}; fix it in {package}")
        elif name in registry:
            _problems.append(
                f"plugin {package}: {kind} '{name}' clashes with one already registered; rename it in {package}"
            )
        else:
            registry[name] = entry


def named(entries: Any, name_of: Callable[[Any], str]) -> Mapping[str, Any]:
    """A plug-in's entries as name -> object: a mapping as it is, one object or an iterable by name_of."""
    if isinstance(entries, Mapping):
        return entries
    if isinstance(entries, Iterable) and not isinstance(entries, (str, bytes)):
        return {name_of(entry): entry for entry in entries}
    return {name_of(entries): entries}


_loaded = False


def load_plugins() -> None:
    """Register every installed plug-in's methods and evaluations (once). Executors load with the
    `run` command (harness/commands/run.py)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from disco.evals import register_evaluations
    from disco.methods.registry import register_methods

    for package, entries in entry_points("methods"):
        register_methods(package, entries)
    for package, entries in entry_points("evaluations"):
        register_evaluations(package, entries)
