"""The rows of a report: the encoders (control, baseline, one per distillation method, teacher) and each
method's gain over the baseline, with their labels from the method registry."""

from __future__ import annotations

from disco.methods.registry import METHODS, method_label
from harness.matrix import CellPlan, split_role

CONTROL_ROLE, BASELINE_ROLE, TEACHER_ROLE = "random_init", "baseline", "teacher"


ENCODER_ROLES = (CONTROL_ROLE, BASELINE_ROLE, TEACHER_ROLE)  # besides a row per distillation method


GAIN = "gain"  # a method's gain row is gain_<method>


GAIN_LABEL_SUFFIX = " - baseline gain"


def gain_role(method: str) -> str:
    return f"{GAIN}_{method}"


def is_gain(role: str) -> bool:
    return role.startswith(f"{GAIN}_")


def role_label(role: str, cell: CellPlan | None = None) -> str:
    """A row's name: the control; the baseline and teacher by the method that trained them (the
    cell's stage configs: its profile's base method, or `imported`); each method's student and gain
    by the method's label in the registry."""
    if role == CONTROL_ROLE:
        return "random-init (control)"
    if role in (BASELINE_ROLE, TEACHER_ROLE):
        method = getattr(cell, role).config.get("method") if cell is not None else None
        trained_by = method_label(method) if method in METHODS else "imported" if method else ""
        return f"{trained_by} {role}".strip()
    if is_gain(role):
        return f"{method_role_label(role.removeprefix(GAIN + '_'))}{GAIN_LABEL_SUFFIX}"
    return f"{method_role_label(role)} student"


def method_role_label(role: str) -> str:
    """A method's label, with the head width of a swept role: `disco@h512` -> "DisCo (head 512)"."""
    method, width = split_role(role)
    return f"{method_label(method)} (head {width})" if width else method_label(method)


def cell_roles(cells: list[CellPlan]) -> list[str]:
    """Table order: random-init, baseline, each method's student (as the cells list them), teacher."""
    methods = list(dict.fromkeys(method for cell in cells for method in cell.methods))
    return [CONTROL_ROLE, BASELINE_ROLE, *methods, TEACHER_ROLE]


def primary_method(methods: list[str], defaults: list[str]) -> str:
    """The method whose gain gives the cell's verdict: the first default method (benchmarks.yaml
    default_methods) that ran, else the first one."""
    return next((method for method in defaults if method in methods), methods[0] if methods else defaults[0])
