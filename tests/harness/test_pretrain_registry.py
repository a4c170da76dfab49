"""Pretraining methods come from the registry (disco/methods/registry.py) like distillation methods:
a profile names its base method, and planning, stage names, validate, the report's labels and the
health monitor's chance level follow it. A method registered here, beside the built-ins, plans,
validates and trains in a smoke cell with no change to the harness."""

from dataclasses import replace

import pytest
import torch
import yaml

from disco.health import chance_ratio
from disco.methods import registry
from disco.methods.registry import METHODS, stage_negatives
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.report.roles import role_label
from harness.runner import run_stage_from_spec
from harness.validate import validate_text
from harness.workspace import Workspace
from tests.conftest import REPO

NEW = "simclr_warm"  # a researcher's variant of SimCLR, registered under its own name


@pytest.fixture
def registered(monkeypatch):
    """NEW as a pretraining method and DisCo's composition with it, as a researcher would declare them."""
    simclr = METHODS["simclr"]
    disco = METHODS["disco"]
    over_simclr = disco.variants["simclr"]
    monkeypatch.setitem(METHODS, NEW, replace(simclr, description="SimCLR, registered again", label="SimCLR-warm"))
    monkeypatch.setitem(METHODS, "disco", replace(disco, variants={**disco.variants, NEW: over_simclr}))
    monkeypatch.setattr(registry, "METHODS", METHODS)


def matrix_with_base(base: str) -> str:
    data = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    data["methods"][base] = {"kind": "pretrain", "head": "mocov2", "description": "a plug-in base"}
    data["profiles"]["tiny"]["base_method"] = base
    return yaml.safe_dump(data, sort_keys=False)


def test_a_registered_pretraining_method_validates_plans_and_trains_a_smoke_cell(registered, tmp_path):
    outcome = validate_text(matrix_with_base(NEW))
    assert outcome.bench is not None, [p.render("benchmarks.yaml") for p in outcome.problems]
    planner = Planner(outcome.bench, "tiny", smoke=True)
    cell = planner.cell("r50-effb0", 0, ["knn"])
    assert cell.teacher.name.startswith(f"pretrain-{NEW}-r50") and cell.baseline.config["method"] == NEW
    assert cell.methods["disco"].config["base"] == NEW  # DisCo over another base than its own: keyed
    assert role_label("baseline", cell) == "SimCLR-warm baseline"
    workspace = Workspace(tmp_path / "artifacts", tmp_path / "results")
    torch.set_num_threads(1)
    for stage in (cell.teacher, cell.baseline, cell.methods["disco"]):
        result = run_stage_from_spec(stage.write_spec(workspace), workspace)
        assert result["metrics"]["epochs"] == 1
        history = result["history"][-1]
        batch = stage.config["recipe"]["batch_size"]
        assert history["ce_chance_ratio"] == pytest.approx(chance_ratio(history["ce"], 2 * batch - 2))


def test_an_unregistered_base_method_is_one_line_with_file_and_did_you_mean():
    problems = validate_text(matrix_with_base("simclrr")).problems
    base_line = [p for p in problems if p.path == "profiles.tiny.base_method"]
    assert base_line and "did you mean 'simclr'" in base_line[0].message


@pytest.mark.parametrize(
    ("method", "sections", "expected"),
    [
        ("mocov2", {"mocov2": {"queue_size": 4096, "momentum": 0.99, "temperature": 0.2, "bn_group_size": 32}}, 4096),
        ("simclr", {"simclr": {"temperature": 0.2}}, 2 * 128 - 2),
    ],
)
def test_the_health_chance_level_is_the_base_methods_own(method, sections, expected):
    """MoCo-v2's InfoNCE is at chance at ln(K+1) with K its queue; SimCLR's NT-Xent at ln(2N-1)."""
    config = {"method": method, "recipe": {"batch_size": 128}, **sections}
    assert stage_negatives(config) == expected


def test_a_distillation_method_that_does_not_compose_with_the_base_is_one_line(tmp_path):
    from harness.config import load_benchmarks
    from harness.errors import UserError

    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny")
    with pytest.raises(UserError, match="method 'rkd' composes with the base method.s. mocov2, not simclr"):
        planner.cell("r50-effb0", 0, ["knn"], ["rkd"])
    assert "rkd" not in planner.composable_methods() and "seed" in planner.composable_methods()


def test_the_harness_names_no_method_outside_benchmarks_yaml():
    """Method names live in the registry and benchmarks.yaml; the harness reads them from there."""
    names = [name for name in METHODS if name != "seed"]  # "seed" is also every stage's random seed
    offenders = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if "head" in code or "checkpoint_format" in code:
                continue  # head and checkpoint layouts are named like the methods that use them
            if any(f'"{name}"' in code or f"'{name}'" in code for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_seed_follows_its_code_and_the_old_choices_are_a_named_variant():
    """SEED's own head and its code's teacher temperature 1e-4 by default; `seed_disco_head` keeps
    DisCo's F-2048-128 head and the paper text's 0.01 (issue 21 item 5)."""
    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "paper")
    cell = planner.cell("r50-r18", 0, ["linear"], ["seed", "seed_disco_head"])
    seed, variant = cell.methods["seed"].config, cell.methods["seed_disco_head"].config
    assert seed["head"] == "seed" and seed["seed_distill"]["teacher_temperature"] == 1e-4
    assert variant["head"] == "disco" and variant["seed_distill"]["teacher_temperature"] == 0.01
    assert cell.methods["seed"].key != cell.methods["seed_disco_head"].key
