"""The stage-spec boundary: spec dicts become typed inputs, and a stale or hand-edited spec is one
InputError line before anything loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from disco.errors import InputError
from disco.tasks import TASKS
from disco.tasks.inputs import TrainingInput, ViewOptions, eval_input, runtime_of, training_input
from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import REPO


@pytest.fixture(scope="module")
def cell():
    return Planner(load_benchmarks(), "tiny", smoke=True).cell("r50-effb0")


def test_every_planned_stage_parses_into_its_kinds_typed_input(cell):
    for stage in cell.stages():
        typed = TASKS[stage.kind].parse(stage.config)
        if isinstance(typed, TrainingInput):
            assert typed.spec.kind == stage.kind and typed.recipe.batch_size == stage.config["recipe"]["batch_size"]
            assert typed.views == ViewOptions(**stage.config["augment"])
            assert type(typed.method_config).__name__.endswith("Config")


@pytest.mark.parametrize("missing", ["method", "recipe", "arch", "data", "seed"])
def test_a_spec_without_a_field_is_one_line_naming_it(cell, missing):
    config = {k: v for k, v in cell.teacher.config.items() if k != missing}
    with pytest.raises(InputError, match=f"`{missing}`"):
        training_input("pretrain", config)


def test_a_bad_method_value_names_the_profile_section(cell):
    section = cell.teacher.config["method"]
    config = cell.teacher.config | {section: {"temperature": -1.0}}
    with pytest.raises(InputError, match=f"fix the profile's {section}"):
        training_input("pretrain", config)


def test_runtime_and_eval_inputs_keep_what_the_spec_says():
    runtime = runtime_of({"speed": "reference", "health": {"enabled": False, "knn_every": 3}, "device": "cpu"})
    assert runtime.speed == "reference" and not runtime.health.enabled and runtime.health.knn_every == 3
    typed = eval_input({"evaluation": "knn", "data": {"source": "embedded", "image_size": 32}, "recipe": {"k": 5}})
    assert typed.evaluation == "knn" and typed.recipe == {"k": 5} and typed.seed == 0
    with pytest.raises(InputError, match="`evaluation`"):
        eval_input({"data": {"source": "embedded", "image_size": 32}, "recipe": {}})


def test_the_typed_inputs_import_no_torch():
    code = "import sys, disco.tasks, disco.tasks.inputs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
