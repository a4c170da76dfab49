"""`run --profile paper` plans every downstream evaluation of the paper and checks their data before
anything trains: one line per evaluation naming the variable or option to set (dry runs only here)."""

from pathlib import Path

import pytest

from harness.config import load_benchmarks
from harness.matrix import Planner
from tests.conftest import run_cli
from tests.disco.test_data_real import build_coco, build_voc, write_jpeg

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
    """No dataset anywhere: ImageNet points at an empty folder, no CIFAR, no detectron2 datasets."""
    monkeypatch.setenv("DISCO_IMAGENET", str(tmp_path / "no-imagenet"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("DISCO_CIFAR", "DETECTRON2_DATASETS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


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
    assert list(found) == ["training", *PAPER_EVALS]
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
