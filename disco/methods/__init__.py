"""Training methods, one small file each. A method is an nn.Module with
`training_step(view1, view2) -> dict of losses ("loss" is optimised)` and a `student` encoder.
A multi-crop method (SwAV) takes `training_step(*crops)`: its config's `crops()` declares them (size,
area range) and the loop draws that many views in that order. Optional hooks the loop calls:
`start_epoch(epoch)` (0-based, before each epoch) and `before_optimizer_step()` (after backward).

How to add a method (e.g. `mymethod`), three files and benchmarks.yaml:

1. disco/methods/registry.py: its config dataclass (frozen; field types and annotated_types bounds
   are the schema of its benchmarks.yaml section; `validate(batch_size)` raises ValueError for what
   spans fields); if it reads a new profile section, a SECTIONS entry (section name -> dataclass);
   and one METHODS line: `MethodSpec(kind, Config, "disco.methods.mymethod:MyMethod", sections)`.
   Kind "pretrain" builds `MyMethod(encoder, config, speed)`; kind "distill" builds
   `MyMethod(student, teacher, config, speed)` with the cell's teacher. `sections` names the profile
   sections merged into the config; `overrides` fixes values per section (disco_only_mse: ce_weight 0);
   `label` names it in reports; `negatives(config, batch_size) -> K` gives the chance level ln(K+1)
   of its contrastive term `ce` (the health monitor and the curves). A distillation method names the
   pretraining method whose loss it extends (`base`; None if it uses none, as SEED) and, in
   `variants`, its composition with other bases (DisCo over SimCLR). A pretraining method can be a
   profile's `base_method`: it then trains that profile's teachers and baselines, and each
   distillation method runs as its composition with it.
2. disco/losses.py: the loss as a pure function of tensors (tests: hand-computed values, gradcheck).
3. disco/methods/mymethod.py: the nn.Module: `training_step(view1, view2)` returning its loss terms
   ("loss" is optimised) and `student`.

benchmarks.yaml: a `methods:` entry (kind, head, description), its section in the profiles that
should not use the dataclass defaults, and `reference.pairs.<pair>.mymethod` for the paper's numbers.
Then `disco-bench validate` checks it and `disco-bench run --methods disco,mymethod` trains it beside
DisCo against the same teacher and baseline, with its own report rows. The registry stays
torch-free (`list`/`validate` import it); a method's module is imported only when its stage trains.
"""

from __future__ import annotations

import importlib
from typing import Any

from disco.methods.registry import METHODS, DisCoConfig, MethodSpec, MoCoV2Config, RKDConfig, SEEDConfig, method_spec

_MODULES = {
    "DisCo": "disco.methods.disco",
    "DisCoSimCLR": "disco.methods.disco_simclr",
    "DisCoSwAV": "disco.methods.disco_swav",
    "MoCoV2": "disco.methods.mocov2",
    "RKD": "disco.methods.rkd",
    "SEED": "disco.methods.seed",
    "SimCLR": "disco.methods.simclr",
    "SwAV": "disco.methods.swav",
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
    "SimCLR",
    "DisCoSimCLR",
    "SwAV",
    "DisCoSwAV",
    "method_spec",
]


def __getattr__(name: str) -> Any:
    """The nn.Modules import torch: loaded on first use, so the registry is importable without it."""
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'disco.methods' has no attribute '{name}'")
