"""`run --profile paper` plans every downstream evaluation of the paper and checks their data before
anything trains: one line per evaluation naming the variable or option to set (dry runs only here)."""

from pathlib import Path

import pytest

from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import run_cli
from tests.disco.test_data_real import build_coco, build_voc, write_jpeg
from tests.harness.test_paper_keys import RELEASES

REPO = Path(__file__).resolve().parents[2]
PAPER_EVALS = [
    "linear",
    "semi_linear_1pct",
    "semi_linear_10pct",
    "transfer_cifar10",
    "transfer_cifar100",
    "detection_voc",
    "detection_coco",
]


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """No dataset anywhere: ImageNet points at an empty folder, no CIFAR, no detectron2 datasets, no
    released teacher (each teacher's variable names its official file in an empty folder)."""
    monkeypatch.setenv("DISCO_IMAGENET", str(tmp_path / "no-imagenet"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("DISCO_CIFAR", "DETECTRON2_DATASETS"):
        monkeypatch.delenv(name, raising=False)
    for teacher, file in RELEASES.items():
        monkeypatch.setenv(f"DISCO_{teacher.upper()}_CHECKPOINT", str(tmp_path / "releases" / file))
    return tmp_path


def put_release(root: Path, teacher: str) -> Path:
    """A stand-in for the released file: the dry run only looks for it (the import stage reads it)."""
    path = root / "releases" / RELEASES[teacher]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"release")
    return path


def dry_run(monkeypatch, capsys, tmp_path, *args):
    where = ["--artifacts", str(tmp_path / "artifacts"), "--results", str(tmp_path / "results")]
    return run_cli(monkeypatch, capsys, "run", "--profile", "paper", "--dry-run", *args, *where)


def errors(err: str) -> dict[str, str]:
    lines = [line.removeprefix("error: ") for line in err.strip().splitlines()]
    assert lines[-1].endswith("nothing was run (fix the above, or choose evaluations with --evals)")
    return dict(line.split(": ", 1) for line in lines[:-1])


def test_the_paper_profile_plans_every_evaluation_of_the_paper():
    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "paper")
    assert planner.profile.evals == PAPER_EVALS and planner.profile.precision == "fp32"
    r18 = {evaluation for _, evaluation in planner.cell("r50-r18").evals}
    r34 = {evaluation for _, evaluation in planner.cell("r50-r34").evals}
    effb0 = {evaluation for _, evaluation in planner.cell("r50-effb0").evals}
    assert r18 == set(PAPER_EVALS)  # VOC and COCO, as the paper's Tab. 3 (COCO: R-18)
    assert r34 == set(PAPER_EVALS) - {"detection_coco"} and effb0 == set(PAPER_EVALS) - {
        "detection_voc",
        "detection_coco",
    }
    cell = planner.cell("r50-r18")
    assert ("teacher", "detection_voc") not in cell.evals and (
        "disco",
        "detection_voc",
    ) in cell.evals  # detection: the ResNet students
    assert cell.evals[("disco", "detection_voc")].config["recipe"]["faithful_yaml_bug"] is True
    assert cell.evals[("disco", "semi_linear_1pct")].config["recipe"]["faithful_header_bug"] is True


def test_missing_datasets_are_one_line_per_evaluation_before_anything_runs(bare_env, monkeypatch, capsys):
    code, out, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r50-r18")
    assert code == 4 and "Traceback" not in err  # DataUnavailable's exit code
    found = errors(err)
    assert list(found) == ["teacher r50", "training", *PAPER_EVALS]
    assert found["teacher r50"] == (
        f"released checkpoint ResNet50-checkpoint_0199.pth.tar not found at {bare_env / 'releases' / RELEASES['r50']}: "
        "download ResNet50-checkpoint_0199.pth.tar there or set DISCO_R50_CHECKPOINT to its path "
        "(profiles.paper.teacher_checkpoints.r50); or pass --pretrain-teachers to pretrain it here (MoCo-v2, 200 epochs)"
    )
    assert all(
        "DISCO_IMAGENET" in found[name] for name in ("training", "linear", "semi_linear_1pct", "semi_linear_10pct")
    )
    assert "DISCO_CIFAR" in found["transfer_cifar10"] and "cifar-100-python" in found["transfer_cifar100"]
    assert all("DETECTRON2_DATASETS" in found[name] for name in ("detection_voc", "detection_coco"))
    assert "plan: 0 done, 30 to run" in out  # the plan is printed first
    assert not (bare_env / "results").exists() and not (bare_env / "artifacts").exists()


def test_evals_still_select_and_only_their_data_is_checked(bare_env, monkeypatch, capsys):
    imagenet = bare_env / "imagenet"
    for split in ("train", "val"):
        write_jpeg(imagenet / split / "n01440764" / "n01440764_1.JPEG", 10)
    monkeypatch.setenv("DISCO_IMAGENET", str(imagenet))
    put_release(bare_env, "r50")
    code, _, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r50-effb0", "--evals", "linear,transfer_cifar10")
    assert code == 4 and list(errors(err)) == ["transfer_cifar10"]
    (bare_env / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setenv("DISCO_CIFAR", str(bare_env / "cifar"))
    code, out, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r50-effb0", "--evals", "linear,transfer_cifar10")
    assert code == 0, err
    assert "plan: 0 done, 12 to run" in out  # 4 trainings + 2 evaluations x 4 encoders


def test_with_every_dataset_in_place_the_dry_run_passes(bare_env, monkeypatch, capsys):
    imagenet, cifar, detectron2 = bare_env / "imagenet", bare_env / "cifar", bare_env / "detectron2"
    for split in ("train", "val"):
        write_jpeg(imagenet / split / "n01440764" / "n01440764_1.JPEG", 10)
    for folder in ("cifar-10-batches-py", "cifar-100-python"):
        (cifar / folder).mkdir(parents=True)
    build_voc(detectron2)
    build_coco(detectron2)
    monkeypatch.setenv("DISCO_IMAGENET", str(imagenet))
    monkeypatch.setenv("DISCO_CIFAR", str(cifar))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(detectron2))
    put_release(bare_env, "r50")
    # detectron2 itself lives in the CUDA image: with the docker executor it is not looked for here
    code, out, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r50-r18", "--executor", "docker")
    assert code == 0, err
    assert "plan: 0 done, 30 to run" in out  # 4 trainings + 5 evaluations x 4 encoders + 2 detections x 3 r18 encoders
    assert "1percent.txt is not cached yet" in out  # fetched before training by a real run


def test_an_evaluation_that_runs_on_none_of_the_chosen_encoders_is_one_line(bare_env, monkeypatch, capsys):
    code, _, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r50-effb0", "--evals", "detection_voc")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "detection_voc: it runs on r18, r34 only (evaluations.detection_voc.archs" in err


def test_smoke_leaves_out_detectron2_and_stands_in_for_cifar(bare_env, monkeypatch, capsys):
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "run",
        "--profile",
        "paper",
        "--smoke",
        "--pair",
        "r50-r18",
        "--dry-run",
        "--artifacts",
        str(bare_env / "a"),
        "--results",
        str(bare_env / "r"),
    )
    assert code == 0, err  # synthetic images stand in for ImageNet and CIFAR
    assert "plan: 0 done, 24 to run" in out and "detection" not in out


def test_a_missing_release_is_one_line_and_is_pretrained_here_only_when_asked(bare_env, monkeypatch, capsys):
    imagenet = bare_env / "imagenet"
    for split in ("train", "val"):
        write_jpeg(imagenet / split / "n01440764" / "n01440764_1.JPEG", 10)
    monkeypatch.setenv("DISCO_IMAGENET", str(imagenet))
    code, out, err = dry_run(monkeypatch, capsys, bare_env, "--pair", "r152-r18", "--evals", "linear")
    assert code == 4 and list(errors(err)) == ["teacher r152"] and "import-r152-paper-s0" in out
    assert "ResNet152-checkpoint_0799.pth.tar" in err and "(MoCo-v2, 800 epochs)" in err
    code, out, err = dry_run(
        monkeypatch, capsys, bare_env, "--pair", "r152-r18", "--evals", "linear", "--pretrain-teachers"
    )
    assert code == 0, err
    assert "pretrain-mocov2-r152-paper-s0" in out and "import-r152" not in out
    put_release(bare_env, "r152")  # with its file in place the release is imported, flag or not
    code, out, err = dry_run(
        monkeypatch, capsys, bare_env, "--pair", "r152-r18", "--evals", "linear", "--pretrain-teachers"
    )
    assert code == 0 and "import-r152-paper-s0" in out, err


@pytest.mark.parametrize("teacher", ["r50swav", "r50dc2", "r50sela2"])
def test_a_swav_family_teacher_is_never_pretrained_here(teacher, bare_env, monkeypatch, capsys):
    imagenet = bare_env / "imagenet"
    for split in ("train", "val"):
        write_jpeg(imagenet / split / "n01440764" / "n01440764_1.JPEG", 10)
    monkeypatch.setenv("DISCO_IMAGENET", str(imagenet))
    pair = f"{teacher}-r34"
    code, out, err = dry_run(monkeypatch, capsys, bare_env, "--pair", pair, "--evals", "linear", "--pretrain-teachers")
    found = errors(err)
    assert code == 4 and list(found) == [f"teacher {teacher}"] and f"distill-disco-{pair}-paper-s0" in out
    assert RELEASES[teacher] in found[f"teacher {teacher}"] and f"DISCO_{teacher.upper()}_CHECKPOINT" in err
    assert "--pretrain-teachers does not apply" in err
