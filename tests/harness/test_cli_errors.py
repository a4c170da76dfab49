import errno
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from disco.errors import BackendUnavailable, CheckpointError, DataUnavailable, DiskFull, InputError, TrainingDiverged
from harness.cli import cli
from harness.errors import StageFailed, UserError
from tests.conftest import REPO, disco_bench, run_cli


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_pair_lists_valid_names_with_did_you_mean(workspace_args):
    proc = disco_bench("run", "--pair", "r50-efb0", "--dry-run", *workspace_args)
    assert_one_line_error(proc, "unknown pair 'r50-efb0'", "did you mean 'r50-effb0'", "r152-r34")


def test_unknown_method_lists_valid_names_with_did_you_mean(workspace_args):
    proc = disco_bench("run", "--methods", "disco,sed", "--dry-run", *workspace_args)
    assert_one_line_error(proc, "unknown distillation method 'sed'", "did you mean 'seed'", "rkd_disco")
    assert proc.returncode == 2


def test_unknown_profile_lists_valid_names(workspace_args):
    proc = disco_bench("run", "--pair", "r50-effb0", "--profile", "tinny", "--dry-run", *workspace_args)
    assert_one_line_error(proc, "unknown profile 'tinny'", "did you mean 'tiny'", "paper")


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = disco_bench(
        "run",
        "--pair",
        "r50-effb0",
        "--smoke",
        "--artifacts",
        str(blocker / "artifacts"),
        "--results",
        str(tmp_path / "results"),
    )
    assert_one_line_error(proc, "not writable", str(blocker / "artifacts"))
    assert proc.returncode == 2


def test_missing_matrix_file_is_a_clear_error(tmp_path, workspace_args):
    proc = disco_bench("run", "--benchmarks", str(tmp_path / "nope.yaml"), "--dry-run", *workspace_args)
    assert_one_line_error(proc, "nope.yaml", "not found")


# ---------------------------------------------------------------- every class of bad input: one line, its exit code

BENCHMARKS = REPO / "benchmarks.yaml"


def broken_benchmarks(tmp: Path, change) -> str:
    data = yaml.safe_load(BENCHMARKS.read_text())
    change(data)
    path = tmp / "benchmarks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def spec_file(tmp: Path, **changes) -> str:
    spec = {
        "name": "pretrain-x",
        "kind": "pretrain",
        "profile": "tiny-smoke",
        "key": "k" * 64,
        "stage_dir": "stages/x",
        "result": "tiny-smoke/stages/x.json",
        "inputs": {},
        "runtime": {"device": "cpu"},
        "config": {
            "method": "mocov2",
            "arch": "effb0",
            "head": "mocov2",
            "seed": 0,
            "data": {"source": "embedded", "image_size": 32, "smoke": True},
            "recipe": {"epochs": 1, "batch_size": 8, "lr": 0.03, "limit_batches": 1},
            "mocov2": {"queue_size": 64, "momentum": 0.99, "temperature": 0.2, "bn_group_size": 4},
        },
    }
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec | changes))
    return str(path)


def eval_spec(tmp: Path, evaluation: str, recipe: dict) -> str:
    base = json.loads(Path(spec_file(tmp)).read_text())
    config = {"evaluation": evaluation, "data": base["config"]["data"], "recipe": recipe, "seed": 0}
    encoder = {"name": "init-random-effb0", "key": "e" * 64, "stage_dir": "stages/e"}
    return spec_file(tmp, name="eval-x", kind="eval", config=config, inputs={"encoder": encoder})


def set_recipe_queue(tmp: Path) -> str:
    base = json.loads(Path(spec_file(tmp)).read_text())
    return spec_file(tmp, config=base["config"] | {"mocov2": base["config"]["mocov2"] | {"queue_size": 100}})


BAD_INPUTS = {  # id -> (arguments given the scratch dir, fragments of the one error line)
    "eval-empty-checkpoint": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "empty.pt", b"")), "--smoke"],
        ["cannot read checkpoint", "EOFError"],
    ),
    "eval-text-checkpoint": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "notes.pt", b"hello\n")), "--smoke"],
        ["cannot read checkpoint", "not a torch file"],
    ),
    "benchmarks-top-level-list": (
        lambda t: ["run", "--benchmarks", str(touch(t / "list.yaml", b"- a\n- b\n")), "--dry-run"],
        ["list.yaml:1", "expected a mapping of the sections"],
    ),
    "queue-not-a-multiple-of-the-batch": (
        lambda t: [
            "run",
            "--benchmarks",
            broken_benchmarks(t, lambda d: d["profiles"]["tiny-mocov2"]["mocov2"].update(queue_size=4000)),
            "--dry-run",
        ],
        ["benchmarks.yaml:", "queue_size 4000 must be a multiple of pretrain.batch_size 64"],
    ),
    "knn-negative-k": (
        lambda t: [
            "run",
            "--benchmarks",
            broken_benchmarks(t, lambda d: d["profiles"]["tiny"]["eval_recipes"]["knn"].update(k=-5)),
            "--dry-run",
        ],
        ["profiles.tiny.eval_recipes.knn.k", "k >= 1"],
    ),
    "run-stage-unknown-kind": (
        lambda t: ["run-stage", spec_file(t, kind="bogus")],
        ["spec.json", "unknown stage kind 'bogus'", "regenerate"],
    ),
    "run-stage-config-not-a-mapping": (
        lambda t: ["run-stage", spec_file(t, config=[1, 2])],
        ["spec.json", "config", "valid dictionary"],
    ),
    "run-stage-path-outside-the-workspace": (
        lambda t: ["run-stage", spec_file(t, stage_dir="/etc")],
        ["stage_dir", "must be relative"],
    ),
    "run-stage-queue-not-a-multiple": (
        lambda t: ["run-stage", set_recipe_queue(t)],
        ["stage pretrain-x", "queue_size 100 must be a multiple of batch_size 8"],
    ),
    "run-stage-knn-negative-k": (
        lambda t: ["run-stage", eval_spec(t, "knn", {"k": -5})],
        ["spec.json", "config.recipe.k", "k >= 1"],
    ),
    "run-stage-knn-unknown-field": (
        lambda t: ["run-stage", eval_spec(t, "knn", {"kk": 200})],
        ["spec.json", "config.recipe.kk", "did you mean 'k'"],
    ),
    "run-stage-semi-finetune-eval-every-0": (
        lambda t: ["run-stage", eval_spec(t, "semi_finetune_1pct", {"eval_every": 0})],
        ["spec.json", "config.recipe.eval_every", "eval_every >= 1"],
    ),
    "run-stage-detection-bad-backend": (
        lambda t: ["run-stage", eval_spec(t, "detection", {"backend": "mmdet"})],
        ["spec.json", "config.recipe.backend", "torchvision, detectron2"],
    ),
    "run-stage-unknown-evaluation": (
        lambda t: ["run-stage", eval_spec(t, "knnn", {})],
        ["spec.json", "config.evaluation", "unknown evaluation 'knnn'"],
    ),
    "run-stage-eval-without-encoder": (
        lambda t: [
            "run-stage",
            spec_file(t, **{**json.loads(Path(eval_spec(t, "knn", {})).read_text()), "inputs": {}}),
        ],
        ["spec.json", "inputs.encoder"],
    ),
    "eval-knn-negative-k": (
        lambda t: [
            "eval",
            "--checkpoint",
            str(touch(t / "any.pt", b"")),
            "--evals",
            "knn",
            "--benchmarks",
            broken_benchmarks(t, lambda d: d["profiles"]["tiny"]["eval_recipes"]["knn"].update(k=-5)),
        ],
        ["profiles.tiny.eval_recipes.knn.k", "k >= 1"],
    ),
    "eval-semi-finetune-eval-every-0": (
        lambda t: [
            "eval",
            "--checkpoint",
            str(touch(t / "any.pt", b"")),
            "--evals",
            "semi_finetune_1pct",
            "--benchmarks",
            broken_benchmarks(
                t, lambda d: d["profiles"]["tiny"]["eval_recipes"]["semi_finetune_1pct"].update(eval_every=0)
            ),
        ],
        ["profiles.tiny.eval_recipes.semi_finetune_1pct.eval_every", "eval_every >= 1"],
    ),
    "eval-recipe-knn-negative-k": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "any.pt", b"")), "--evals", "knn", "--recipe", "knn.k=-5"],
        ["--recipe knn.k", "k >= 1"],
    ),
    "eval-recipe-knn-unknown-field": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "any.pt", b"")), "--evals", "knn", "--recipe", "knn.kk=200"],
        ["--recipe knn.kk", "did you mean 'k'"],
    ),
    "eval-recipe-semi-finetune-eval-every-0": (
        lambda t: [
            "eval",
            "--checkpoint",
            str(touch(t / "any.pt", b"")),
            "--evals",
            "semi_finetune_1pct",
            "--recipe",
            "semi_finetune_1pct.eval_every=0",
        ],
        ["--recipe semi_finetune_1pct.eval_every", "eval_every >= 1"],
    ),
    "eval-recipe-not-among-evals": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "any.pt", b"")), "--evals", "linear", "--recipe", "knn.k=5"],
        ["--recipe 'knn.k=5'", "not among --evals (linear)"],
    ),
    "eval-recipe-malformed": (
        lambda t: ["eval", "--checkpoint", str(touch(t / "any.pt", b"")), "--recipe", "k=5"],
        ["--recipe 'k=5'", "EVAL.FIELD=VALUE"],
    ),
    "perf-bogus-device": (lambda t: ["perf", "--device", "bogus"], ["device 'bogus' is not a device", "cuda:N"]),
    "run-bogus-device": (lambda t: ["run", "--device", "bogus", "--dry-run"], ["--device 'bogus' is not a device"]),
    "seeds-beyond-the-bound": (
        lambda t: ["run", "--seeds", "100000000000000000000", "--dry-run"],
        ["--seeds", "1<=x<=100"],
    ),
    "plan-beyond-the-bound": (
        lambda t: ["run", "--all", "--seeds", "100", "--dry-run"],
        ["pair(s) x 100 seed(s)", "stages, over the 20,000 one run plans", "fewer pairs, seeds or evaluations"],
    ),
}


def touch(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


EXIT_CODES = {"eval-empty-checkpoint": CheckpointError.exit_code, "eval-text-checkpoint": CheckpointError.exit_code}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_every_class_of_bad_input_is_one_line_with_its_exit_code_and_touches_no_result(
    case, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(REPO)
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    kept = results / "tiny" / "stages" / "kept.json"
    kept.parent.mkdir(parents=True)
    kept.write_text('{"a result": "already on disk"}')
    arguments, fragments = BAD_INPUTS[case]
    args = arguments(tmp_path)
    where = ["--results", str(results)] + (["--artifacts", str(artifacts)] if args[0] in ("run", "run-stage") else [])
    code, out, err = run_cli(monkeypatch, capsys, *args, *([] if args[0] == "perf" else where))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_CODES.get(case, InputError.exit_code), err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert kept.read_text() == '{"a result": "already on disk"}' and [p.name for p in kept.parent.iterdir()] == [
        "kept.json"
    ]


def test_a_long_plan_is_summarised(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "run",
        "--all",
        "--seeds",
        "2",
        "--dry-run",
        "--results",
        str(tmp_path / "r"),
        "--artifacts",
        str(tmp_path / "a"),
    )
    assert code == 0 and "more stage(s) not listed" in out and "all stages by kind" in out
    assert len(out.splitlines()) < 80  # 40 rows, their frame, the counts per kind


IMPORT_PROBE = """
import sys
from harness.cli import main
sys.argv = ["disco-bench", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("heavy:", sorted(name for name in ("torch", "timm", "torchvision") if name in sys.modules))
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["eval", "--help"], ["validate"], ["list"], ["status"]]
)
def test_help_validate_list_and_status_do_not_import_torch(args, workspace_args):
    extra = workspace_args if args[0] in ("list", "status") else []
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []", proc.stderr[-2000:]


# ---------------------------------------------------------------- one exit code per error class

EXIT_CODE_TABLE = [  # harness/errors.py and the README's table
    (InputError, 2),
    (UserError, 2),
    (StageFailed, 3),
    (DataUnavailable, 4),
    (CheckpointError, 5),
    (BackendUnavailable, 6),
    (TrainingDiverged, 7),
    (DiskFull, 8),
    (RuntimeError, 1),
]


@pytest.mark.parametrize(("error", "code"), EXIT_CODE_TABLE, ids=[error.__name__ for error, _ in EXIT_CODE_TABLE])
def test_each_error_class_has_its_own_exit_code_and_one_line(error, code, monkeypatch, capsys):
    @click.command("boom")
    def boom() -> None:
        raise error("what went wrong, where, how to fix it")

    monkeypatch.setitem(cli.commands, "boom", boom)
    exit_code, _, err = run_cli(monkeypatch, capsys, "boom")
    prefix = "internal error: RuntimeError: " if code == 1 else "error: "
    lines = err.strip().splitlines()
    assert exit_code == code and len(lines) == 1 and lines[0].startswith(f"{prefix}what went wrong, where"), err


def test_no_space_left_anywhere_is_the_disk_full_line_not_an_internal_error(monkeypatch, capsys, tmp_path):
    target = tmp_path / "stage.log"

    @click.command("fill")
    def fill() -> None:  # a write outside the atomic ones: the OSError itself reaches the CLI
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setitem(cli.commands, "fill", fill)
    exit_code, _, err = run_cli(monkeypatch, capsys, "fill")
    lines = err.strip().splitlines()
    assert exit_code == DiskFull.exit_code and len(lines) == 1, err
    assert lines[0].startswith(f"error: no space left on the device writing {target}; ") and "free there" in lines[0]


def test_an_error_inside_a_stage_keeps_its_class_and_names_the_stage():
    located = DataUnavailable("ImageNet train split not found").within("stage pretrain-x")
    assert isinstance(located, DataUnavailable) and str(located) == "stage pretrain-x: ImageNet train split not found"


def test_the_evaluation_registry_and_the_error_classes_do_not_import_torch():
    probe = (
        "import sys, disco.evals, disco.errors, disco.eval_recipes; "
        "[disco.evals.evaluation(name).smoke for name in disco.evals.EVALUATIONS]; "
        "print(sorted(name for name in ('torch', 'timm', 'torchvision') if name in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr[-2000:]


def test_a_diverging_loss_stops_the_stage_in_one_line_and_status_says_why(tmp_path):
    """The tiny profile's pretraining lr set to 1e30 in a copy of benchmarks.yaml: the teacher's first
    step has a non-finite loss. One line naming the stage, epoch, step and loss terms, exit 7; no result
    stored and nothing evaluated; `status` shows the stage as diverged with the reason."""
    data = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    data["profiles"]["tiny"]["pretrain"]["lr"] = 1.0e30
    matrix = tmp_path / "benchmarks.yaml"
    matrix.write_text(yaml.safe_dump(data, sort_keys=False))
    where = ["--benchmarks", str(matrix), "--artifacts", str(tmp_path / "a"), "--results", str(tmp_path / "r")]
    run = disco_bench("run", "--pair", "r50-effb0", "--smoke", "--reference", "", *where)
    assert run.returncode == 7, run.stderr
    error = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in run.stderr
    assert "stage pretrain-simclr-r50-tiny-smoke-s0: epoch" in error[0] and "the loss is not finite (loss " in error[0]
    assert "step 2" in error[0] or "step 1" in error[0]
    stages = tmp_path / "r" / "tiny-smoke" / "stages"
    assert not stages.exists() or not any(stages.glob("pretrain-simclr-r50-*.json"))
    assert not stages.exists() or not any(stages.glob("eval-*.json"))
    status = disco_bench("status", "--pair", "r50-effb0", "--smoke", *where)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if "pretrain-simclr-r50-tiny-smoke-s0" in line)
    assert "diverged: epoch" in row and "not finite" in row
