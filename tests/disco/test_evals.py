import math
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from disco.data.embedded import load_embedded, stratified_split
from disco.data.sources import Splits
from disco.errors import DataUnavailable, InputError
from disco.eval_recipes import KnnRecipe, ProbeRecipe, SemiLinearRecipe, SubsetChoice, coerce_recipe
from disco.evals import EVALUATIONS, get_evaluation
from disco.evals.knn import knn_votes
from disco.evals.semi import labelled_subset
from disco.models import Encoder, build_encoder

CPU = torch.device("cpu")


class PixelBackbone(nn.Module):
    """A parameter-free 'structured' extractor: the image average-pooled to 8x8 (192 features)."""

    num_features = 192

    def __init__(self, noise: bool = False):
        super().__init__()
        self.fc = nn.Identity()
        self.noise = noise

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise:  # features that ignore the image: any accuracy above chance would be a bug
            return torch.randn(
                len(x), 3, 8, 8, generator=torch.Generator().manual_seed(int(x.abs().sum() * 1000) % 2**31)
            )
        return F.adaptive_avg_pool2d(x, 8)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.flatten(1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small CPU ops on 2 shared cores run far faster single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist():
    return stratified_split(load_embedded("mnist5k", 32), 0.2)


@pytest.fixture(scope="module")
def small_splits(mnist):
    """1,000 train / 200 test MNIST images (class-balanced) at 32 px."""
    train, test = mnist
    return Splits(stratified_split(train, 0.25, seed=1)[1], stratified_split(test, 0.2, seed=1)[1], 10, 32)


def test_all_evaluations_are_registered():
    expected = (
        {"linear", "knn", "detection"}
        | {f"semi_{kind}_{p}pct" for kind in ("linear", "finetune") for p in (1, 10)}
        | {f"transfer_{t}" for t in ("cifar10", "cifar100", "digits")}
    )
    assert expected <= set(EVALUATIONS)
    assert all(callable(get_evaluation(name)) for name in EVALUATIONS)  # every entry names a function that exists


def test_an_unknown_evaluation_is_bad_input_naming_the_valid_ones():
    with pytest.raises(InputError, match="unknown evaluation 'knnn' \\(did you mean 'knn'\\?\\).*linear"):
        get_evaluation("knnn")


def test_coerce_recipe_takes_mappings_and_rejects_the_wrong_recipe():
    assert coerce_recipe(KnnRecipe, {"k": 5, "temperature": 0.5}) == KnnRecipe(k=5, temperature=0.5)
    assert coerce_recipe(SemiLinearRecipe, {"milestones": [1, 2]}).milestones == (1, 2)
    assert coerce_recipe(KnnRecipe, None) == KnnRecipe()
    with pytest.raises(ValueError, match="unknown KnnRecipe field.*kk"):
        coerce_recipe(KnnRecipe, {"kk": 3})
    with pytest.raises(ValueError, match="takes a KnnRecipe.*got ProbeRecipe"):
        coerce_recipe(KnnRecipe, ProbeRecipe())
    with pytest.raises(ValueError, match="k >= 1"):
        KnnRecipe(k=0)


# ---------------------------------------------------------------- kNN


def test_knn_votes_by_hand():
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[2.0, 0.0]])  # normalised to (1, 0): cosines 1, .8, 0, .6
    votes = knn_votes(train, labels, query, 2, k=3, temperature=0.5)
    assert votes[0].tolist() == pytest.approx([math.exp(1 / 0.5) + math.exp(0.8 / 0.5), math.exp(0.6 / 0.5)])
    # the weighting matters: one very close class-0 neighbour beats two farther class-1 ones only at low T
    train = torch.tensor([[1.0, 0.0], [0.7, 0.714], [0.7, -0.714]])
    labels = torch.tensor([0, 1, 1])
    assert knn_votes(train, labels, query, 2, k=3, temperature=0.07).argmax().item() == 0
    assert knn_votes(train, labels, query, 2, k=3, temperature=10.0).argmax().item() == 1
    with pytest.raises(ValueError, match="at least k"):
        knn_votes(train, labels, query, 2, k=4, temperature=0.1)


def test_knn_eval_structured_features_beat_image_blind_ones(small_splits):
    knn = get_evaluation("knn")
    pixels = knn(Encoder(PixelBackbone(), None), small_splits, {"k": 20}, CPU)
    noise = knn(Encoder(PixelBackbone(noise=True), None), small_splits, {"k": 20}, CPU)
    assert pixels["k"] == 20 and pixels["temperature"] == 0.07 and pixels["recipe"]["k"] == 20
    assert pixels["num_train"] == 1000 and pixels["num_test"] == 200
    assert pixels["top1"] > 80.0 and pixels["top5"] >= pixels["top1"]
    assert noise["top1"] < 30.0


def test_the_knn_monitor_forwards_in_the_stage_precision_and_votes_in_fp32(small_splits):
    """A bf16 stage's monitor: its feature forwards under autocast, the vote (scatter_add into fp32
    votes) outside it; the accuracy of a real conv encoder agrees with fp32 within a point."""
    from functools import partial

    from disco.evals.knn import knn_monitor
    from disco.speed import SpeedOptions

    torch.manual_seed(0)
    encoder = build_encoder("r18", "mocov2", image_size=32, init="torchvision").eval()
    fp32 = knn_monitor(small_splits, CPU, KnnRecipe(k=20))(encoder)
    bf16 = knn_monitor(small_splits, CPU, KnnRecipe(k=20), numerics=partial(SpeedOptions(bf16=True).autocast, CPU))
    assert abs(bf16(encoder) - fp32) <= 1.0 and fp32 > 50.0


# ---------------------------------------------------------------- semi-supervised


@pytest.mark.parametrize(("percent", "per_class"), [(1, 4), (10, 40)])
def test_semi_subsets_are_the_fraction_and_class_balanced(mnist, percent, per_class):
    subset, source = labelled_subset(mnist[0], percent, SubsetChoice())
    assert len(subset) == 10 * per_class and torch.bincount(subset.labels, minlength=10).tolist() == [per_class] * 10
    assert f"{percent}%" in source
    assert torch.equal(labelled_subset(mnist[0], percent, SubsetChoice())[0].labels, subset.labels)


class _FakeImageFolder(torch.utils.data.Dataset):
    def __init__(self, names):
        self.samples = [(f"/imagenet/train/{name.split('_')[0]}/{name}", 0) for name in names]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def test_semi_imagenet_subset_follows_the_simclr_list(tmp_path: Path):
    listed = [f"n{index % 1000:08d}_{index}.JPEG" for index in range(12811)]
    list_file = tmp_path / "1percent.txt"
    list_file.write_text("\n".join(listed) + "\n")
    train = _FakeImageFolder(listed + [f"n00000001_{index}.JPEG" for index in range(20000, 20050)])
    subset, source = labelled_subset(train, 1, SubsetChoice(subset_list=str(list_file)))
    assert len(subset) == 12811 and "SimCLR" in source and 12811 + 49 not in set(subset.indices)
    assert (
        len(labelled_subset(train, 1, SubsetChoice(subset_list=str(list_file), faithful_header_bug=True))[0]) == 12810
    )
    with pytest.raises(DataUnavailable, match="holds 12801 of the 12811"):
        labelled_subset(_FakeImageFolder(listed[10:]), 1, SubsetChoice(subset_list=str(list_file)))


def test_semi_linear_trains_on_the_fraction_only(small_splits):
    recipe = {"epochs": 20, "milestones": [15], "train_augment": False}
    metrics = get_evaluation("semi_linear_10pct")(Encoder(PixelBackbone(), None), small_splits, recipe, CPU)
    assert metrics["num_train"] == 100 and metrics["num_test"] == 200 and metrics["label_percent"] == 10
    assert metrics["recipe"]["milestones"] == (15,) and metrics["recipe"]["lr"] == 3.0
    assert 30.0 < metrics["top1"] <= metrics["top5"] <= 100.0


def test_semi_finetune_updates_a_copy_of_the_backbone(small_splits):
    encoder = build_encoder("r18", "mocov2", image_size=32)
    before = {name: value.clone() for name, value in encoder.state_dict().items()}
    recipe = {"epochs": 2, "milestones": [1], "batch_size": 64, "eval_every": 1}
    metrics = get_evaluation("semi_finetune_1pct")(encoder, small_splits, recipe, CPU)
    assert metrics["num_train"] == 10 and metrics["recipe"]["trunk_lr"] == 0.01 and metrics["recipe"]["head_lr"] == 0.2
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 100.0 and metrics["top1_best"] >= metrics["top1"]
    assert all(torch.equal(before[name], value) for name, value in encoder.state_dict().items())


def test_semi_finetune_learns_from_the_fraction(small_splits):
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model("resnet18", num_classes=0, zero_init_last=False)  # random, but image-dependent
    recipe = {"epochs": 15, "batch_size": 20, "trunk_lr": 0.01, "head_lr": 0.01, "milestones": [12], "eval_every": 15}
    metrics = get_evaluation("semi_finetune_10pct")(Encoder(backbone, None), small_splits, recipe, CPU)
    assert metrics["num_train"] == 100 and metrics["top1"] > 30.0  # chance is 10%


# ---------------------------------------------------------------- transfer


def test_transfer_digits_structured_features_beat_image_blind_ones(small_splits):
    transfer = get_evaluation("transfer_digits")
    recipe = {"epochs": 10, "train_augment": False}
    pixels = transfer(Encoder(PixelBackbone(), None), small_splits, recipe, CPU)
    noise = transfer(Encoder(PixelBackbone(noise=True), None), small_splits, recipe, CPU)
    assert (
        pixels["target"] == "digits" and pixels["recipe"]["schedule"] == "constant" and pixels["recipe"]["epochs"] == 10
    )
    assert pixels["num_train"] + pixels["num_test"] == 1797
    assert pixels["top1"] > 75.0 and noise["top1"] < 30.0


def test_transfer_cifar_needs_a_root(small_splits, tmp_path, monkeypatch):
    monkeypatch.delenv("DISCO_CIFAR", raising=False)
    with pytest.raises(InputError, match="needs `root`"):
        get_evaluation("transfer_cifar10")(Encoder(PixelBackbone(), None), small_splits, {}, CPU)
    with pytest.raises(DataUnavailable, match="cifar-100-python"):
        get_evaluation("transfer_cifar100")(Encoder(PixelBackbone(), None), small_splits, {"root": str(tmp_path)}, CPU)


def test_transfer_cifar_under_smoke_runs_on_the_synthetic_images(monkeypatch):
    from disco.data.sources import load_splits
    from disco.tasks.inputs import DataSource

    monkeypatch.delenv("DISCO_CIFAR", raising=False)
    splits = load_splits(DataSource(source="imagenet", image_size=32, smoke=True))
    assert splits.synthetic
    metrics = get_evaluation("transfer_cifar10")(
        Encoder(PixelBackbone(), None), splits, {"epochs": 2, "batch_size": 8, "train_augment": False}, CPU
    )
    assert (
        metrics["num_train"] == len(splits.train)
        and metrics["num_test"] == len(splits.test)
        and 0.0 <= metrics["top1_best"] <= 100.0
    )


def test_detection_voc_and_coco_are_detectron2_on_their_benchmark(small_splits, tmp_path, monkeypatch):
    from disco.detection import detectron2_backend

    seen = []
    monkeypatch.setattr(
        detectron2_backend,
        "run_detectron2",
        lambda config, *args, **kwargs: seen.append(config) or {"bbox": {"AP": 1.0, "AP50": 2.0, "AP75": 0.5}},
    )
    recipe = {"datasets_root": str(tmp_path), "output_dir": str(tmp_path / "out")}
    voc = get_evaluation("detection_voc")(build_encoder("r18", "mocov2"), small_splits, recipe, CPU)
    coco = get_evaluation("detection_coco")(build_encoder("r18", "mocov2"), small_splits, recipe, CPU)
    assert (voc["recipe"]["benchmark"], coco["recipe"]["benchmark"]) == ("voc", "coco") and voc["recipe"][
        "backend"
    ] == "detectron2"
    assert seen[0]["DATASETS"]["TEST"] == ("voc_2007_test",) and seen[1]["DATASETS"]["TEST"] == ("coco_2017_val",)
    # faithful by default: the official VOC run's input statistics (the moco yaml's lost MODEL block)
    assert (
        voc["recipe"]["faithful_yaml_bug"] is True
        and seen[0]["MODEL"]["PIXEL_STD"] == [1.0, 1.0, 1.0]
        and seen[0]["MODEL"]["RESNETS"]["STRIDE_IN_1X1"] is True
    )
    get_evaluation("detection_voc")(
        build_encoder("r18", "mocov2"), small_splits, {**recipe, "faithful_yaml_bug": False}, CPU
    )
    assert (
        seen[2]["MODEL"]["PIXEL_STD"] == [58.395, 57.12, 57.375]
        and seen[2]["MODEL"]["RESNETS"]["STRIDE_IN_1X1"] is False
    )
    with pytest.raises(InputError, match="detection_voc runs detectron2 on VOC"):
        get_evaluation("detection_voc")(build_encoder("r18", "mocov2"), small_splits, {"benchmark": "coco"}, CPU)


def test_semi_linear_drops_the_first_listed_image_by_default_as_the_official_builder(tmp_path):
    listed = [f"n{index % 1000:08d}_{index}.JPEG" for index in range(12811)]
    (tmp_path / "1percent.txt").write_text("\n".join(listed) + "\n")
    train = _FakeImageFolder(listed)
    faithful, _ = labelled_subset(train, 1, SemiLinearRecipe(subset_list=str(tmp_path / "1percent.txt")))
    assert len(faithful) == 12810 and 0 not in set(faithful.indices)  # DisCo's imagenet_1_fraction.py
    intended, _ = labelled_subset(
        train, 1, SemiLinearRecipe(subset_list=str(tmp_path / "1percent.txt"), faithful_header_bug=False)
    )
    assert len(intended) == 12811
    assert not SubsetChoice().faithful_header_bug  # SwAV's eval_semisup.py (the fine-tuning recipe) reads every line


# ---------------------------------------------------------------- detection


def test_detection_embedded_runs_end_to_end(small_splits):
    recipe = {"train_images": 16, "test_images": 8, "iterations": 4, "batch_size": 4, "warmup_iters": 2, "steps": [3]}
    metrics = get_evaluation("detection")(build_encoder("effb0", "disco", image_size=32), small_splits, recipe, CPU)
    assert {"AP", "AP50", "AP75"} <= set(metrics) and all(
        0.0 <= metrics[key] <= 100.0 for key in ("AP", "AP50", "AP75")
    )
    assert (
        metrics["num_train_images"] == 16
        and metrics["num_test_images"] == 8
        and metrics["recipe"]["backend"] == "torchvision"
    )
    assert math.isfinite(metrics["final_loss"]) and "frozen" in metrics["protocol"]


def test_detection_rejects_bad_recipes(small_splits):
    detection = get_evaluation("detection")
    with pytest.raises(InputError, match="backend must be one of"):
        detection(Encoder(PixelBackbone(), None), small_splits, {"backend": "mmdet"}, CPU)
    with pytest.raises(InputError, match="feature_stride must be 16"):
        detection(
            build_encoder("r18", "none"), small_splits, {"feature_stride": 8, "train_images": 2, "test_images": 2}, CPU
        )
    with pytest.raises(InputError, match="positive counts.*iterations=0"):
        detection(Encoder(PixelBackbone(), None), small_splits, {"iterations": 0}, CPU)
    with pytest.raises(InputError, match="needs a ResNet student"):
        detection(build_encoder("effb0", "none"), small_splits, {"backend": "detectron2"}, CPU)


def test_detection_detectron2_backend_converts_and_dispatches(small_splits, tmp_path, monkeypatch):
    from disco.detection import detectron2_backend

    calls = {}

    def fake_run(config, weights, output_dir, *, datasets_root=None, num_gpus=1, **_):
        calls.update(config=config, weights=Path(weights), datasets_root=datasets_root)
        return {"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 45.0}}

    monkeypatch.setattr(detectron2_backend, "run_detectron2", fake_run)
    recipe = {
        "backend": "detectron2",
        "benchmark": "voc",
        "datasets_root": str(tmp_path),
        "output_dir": str(tmp_path / "out"),
    }
    metrics = get_evaluation("detection")(build_encoder("r18", "mocov2"), small_splits, recipe, CPU)
    assert metrics["AP"] == 40.0 and metrics["depth"] == 18
    assert calls["config"]["MODEL"]["RESNETS"]["DEPTH"] == 18 and calls["datasets_root"] == str(tmp_path)
    converted = pickle.loads(calls["weights"].read_bytes())
    assert "stem.conv1.weight" in converted["model"] and "res2.0.conv1.weight" in converted["model"]


class ScaledPixels(PixelBackbone):
    """PixelBackbone's features times a constant: the same information at another scale, as a
    random-initialised network's features can be orders of magnitude off a trained one's."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.flatten(1) * self.scale


@pytest.mark.parametrize("evaluation", ["linear", "semi_linear_10pct", "transfer_digits"])
def test_standardised_probes_give_the_same_accuracy_at_any_feature_scale(small_splits, evaluation):
    """feature_norm standardize: features scaled by 1e-3 and by 1e3 give the probe accuracy of the
    unscaled ones within a point; the official probe (lr 3.0 on the raw features) does not."""
    probe = get_evaluation(evaluation)
    recipe = {"epochs": 10, "train_augment": False, "schedule": "step", "milestones": [5], "lr": 3.0}
    fair = {
        scale: probe(Encoder(ScaledPixels(scale), None), small_splits, {**recipe, "feature_norm": "standardize"}, CPU)
        for scale in (1e-3, 1.0, 1e3)
    }
    accuracies = [metrics["top1_best"] for metrics in fair.values()]
    assert max(accuracies) - min(accuracies) <= 1.0, fair
    assert min(accuracies) > 60.0
    raw = {
        scale: probe(Encoder(ScaledPixels(scale), None), small_splits, recipe, CPU)["top1_best"]
        for scale in (1e-3, 1e3)
    }
    assert max(abs(value - accuracies[1]) for value in raw.values()) > 5.0, raw


def test_a_probe_recipe_refuses_an_unknown_feature_norm():
    with pytest.raises(InputError, match="feature_norm must be one of none, standardize"):
        ProbeRecipe(feature_norm="batchnorm")
