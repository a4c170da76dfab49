"""`disco-bench export STAGE --format official`: the official checkpoint layout, read back by
`eval --checkpoint`'s loader to identical outputs, and by what the official scripts do with it."""

import json
from pathlib import Path

import pytest
import timm
import torch

from disco.checkpoints import load_encoder
from disco.tasks.artifacts import load_encoder_artifact
from disco.tasks.evaluation import evaluate_encoder
from disco.tasks.inputs import eval_input, runtime_of
from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.runner import run_stage_from_spec
from harness.stages import canonical_hash
from harness.workspace import Workspace
from tests.conftest import run_cli
from tests.disco.test_detectron2_backend import official_conversion

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Finished smoke-sized init stages (an EfficientNet-B0 and a ResNet-18 encoder with their heads)."""
    root = tmp_path_factory.mktemp("export")
    workspace = Workspace(root / "artifacts", root / "results")
    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny", smoke=True)
    stages = {arch: planner.cell(pair).random_init for arch, pair in (("effb0", "r50-effb0"), ("r18", "r50-r18"))}
    for stage in stages.values():
        run_stage_from_spec(stage.write_spec(workspace), workspace)
    return workspace, stages


def export(monkeypatch, capsys, workspace, stage_name, output):
    where = ["--results", str(workspace.results), "--artifacts", str(workspace.artifacts)]
    return run_cli(monkeypatch, capsys, "export", stage_name, "--format", "official", "-o", str(output), *where)


@pytest.mark.parametrize(
    ("arch", "official_arch", "slot"), [("effb0", "efficientb0", "classifier"), ("r18", "resnet18", "fc")]
)
def test_export_round_trips_to_identical_outputs(finished, tmp_path, monkeypatch, capsys, arch, official_arch, slot):
    workspace, stages = finished
    stage = stages[arch]
    code, out, err = export(monkeypatch, capsys, workspace, stage.name, tmp_path / "student.pth.tar")
    assert code == 0, err
    payload = torch.load(tmp_path / "student.pth.tar", weights_only=True)
    assert payload["arch"] == official_arch and set(payload) == {"epoch", "arch", "state_dict"}
    assert all(key.startswith("module.encoder_q.") for key in payload["state_dict"])
    assert (
        f"module.encoder_q.{slot}.0.weight" in payload["state_dict"]
        and f"module.encoder_q.{slot}.2.weight" in payload["state_dict"]
    )
    original, _ = load_encoder_artifact(workspace.stage_dir(stage.name, stage.key))
    loaded, report = load_encoder(tmp_path / "student.pth.tar", with_head=True)  # what `eval --checkpoint` uses
    assert report.arch == arch and report.loaded == len(payload["state_dict"])
    x = torch.randn(4, 3, 32, 32)
    original.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x)) and torch.equal(original.features(x), loaded.features(x))
    headless, _ = load_encoder(tmp_path / "student.pth.tar", with_head=False)
    with torch.no_grad():
        assert torch.equal(original.features(x), headless.eval().features(x))


def test_official_linear_eval_and_detectron2_conversion_read_the_export(finished, tmp_path, monkeypatch, capsys):
    workspace, stages = finished
    for arch in ("effb0", "r18"):
        assert export(monkeypatch, capsys, workspace, stages[arch].name, tmp_path / f"{arch}.pth.tar")[0] == 0
    # main_lincls.py: keep module.encoder_q.* minus the head, strip the prefix, load non-strictly and
    # assert that only the new linear head is missing
    state = torch.load(tmp_path / "effb0.pth.tar", weights_only=True)["state_dict"]
    backbone = {
        k[len("module.encoder_q.") :]: v
        for k, v in state.items()
        if k.startswith("module.encoder_q") and not k.startswith("module.encoder_q.classifier")
    }
    model = timm.create_model("efficientnet_b0", num_classes=1000)
    missing = model.load_state_dict(backbone, strict=False)
    assert set(missing.missing_keys) == {"classifier.weight", "classifier.bias"} and not missing.unexpected_keys
    # MoCo's convert-pretrain-to-detectron2.py on the ResNet-18 export
    converted = official_conversion(torch.load(tmp_path / "r18.pth.tar", weights_only=True)["state_dict"])
    assert {
        "stem.conv1.weight",
        "stem.conv1.norm.running_mean",
        "res2.0.conv1.weight",
        "res5.1.conv2.norm.weight",
        "stem.fc.0.weight",
    } <= set(converted)


def test_eval_checkpoint_of_the_export_gives_the_encoders_own_metrics(finished, tmp_path, monkeypatch, capsys):
    workspace, stages = finished
    stage = stages["effb0"]
    assert export(monkeypatch, capsys, workspace, stage.name, tmp_path / "student.pth.tar")[0] == 0
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "eval",
        "--checkpoint",
        str(tmp_path / "student.pth.tar"),
        "--evals",
        "knn",
        "--smoke",
        "--results",
        str(tmp_path / "results"),
    )
    assert code == 0, err
    stored = json.loads(next((tmp_path / "results" / "tiny-smoke" / "checkpoints").glob("eval-knn-*.json")).read_text())
    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny", smoke=True)
    original, _ = load_encoder_artifact(workspace.stage_dir(stage.name, stage.key))
    expected = evaluate_encoder(
        original, eval_input(planner.eval_config("knn", 0)), runtime_of(planner.runtime), torch.device("cpu")
    )
    assert {k: stored["metrics"][k] for k in ("top1", "top5")} == {k: expected[k] for k in ("top1", "top5")}
    assert stored["config_hash"] == canonical_hash(stored["config"])  # the stage keys' hash


def test_export_errors_are_one_line(finished, tmp_path, monkeypatch, capsys):
    workspace, stages = finished
    code, _, err = export(
        monkeypatch, capsys, workspace, stages["effb0"].name.replace("random", "randm"), tmp_path / "x.pth.tar"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "did you mean 'init-random-effb0" in err
    code, _, err = run_cli(
        monkeypatch, capsys, "export", stages["effb0"].name, "--format", "onnx", "--results", str(workspace.results)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "onnx" in err


def test_eval_recipe_overrides_are_typed_and_reach_only_their_evaluation():
    from harness.commands.eval import override_recipes

    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny")
    configs = [planner.eval_config(name, 0) for name in ("linear", "knn")]
    linear_before = dict(configs[0]["recipe"])
    override_recipes(configs, ("knn.k=3", "knn.temperature=0.5"))
    assert (configs[1]["recipe"]["k"], configs[1]["recipe"]["temperature"]) == (3, 0.5)
    assert configs[0]["recipe"] == linear_before
    assert planner.eval_config("knn", 0)["recipe"]["k"] != 3  # the profile's recipe is untouched
