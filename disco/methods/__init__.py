"""Training methods, one small file each. A method is an nn.Module with
`training_step(view1, view2) -> dict of losses ("loss" is optimised)` and a `student` encoder.

How to add a method (e.g. `mymethod`):

1. disco/methods/registry.py: its config dataclass (frozen, with `validate(batch_size)` raising
   ValueError) and one METHODS line: `MethodSpec(kind, Config, "disco.methods.mymethod:MyMethod",
   sections)`; kind "pretrain" builds `MyMethod(encoder, config, speed)`, kind "distill" builds
   `MyMethod(student, teacher, config, speed)` after the cell's teacher stage. `sections` names the
   profile sections (benchmarks.yaml `profiles.*.<section>`) merged into the config; `overrides`
   fixes values per section (disco_only_mse: ce_weight 0).
2. disco/losses.py: the loss as a pure function of tensors (tested against hand-computed values).
3. disco/methods/mymethod.py: the nn.Module (`training_step`, `student`).

Then benchmarks.yaml: a `methods:` entry (kind, head, description), the new section in every profile
(harness/config.py types it with the config dataclass), and optionally `reference.pairs.<pair>.mymethod`
for the paper's numbers. `disco-bench run --methods disco,mymethod` then plans it beside DisCo with the
same teacher and baseline. The registry stays torch-free: modules are imported only when a stage trains.
"""

from __future__ import annotations

import importlib
from typing import Any

from disco.methods.registry import METHODS, DisCoConfig, MethodSpec, MoCoV2Config, RKDConfig, SEEDConfig, method_spec

_MODULES = {
    "DisCo": "disco.methods.disco",
    "MoCoV2": "disco.methods.mocov2",
    "RKD": "disco.methods.rkd",
    "SEED": "disco.methods.seed",
}

__all__ = [
    "METHODS",
    "DisCo",
    "DisCoConfig",
    "MethodSpec",
    "MoCoV2",
    "MoCoV2Config",
    "RKD",
    "RKDConfig",
    "SEED",
    "SEEDConfig",
    "method_spec",
]


def __getattr__(name: str) -> Any:
    """The nn.Modules import torch: loaded on first use, so the registry is importable without it."""
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'disco.methods' has no attribute '{name}'")
