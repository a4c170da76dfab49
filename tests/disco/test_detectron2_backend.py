"""detectron2 configs, weight conversion and the R-18/34 res5 analysis (docs/protocol.md section 4.4).
Only the last test needs detectron2 itself (installed in the CUDA image)."""

from __future__ import annotations

import importlib.util
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
import yaml
from torch import nn

from disco.data.real import DatasetError
from disco.detection.detectron2_backend import (
    OFFICIAL_VOC_MOCO_YAML,
    VOC_MOCO_YAML_ENTRIES,
    coco_c4_config,
    config_yaml,
    convert_checkpoint,
    convert_state_dict,
    detectron2_c4_trunk_shapes,
    res5_table,
    resolve_top_level,
    run_detectron2,
    to_detectron2_key,
    trunk_fates,
    unused_checkpoint_keys,
    voc_c4_config,
)
from disco.errors import BackendUnavailable, CheckpointError, InputError

DISCO_VOC_MIN_SIZE_TRAIN = (400, 480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)


def official_conversion(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """moco/detection/convert-pretrain-to-detectron2.py, its loop body verbatim."""
    newmodel = {}
    for k, v in state_dict.items():
        if not k.startswith("module.encoder_q."):
            continue
        k = k.replace("module.encoder_q.", "")
        if "layer" not in k:
            k = "stem." + k
        for t in [1, 2, 3, 4]:
            k = k.replace(f"layer{t}", f"res{t + 1}")
        for t in [1, 2, 3]:
            k = k.replace(f"bn{t}", f"conv{t}.norm")
        k = k.replace("downsample.0", "shortcut")
        k = k.replace("downsample.1", "shortcut.norm")
        newmodel[k] = v.numpy()
    return newmodel


def disco_r18_checkpoint(arch: str = "resnet18") -> dict:
    student = torchvision.models.__dict__[arch]()
    student.fc = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 128))
    state = {f"module.encoder_q.{key}": value for key, value in student.state_dict().items()}
    state.update({f"module.encoder_k.{key}": value.clone() for key, value in student.state_dict().items()})
    state.update({"module.queue": torch.randn(128, 256), "module.queue_ptr": torch.zeros(1, dtype=torch.long)})
    return {"epoch": 200, "arch": arch, "state_dict": state}


# ------------------------------------------------------------------ configs


def test_voc_config_has_the_official_values() -> None:
    config = voc_c4_config(34, weights="out/r34.pkl", output_dir="runs/voc")
    model, solver = config["MODEL"], config["SOLVER"]
    assert model["META_ARCHITECTURE"] == "GeneralizedRCNN" and model["ROI_HEADS"] == {
        "NAME": "Res5ROIHeadsExtraNorm",
        "NUM_CLASSES": 20,
    }
    assert model["BACKBONE"]["FREEZE_AT"] == 0 and model["RESNETS"]["NORM"] == "SyncBN" and model["MASK_ON"] is False
    assert model["RESNETS"]["DEPTH"] == 34 and model["RESNETS"]["RES2_OUT_CHANNELS"] == 64
    assert model["RPN"] == {"PRE_NMS_TOPK_TEST": 6000, "POST_NMS_TOPK_TEST": 1000}
    assert config["TEST"]["PRECISE_BN"]["ENABLED"] is True
    assert (
        solver["IMS_PER_BATCH"],
        solver["BASE_LR"],
        solver["STEPS"],
        solver["MAX_ITER"],
        solver["WARMUP_ITERS"],
    ) == (32, 0.01, (18000, 22000), 48000, 200)
    assert config["INPUT"]["MIN_SIZE_TRAIN"] == DISCO_VOC_MIN_SIZE_TRAIN and config["INPUT"]["MIN_SIZE_TEST"] == 800
    assert config["DATASETS"] == {"TRAIN": ("voc_2007_trainval", "voc_2012_trainval"), "TEST": ("voc_2007_test",)}
    assert model["WEIGHTS"] == "out/r34.pkl" and config["OUTPUT_DIR"] == "runs/voc"


def test_embedded_official_yaml_entries_match_the_file_text() -> None:
    """The entries the configs are built from are the official file's, duplicated MODEL key included."""
    document = yaml.compose(OFFICIAL_VOC_MOCO_YAML)  # the node graph still holds both MODEL keys
    entries = [(key.value, yaml.safe_load(yaml.serialize(value))) for key, value in document.value]
    assert entries == VOC_MOCO_YAML_ENTRIES
    assert [key for key, _ in entries] == ["_BASE_", "MODEL", "INPUT", "OUTPUT_DIR", "MODEL"]
    assert yaml.safe_load(OFFICIAL_VOC_MOCO_YAML) == resolve_top_level(VOC_MOCO_YAML_ENTRIES, faithful_yaml_bug=True)


def test_pyyaml_drops_the_first_model_block_and_the_fix_merges_it() -> None:
    loaded = yaml.safe_load(OFFICIAL_VOC_MOCO_YAML)
    assert loaded["MODEL"] == {"WEIGHTS": "./output.pkl"} and loaded["INPUT"] == {"FORMAT": "RGB"}
    fixed = resolve_top_level(VOC_MOCO_YAML_ENTRIES, faithful_yaml_bug=False)
    assert fixed["MODEL"] == {
        "PIXEL_MEAN": [123.675, 116.28, 103.53],
        "PIXEL_STD": [58.395, 57.12, 57.375],
        "WEIGHTS": "./output.pkl",
        "RESNETS": {"STRIDE_IN_1X1": False},
    }


def test_fixed_and_faithful_configs_differ_only_in_input_normalisation() -> None:
    fixed = yaml.safe_load(config_yaml(voc_c4_config(34, faithful_yaml_bug=False)))
    faithful = yaml.safe_load(config_yaml(voc_c4_config(34)))  # faithful by default
    assert (fixed["MODEL"]["PIXEL_MEAN"], fixed["MODEL"]["PIXEL_STD"], fixed["MODEL"]["RESNETS"]["STRIDE_IN_1X1"]) == (
        [123.675, 116.28, 103.53],
        [58.395, 57.12, 57.375],
        False,
    )
    # RGB input normalised with Caffe2's BGR mean and unit std: what the official run trained with
    assert (
        faithful["MODEL"]["PIXEL_MEAN"],
        faithful["MODEL"]["PIXEL_STD"],
        faithful["MODEL"]["RESNETS"]["STRIDE_IN_1X1"],
    ) == ([103.53, 116.28, 123.675], [1.0, 1.0, 1.0], True)
    assert fixed["INPUT"]["FORMAT"] == faithful["INPUT"]["FORMAT"] == "RGB"
    for config in (fixed, faithful):
        for model in (config["MODEL"],):
            for key in ("PIXEL_MEAN", "PIXEL_STD"):
                model.pop(key)
            model["RESNETS"].pop("STRIDE_IN_1X1")
    assert fixed == faithful


def test_config_yaml_is_plain_yaml_with_lists() -> None:
    text = config_yaml(coco_c4_config(18))
    assert "!!python" not in text and text.startswith("# generated")
    loaded = yaml.safe_load(text)
    assert loaded["INPUT"]["MIN_SIZE_TRAIN"] == [640, 672, 704, 736, 768, 800]


def test_coco_config_is_mocos_mask_rcnn_c4_2x() -> None:
    config = coco_c4_config(18, weights="r18.pkl")
    model, solver = config["MODEL"], config["SOLVER"]
    assert model["MASK_ON"] is True and model["ROI_HEADS"]["NAME"] == "Res5ROIHeadsExtraNorm"
    assert config["INPUT"] == {"MIN_SIZE_TRAIN": (640, 672, 704, 736, 768, 800), "MIN_SIZE_TEST": 800, "FORMAT": "RGB"}
    assert (solver["STEPS"], solver["MAX_ITER"], solver["IMS_PER_BATCH"], solver["BASE_LR"]) == (
        (120000, 160000),
        180000,
        32,
        0.01,
    )
    assert config["DATASETS"] == {"TRAIN": ("coco_2017_train",), "TEST": ("coco_2017_val",)}
    assert model["RESNETS"] == {"NORM": "SyncBN", "STRIDE_IN_1X1": False, "DEPTH": 18, "RES2_OUT_CHANNELS": 64}
    assert model["PIXEL_MEAN"] == [123.675, 116.28, 103.53] and model["WEIGHTS"] == "r18.pkl"
    upstream = coco_c4_config(18, base="moco")["SOLVER"]
    assert (upstream["IMS_PER_BATCH"], upstream["BASE_LR"]) == (16, 0.02)


def test_depth_options() -> None:
    assert "RES2_OUT_CHANNELS" not in voc_c4_config(50)["MODEL"]["RESNETS"]
    with pytest.raises(InputError, match="depth must be one of"):
        voc_c4_config(26)
    with pytest.raises(InputError, match="'disco' or 'moco'"):
        coco_c4_config(18, base="mmdet")


# ------------------------------------------------------------------ weight conversion


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("conv1.weight", "stem.conv1.weight"),
        ("bn1.running_mean", "stem.conv1.norm.running_mean"),
        ("layer1.0.downsample.0.weight", "res2.0.shortcut.weight"),
        ("layer1.0.downsample.1.bias", "res2.0.shortcut.norm.bias"),
        ("layer3.5.bn2.num_batches_tracked", "res4.5.conv2.norm.num_batches_tracked"),
        ("layer4.2.bn3.weight", "res5.2.conv3.norm.weight"),
        ("fc.0.weight", "stem.fc.0.weight"),
    ],
)
def test_key_mapping(key: str, expected: str) -> None:
    assert to_detectron2_key(key) == expected


def test_resnet50_converts_losslessly_and_fills_the_whole_c4_trunk() -> None:
    state = timm.create_model("resnet50", num_classes=0).state_dict()
    converted = convert_state_dict(state)
    assert len(converted) == len(state) == 318
    assert (
        converted.keys()
        == official_conversion({f"module.encoder_q.{key}": value for key, value in state.items()}).keys()
    )
    for key, value in state.items():
        assert np.array_equal(converted[to_detectron2_key(key)], value.numpy()), key
    fates = trunk_fates(converted, 50, "bottleneck")
    assert {fate.model_key for fate in fates if fate.status != "loaded"} == {
        f"roi_heads.res5.norm.{name}"
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    assert unused_checkpoint_keys(converted, 50) == []


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_basicblock_backbone_stages_load_fully(arch: str) -> None:
    converted = convert_state_dict(torchvision.models.__dict__[arch]().state_dict())
    depth = int(arch[-2:])
    backbone = [fate for fate in trunk_fates(converted, depth) if fate.model_key.startswith("backbone.")]
    assert backbone and all(fate.status == "loaded" for fate in backbone)
    assert len(backbone) == len([key for key in converted if not key.startswith(("res5.", "stem.fc"))])
    assert unused_checkpoint_keys(converted, depth) == ["stem.fc.weight", "stem.fc.bias"]


def test_convert_checkpoint_writes_the_official_pickle(tmp_path: Path) -> None:
    ckpt = disco_r18_checkpoint()
    source = tmp_path / "DisCo-R50-R18.pth.tar"
    torch.save(ckpt, source)

    result = convert_checkpoint(source, tmp_path / "out" / "r18.pkl")

    with result.path.open("rb") as handle:
        payload = pickle.load(handle)
    assert payload["__author__"] == "MOCO" and payload["matching_heuristics"] is True
    expected = official_conversion(ckpt["state_dict"])
    assert payload["model"].keys() == expected.keys() and "stem.fc.0.weight" in expected
    assert all(
        np.array_equal(payload["model"][key], value) and payload["model"][key].dtype == value.dtype
        for key, value in expected.items()
    )
    assert (result.arch, result.depth, result.keys) == ("r18", 18, 124)


def test_convert_rejects_non_resnets_and_mismatched_checkpoints(tmp_path: Path) -> None:
    effnet = timm.create_model("efficientnet_b0", num_classes=0)
    ckpt = {
        "arch": "efficientb0",
        "state_dict": {f"module.encoder_q.{key}": value for key, value in effnet.state_dict().items()},
    }
    with pytest.raises(InputError, match="needs a ResNet"):
        convert_checkpoint(ckpt, tmp_path / "effb0.pkl")
    with pytest.raises(CheckpointError, match="trained as 'resnet18'"):
        convert_checkpoint(disco_r18_checkpoint(), tmp_path / "r34.pkl", arch="r34")
    assert not (tmp_path / "effb0.pkl").exists() and not (tmp_path / "r34.pkl").exists()


# ------------------------------------------------------------------ the R-18/34 res5 table

R18_RES5_BY_MODULE = {
    **{
        f"roi_heads.res5.{block}.{part}": status
        for block in (0, 1)
        for part, status in {
            "conv1": "skipped",
            "conv1.norm": "loaded",
            "conv2": "loaded",
            "conv2.norm": "loaded",
            "conv3": "random",
            "conv3.norm": "random",
        }.items()
    },
    "roi_heads.res5.0.shortcut": "loaded",
    "roi_heads.res5.0.shortcut.norm": "loaded",
    **{
        f"roi_heads.res5.2.{part}": "random"
        for part in ("conv1", "conv1.norm", "conv2", "conv2.norm", "conv3", "conv3.norm")
    },
    "roi_heads.res5.norm": "random",
}


def by_module(rows: list) -> dict[str, set[str]]:
    modules: dict[str, set[str]] = {}
    for row in rows:
        modules.setdefault(row.model_key.rsplit(".", 1)[0], set()).add(row.status)
    return modules


def test_r18_res5_table_matches_the_shape_analysis(caplog: pytest.LogCaptureFixture) -> None:
    converted = convert_state_dict(torchvision.models.resnet18().state_dict())
    with caplog.at_level(logging.INFO, logger="disco.detection.detectron2_backend"):
        rows = res5_table(converted, 18)
    assert {module: statuses for module, statuses in by_module(rows).items()} == {
        module: {status} for module, status in R18_RES5_BY_MODULE.items()
    }
    conv1 = next(row for row in rows if row.model_key == "roi_heads.res5.0.conv1.weight")
    assert (conv1.model_shape, conv1.checkpoint_shape) == ((512, 256, 1, 1), (512, 256, 3, 3))
    assert (
        "roi_heads.res5.0.conv1" in caplog.text
        and "skipped" in caplog.text
        and "tensors: 28 loaded, 2 skipped, 35 random" in caplog.text
    )


def test_r34_res5_has_a_third_partially_loaded_block() -> None:
    rows = res5_table(convert_state_dict(torchvision.models.resnet34().state_dict()), 34)
    modules = by_module(rows)
    assert (
        modules["roi_heads.res5.2.conv1"] == {"skipped"}
        and modules["roi_heads.res5.2.conv2"] == {"loaded"}
        and modules["roi_heads.res5.2.conv3"] == {"random"}
    )


def test_c4_shapes_follow_detectron2s_channel_rules() -> None:
    shapes = detectron2_c4_trunk_shapes(18)
    assert (
        shapes["backbone.res3.0.shortcut.weight"] == (128, 64, 1, 1) and "backbone.res2.0.shortcut.weight" not in shapes
    )
    assert (
        shapes["roi_heads.res5.1.conv1.weight"] == (512, 512, 1, 1) and "roi_heads.res5.1.shortcut.weight" not in shapes
    )
    assert not any(key.startswith("backbone.res5") for key in shapes)
    r50 = detectron2_c4_trunk_shapes(50)
    assert r50["roi_heads.res5.0.conv1.weight"] == (512, 1024, 1, 1) and r50["roi_heads.res5.2.conv3.weight"] == (
        2048,
        512,
        1,
        1,
    )


# ------------------------------------------------------------------ running


def test_run_checks_weights_gpus_and_datasets_before_detectron2(tmp_path: Path) -> None:
    config = voc_c4_config(34)
    with pytest.raises(InputError, match="weights not found"):
        run_detectron2(config, tmp_path / "absent.pkl", tmp_path / "out")
    weights = tmp_path / "r34.pkl"
    weights.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(InputError, match="IMS_PER_BATCH 32 must split evenly over 3 GPUs"):
        run_detectron2(config, weights, tmp_path / "out", num_gpus=3)
    with pytest.raises(DatasetError, match="VOC2007/Annotations is missing"):
        run_detectron2(config, weights, tmp_path / "out", datasets_root=tmp_path / "datasets")


@pytest.mark.skipif(
    importlib.util.find_spec("detectron2") is not None,
    reason="detectron2 is installed: the missing-library message cannot show",
)
def test_run_without_detectron2_points_to_the_cuda_image(tmp_path: Path) -> None:
    weights = tmp_path / "r34.pkl"
    weights.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(BackendUnavailable, match="CUDA image built by `disco-bench build`"):
        run_detectron2(voc_c4_config(34), weights, tmp_path / "out")


def test_detectron2_builds_what_the_analysis_predicts(tmp_path: Path) -> None:
    pytest.importorskip("detectron2", reason="detectron2 is only installed in the CUDA image (`disco-bench build`)")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from disco.detection.detectron2_backend import _register_extra_norm_head

    _register_extra_norm_head()
    cfg = get_cfg()
    config_file = tmp_path / "voc_r18.yaml"
    config_file.write_text(config_yaml(voc_c4_config(18)))
    cfg.merge_from_file(str(config_file))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    expected = detectron2_c4_trunk_shapes(18)
    built = {key: tuple(value.shape) for key, value in model.state_dict().items() if key in expected}
    assert built == expected
    converted = convert_state_dict(torchvision.models.resnet18().state_dict())
    weights = tmp_path / "r18.pkl"
    weights.write_bytes(pickle.dumps({"model": converted, "__author__": "MOCO", "matching_heuristics": True}))
    DetectionCheckpointer(model).load(str(weights))
    loaded = model.state_dict()
    for row in res5_table(converted, 18):
        if row.status == "loaded" and not row.model_key.endswith("num_batches_tracked"):
            assert np.array_equal(loaded[row.model_key].cpu().numpy(), converted[row.checkpoint_key]), row.model_key
