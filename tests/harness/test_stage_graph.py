"""Sharing and hashing: identical stages are shared between cells; a changed recipe value changes
exactly the stages that depend on it."""

import dataclasses

import pytest

from disco.errors import InputError
from disco.eval_recipes import coerce_recipe
from disco.evals import EVALUATIONS, Evaluation
from harness.config import load_benchmarks
from harness.errors import UserError
from harness.matrix import Planner
from harness.stages import topological


def updated(section, values):
    """A profile section with some values changed: a pydantic model or a method's config dataclass."""
    if dataclasses.is_dataclass(section):
        return dataclasses.replace(section, **values)
    return section.model_copy(update=values)


def plan(bench=None, **profile_changes):
    bench = bench or load_benchmarks()
    if profile_changes:
        profile = bench.profiles["tiny-mocov2"]
        for section, values in profile_changes.items():
            profile = profile.model_copy(update={section: updated(getattr(profile, section), values)})
        bench = bench.model_copy(update={"profiles": {**bench.profiles, "tiny-mocov2": profile}})
    planner = Planner(bench, "tiny-mocov2")
    return {stage.name: stage.key for stage in planner.cell("r50-effb0").stages()}


def test_two_pairs_with_one_teacher_pretrain_it_once_and_share_the_student_baseline():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    cells = [planner.cell("r50-effb0"), planner.cell("r50-r18"), planner.cell("r101-effb0")]
    stages = topological([stage for cell in cells for stage in cell.stages()])
    names = [stage.name for stage in stages]
    assert names.count("pretrain-mocov2-r50-tiny-mocov2-s0") == 1
    assert names.count("pretrain-mocov2-effb0-tiny-mocov2-s0") == 1  # baseline shared by r50 and r101
    assert cells[0].teacher.key == cells[1].teacher.key
    assert (
        cells[0].baseline.key == cells[2].baseline.key
        and cells[0].methods["disco"].key != cells[2].methods["disco"].key
    )
    for index, stage in enumerate(stages):  # every stage comes after its inputs
        assert all(names.index(dep.name) < index for dep in stage.inputs.values())


def test_keys_are_stable_across_runs():
    assert plan() == plan()


def changed(before, after):
    return {name for name in before if before[name] != after[name]}


def test_pretrain_lr_changes_every_trained_stage_and_their_evals_but_not_the_random_control():
    before, after = plan(), plan(pretrain={"lr": 0.05})
    assert changed(before, after) == {name for name in before if "random" not in name}


def test_a_warmup_changes_the_students_and_the_teacher_unless_the_teacher_keeps_its_own():
    before = plan()
    students = plan(pretrain={"warmup_epochs": 2})
    assert changed(before, students) == {name for name in before if "random" not in name}
    bench = load_benchmarks()
    profile = bench.profiles["tiny-mocov2"].model_copy(update={"teacher_warmup_epochs": 0})
    bench = bench.model_copy(update={"profiles": {**bench.profiles, "tiny-mocov2": profile}})
    teacher_kept = plan(bench, pretrain={"warmup_epochs": 2})
    teacher_and_its_evals = {name for name in before if "pretrain-mocov2-r50-" in name}
    assert "pretrain-mocov2-r50-tiny-mocov2-s0" in teacher_and_its_evals and len(teacher_and_its_evals) > 1
    assert changed(before, teacher_kept) == changed(before, students) - teacher_and_its_evals


def test_linear_probe_recipe_changes_only_the_linear_eval_stages():
    before, after = plan(), plan(linear={"lr": 1.0})
    assert changed(before, after) == {name for name in before if name.startswith("eval-linear-")}
    assert len(changed(before, after)) == 4  # the four encoders' linear probes, nothing else


def test_teacher_bn_mode_changes_only_distillation_and_its_evals():
    before, after = plan(), plan(disco={"teacher_bn": "eval"})
    assert changed(before, after) == {name for name in before if "distill-disco-r50-effb0" in name}
    assert "distill-disco-r50-effb0-tiny-mocov2-s0" in changed(
        before, after
    ) and "pretrain-mocov2-r50-tiny-mocov2-s0" not in changed(before, after)


def test_seeds_vary_the_student_stages_but_not_the_teacher():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    seed0, seed1 = planner.cell("r50-effb0", seed=0), planner.cell("r50-effb0", seed=1)
    assert seed0.teacher.key == seed1.teacher.key
    assert seed0.baseline.key != seed1.baseline.key and seed0.methods["disco"].key != seed1.methods["disco"].key


def test_every_evaluation_shrinks_to_a_couple_of_steps_under_smoke_in_every_profile():
    """Each evaluation's recipe class says how smoke shrinks it, whatever the profile asks for: a new
    evaluation without one is refused when planned, never run at full length."""
    bench = load_benchmarks()
    for profile in bench.profiles:
        planner = Planner(bench, profile, smoke=True)
        for evaluation in planner.runnable_evaluations():
            recipe = coerce_recipe(EVALUATIONS[evaluation].recipe, planner.eval_config(evaluation, 0)["recipe"])
            bounds = {
                "epochs": 1,
                "limit_batches": 2,
                "iterations": 2,
                "max_iter": 2,
                "train_images": 8,
                "batch_size": 8,
            }
            assert all(getattr(recipe, field) <= most for field, most in bounds.items() if hasattr(recipe, field)), (
                profile,
                evaluation,
                recipe,
            )
            assert hasattr(recipe, "limit_batches") or hasattr(recipe, "iterations"), evaluation


@dataclasses.dataclass(frozen=True)
class RecipeWithoutSmoke:
    epochs: int = 100


@pytest.mark.parametrize("recipe", [dict, RecipeWithoutSmoke])
def test_an_evaluation_without_a_recipe_dataclass_with_smoke_settings_cannot_be_registered(recipe):
    with pytest.raises(TypeError, match="recipe must be a dataclass with SMOKE settings"):
        Evaluation("new", "disco.evals.new:new", recipe, ("top1",))


def test_an_evaluation_the_registry_does_not_know_is_refused_when_planned_with_smoke(monkeypatch):
    planner = Planner(load_benchmarks(), "tiny-mocov2", smoke=True)
    monkeypatch.delitem(EVALUATIONS, "knn")  # named in benchmarks.yaml, not implemented
    with pytest.raises(InputError, match="unknown evaluation 'knn'"):
        planner.eval_config("knn", 0)


def test_resnet_disco_students_are_planned_with_torchvision_init_and_nothing_else_is():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    r18, effb0 = planner.cell("r50-r18"), planner.cell("r50-effb0")
    assert r18.methods["disco"].config["student_init"] == "torchvision"
    assert "student_init" not in r18.baseline.config and "student_init" not in r18.teacher.config
    assert "student_init" not in effb0.methods["disco"].config  # EfficientNet: timm's init is the official one


def paper_plan(precision=None, speed="optimized"):
    planner = Planner(load_benchmarks(), "paper", speed=speed, precision=precision)
    return {stage.name: stage for stage in planner.cell("r50-r18", 0, ["linear"]).stages()}


def test_precision_is_in_the_key_of_training_stages_and_their_evaluations_only():
    fp32, bf16 = paper_plan(), paper_plan("bf16")
    assert {stage.config.get("precision") for stage in fp32.values() if stage.kind in ("pretrain", "distill")} == {
        "fp32"
    }
    changed = {name for name in fp32 if fp32[name].key != bf16[name].key}
    # the imported teacher (and its evaluation) is the released file whatever the precision
    assert changed == {name for name in fp32 if "random" not in name and "import-" not in name}
    assert {name: stage.key for name, stage in paper_plan("fp32").items()} == {
        name: stage.key for name, stage in fp32.items()
    }


def test_speed_structure_is_not_in_the_key_but_a_changed_random_stream_is():
    assert {name: stage.key for name, stage in paper_plan(speed="reference").items()} == {
        name: stage.key for name, stage in paper_plan().items()
    }
    tiny, reference = (
        plan(),
        {
            s.name: s.key
            for s in Planner(load_benchmarks(), "tiny-mocov2", speed="reference").cell("r50-effb0").stages()
        },
    )
    # in-memory images: the optimized mode draws views batched on the device, the reference per image
    assert changed(tiny, reference) == {name for name in tiny if "random" not in name}


def test_tiny_keys_do_not_record_the_default_fp32():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    assert all(
        "precision" not in stage.config and "views" not in stage.config for stage in planner.cell("r50-effb0").stages()
    )
    bf16 = Planner(load_benchmarks(), "tiny-mocov2", precision="bf16").cell("r50-effb0")
    assert (
        bf16.methods["disco"].config["precision"] == "bf16"
        and bf16.methods["disco"].key != planner.cell("r50-effb0").methods["disco"].key
    )


# ---------------------------------------------------------------- several methods in one cell


def test_methods_in_one_cell_share_the_teacher_and_baseline_with_a_stage_and_evals_each():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    both, default = planner.cell("r50-r18", 0, ["linear"], ["disco", "seed"]), planner.cell("r50-r18", 0, ["linear"])
    assert list(default.methods) == ["disco"]  # benchmarks.yaml default_methods
    stages = topological(both.stages())
    kinds = [stage.kind for stage in stages]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == {"pretrain": 2, "distill": 2, "init": 1, "eval": 5}
    assert both.methods["disco"].key == default.methods["disco"].key and both.baseline.key == default.baseline.key
    assert all(stage.inputs["teacher"].key == both.teacher.key for stage in both.methods.values())
    assert {role for role, _ in both.evals} == {"teacher", "baseline", "disco", "seed", "random_init"}
    seed = both.methods["seed"]
    assert seed.name == "distill-seed-r50-r18-tiny-mocov2-s0" and seed.config["method"] == "seed"
    assert seed.config["seed_distill"]["queue_size"] == 4096 and "mocov2" not in seed.config
    assert seed.config["seed"] == 0 and seed.config["student_init"] == "torchvision"


def test_method_variants_record_their_fixed_values_and_get_their_own_keys():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    cell = planner.cell("r50-effb0", 0, ["linear"], ["disco", "disco_only_mse", "rkd", "rkd_disco"])
    configs = {name: stage.config for name, stage in cell.methods.items()}
    assert configs["disco_only_mse"]["disco"]["ce_weight"] == 0.0 and configs["disco"]["disco"]["ce_weight"] == 1.0
    assert configs["rkd"]["rkd"] == {"distance_weight": 1.0, "angle_weight": 1.0, "use_mse": False}
    assert configs["rkd_disco"]["rkd"]["use_mse"] is True
    assert len({stage.key for stage in cell.methods.values()}) == 4


def test_smoke_shrinks_every_methods_queue_and_bn_groups():
    cell = Planner(load_benchmarks(), "tiny-mocov2", smoke=True).cell("r50-effb0", 0, ["linear"], ["seed", "rkd"])
    assert cell.methods["seed"].config["seed_distill"]["queue_size"] == 64
    assert cell.methods["rkd"].config["mocov2"]["bn_group_size"] == 4


def test_an_unknown_or_pretraining_method_is_refused_with_did_you_mean():
    planner = Planner(load_benchmarks(), "tiny-mocov2")
    with pytest.raises(UserError, match=r"unknown distillation method 'sed' \(did you mean 'seed'\?\)"):
        planner.cell("r50-effb0", methods=["sed"])
    with pytest.raises(UserError, match="unknown distillation method 'mocov2'"):
        planner.cell("r50-effb0", methods=["mocov2"])
