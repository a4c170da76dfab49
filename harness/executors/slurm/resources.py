"""Resources: the profile's `slurm:` block and the --slurm-* options -> sbatch parameters (via submitit)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError

DEFAULT_TIME_MIN = 4 * 60  # when neither the profile nor --slurm-time sets one (submitit's own is 5)
PROFILE_KEYS = (
    "partition",
    "account",
    "nodes",
    "gpus_per_node",
    "ranks_per_node",
    "cpus_per_task",
    "mem",
    "time",
    "extra",
)


@dataclass(frozen=True)
class SlurmResources:
    partition: str | None = None
    account: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    ranks_per_node: int | None = None  # DDP processes per node; None: one per GPU, else 1
    cpus_per_task: int | None = None
    mem: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    extra: dict[str, str | bool] = field(default_factory=dict)  # True: a bare flag (--exclusive)

    def submitit_parameters(self, job_name: str, dependency: str | None) -> dict[str, Any]:
        """Parameters for `submitit.SlurmExecutor.update_parameters`."""
        extra = {"kill-on-invalid-dep": "yes", **self.extra}
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": self.time_min,
            "nodes": self.nodes,
            "ntasks_per_node": 1,  # one task per node; it starts torchrun when there are several ranks
            "partition": self.partition,
            "account": self.account,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "gpus_per_node": self.gpus_per_node or None,
            "dependency": dependency,
            "additional_parameters": extra,
        }
        return {name: value for name, value in params.items() if value is not None}

    @property
    def ranks(self) -> int:
        """DDP processes per node."""
        return self.ranks_per_node or max(1, self.gpus_per_node)


def parse_time_minutes(value: str | int) -> int:
    """Slurm time syntax (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) as whole minutes."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text)
    if not match:
        raise UserError(f"Slurm time '{value}' is not MM, HH:MM:SS or D-HH:MM:SS")
    days, parts = int(match.group(1) or 0), [int(part) for part in match.group(2).split(":")]
    if match.group(1) is None:  # MM | MM:SS | HH:MM:SS
        hours, minutes, seconds = {1: [0, parts[0], 0], 2: [0, *parts], 3: parts}[len(parts)]
    else:  # D-HH | D-HH:MM | D-HH:MM:SS
        hours, minutes, seconds = (parts + [0, 0])[:3]
    total = days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    if total < 1:
        raise UserError(f"Slurm time '{value}' is under a minute")
    return total


def check_mem(value: str | int) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"\d+(\.\d+)?[KMGTkmgt]?[Bb]?", text):
        raise UserError(f"Slurm memory '{value}' is not a size like 16G or 500M")
    return text


def parse_extra(items: tuple[str, ...] | list[str]) -> dict[str, str | bool]:
    """--slurm-extra KEY=VALUE pairs (a bare KEY is a flag, e.g. exclusive)."""
    extra: dict[str, str | bool] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or not re.fullmatch(r"[A-Za-z][\w-]*", key):
            raise UserError(f"--slurm-extra '{item}': expected KEY=VALUE with an sbatch option name, e.g. qos=high")
        extra[key] = value if sep else True  # submitit writes True as a bare flag
    return extra


def count_value(merged: dict[str, Any], key: str, minimum: int) -> int | None:
    """An integer resource from the profile or the command line, or None when unset."""
    value = merged[key]
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = minimum - 1
    if number < minimum or str(value).strip() != str(number):
        raise UserError(f"Slurm {key} '{value}' is not a whole number >= {minimum}")
    return number


def resources_from_params(params: dict[str, Any]) -> SlurmResources:
    """The profile's `slurm:` block, overridden by the --slurm-* options that were given."""
    profile = dict(params.get("profile_slurm") or {})
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"profile slurm: unknown key(s) {', '.join(unknown)}; valid: {', '.join(PROFILE_KEYS)}")
    merged = {key: profile.get(key) for key in PROFILE_KEYS if key != "extra"}
    for key in merged:
        if params.get(f"slurm_{key}") is not None:
            merged[key] = params[f"slurm_{key}"]
    profile_extra = [key if value is True else f"{key}={value}" for key, value in (profile.get("extra") or {}).items()]
    return SlurmResources(
        partition=merged["partition"] or None,
        account=merged["account"] or None,
        nodes=count_value(merged, "nodes", 1) or 1,
        gpus_per_node=count_value(merged, "gpus_per_node", 0) or 0,
        ranks_per_node=count_value(merged, "ranks_per_node", 1),
        cpus_per_task=count_value(merged, "cpus_per_task", 1),
        mem=check_mem(merged["mem"]) if merged["mem"] else None,
        time_min=parse_time_minutes(merged["time"]) if merged["time"] else DEFAULT_TIME_MIN,
        extra=parse_extra(profile_extra + list(params.get("slurm_extra") or ())),
    )
