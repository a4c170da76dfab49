"""The paper's detectron2 transfer setups (docs/protocol.md section 4.4), without importing detectron2
except in `run_detectron2`:

- configs: Faster R-CNN R-C4 on VOC07+12 (DisCo/detection/*.yaml) and Mask R-CNN R-C4 2x on COCO
  (MoCo's coco_R_50_C4_2x_moco.yaml, which DisCo's Reproduction.md uses but does not ship);
- weights: MoCo's convert-pretrain-to-detectron2.py, key for key;
- the R-18/34 analysis: which res5 ROI-head tensors a BasicBlock checkpoint actually initialises.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from disco.checkpoints import CheckpointSource, LoadReport, inspect_checkpoint, load_encoder
from disco.errors import BackendUnavailable, InputError

log = logging.getLogger(__name__)

Config = dict[str, Any]

TORCHVISION_PIXEL_MEAN = [123.675, 116.28, 103.53]
TORCHVISION_PIXEL_STD = [58.395, 57.12, 57.375]
# What detectron2 falls back to when the moco yaml's first MODEL block is lost (Caffe2 BGR convention).
DETECTRON2_DEFAULT_PIXEL_MEAN = [103.53, 116.28, 123.675]
DETECTRON2_DEFAULT_PIXEL_STD = [1.0, 1.0, 1.0]

# DisCo's VOC yaml prepends 400 to MoCo's (480, 512, ..., 800) in steps of 32.
VOC_MIN_SIZE_TRAIN = (400, *range(480, 801, 32))
COCO_MIN_SIZE_TRAIN = tuple(range(640, 801, 32))

# DisCo/detection/Base-RCNN-C4-BN.yaml (MoCo's, with IMS_PER_BATCH 32 and BASE_LR 0.01 instead of 16 / 0.02).
BASE_RCNN_C4_BN: Config = {
    "MODEL": {
        "META_ARCHITECTURE": "GeneralizedRCNN",
        "RPN": {"PRE_NMS_TOPK_TEST": 6000, "POST_NMS_TOPK_TEST": 1000},
        "ROI_HEADS": {"NAME": "Res5ROIHeadsExtraNorm"},
        "BACKBONE": {"FREEZE_AT": 0},
        "RESNETS": {"NORM": "SyncBN"},
    },
    "TEST": {"PRECISE_BN": {"ENABLED": True}},
    "SOLVER": {"IMS_PER_BATCH": 32, "BASE_LR": 0.01},
}
MOCO_BASE_SOLVER: Config = {"IMS_PER_BATCH": 16, "BASE_LR": 0.02}

# DisCo/detection/pascal_voc_R_50_C4_24k.yaml: 48k iterations despite the name, warm-up 200.
PASCAL_VOC_R_50_C4_24K: Config = {
    "MODEL": {
        "MASK_ON": False,
        "WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        "ROI_HEADS": {"NUM_CLASSES": 20},
    },
    "INPUT": {"MIN_SIZE_TRAIN": VOC_MIN_SIZE_TRAIN, "MIN_SIZE_TEST": 800},
    "DATASETS": {"TRAIN": ("voc_2007_trainval", "voc_2012_trainval"), "TEST": ("voc_2007_test",)},
    "SOLVER": {"STEPS": (18000, 22000), "MAX_ITER": 48000, "WARMUP_ITERS": 200, "BASE_LR": 0.01},
}

# facebookresearch/moco detection/configs/coco_R_50_C4_2x.yaml.
COCO_R_50_C4_2X: Config = {
    "MODEL": {"MASK_ON": True, "WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl"},
    "INPUT": {"MIN_SIZE_TRAIN": COCO_MIN_SIZE_TRAIN, "MIN_SIZE_TEST": 800},
    "DATASETS": {"TRAIN": ("coco_2017_train",), "TEST": ("coco_2017_val",)},
    "SOLVER": {"STEPS": (120000, 160000), "MAX_ITER": 180000},
}

_MOCO_INPUT_BLOCK: Config = {
    "PIXEL_MEAN": TORCHVISION_PIXEL_MEAN,
    "PIXEL_STD": TORCHVISION_PIXEL_STD,
    "WEIGHTS": "See Instructions",
    "RESNETS": {"STRIDE_IN_1X1": False},
}

# DisCo/detection/pascal_voc_R_50_C4_24k_moco.yaml, in file order. It has TWO top-level MODEL keys.
VOC_MOCO_YAML_ENTRIES: list[tuple[str, Any]] = [
    ("_BASE_", "pascal_voc_R_50_C4_24k.yaml"),
    ("MODEL", _MOCO_INPUT_BLOCK),
    ("INPUT", {"FORMAT": "RGB"}),
    ("OUTPUT_DIR", "../ckpt/"),
    ("MODEL", {"WEIGHTS": "./output.pkl"}),
]

OFFICIAL_VOC_MOCO_YAML = """\
_BASE_: "pascal_voc_R_50_C4_24k.yaml"
MODEL:
  PIXEL_MEAN: [123.675, 116.280, 103.530]
  PIXEL_STD: [58.395, 57.120, 57.375]
  WEIGHTS: "See Instructions"
  RESNETS:
    STRIDE_IN_1X1: False
INPUT:
  FORMAT: "RGB"
OUTPUT_DIR: "../ckpt/"
MODEL:
  WEIGHTS: "./output.pkl"
"""

RESNET_DEPTHS = {"r18": 18, "r34": 34, "r50": 50, "r101": 101, "r152": 152}
BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


# ---------------------------------------------------------------- configs


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Config:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_top_level(entries: list[tuple[str, Any]], faithful_yaml_bug: bool) -> Config:
    """A yaml mapping from its entries in file order.

    PyYAML keeps only the LAST of duplicated keys, so the official moco yaml loses its first MODEL
    block (PIXEL_MEAN/STD, STRIDE_IN_1X1) while keeping FORMAT RGB: RGB input with Caffe2 BGR
    statistics. faithful_yaml_bug=True reproduces that; False merges the duplicates, as intended.
    """
    resolved: Config = {}
    for key, value in entries:
        if not faithful_yaml_bug and isinstance(value, Mapping) and isinstance(resolved.get(key), Mapping):
            resolved[key] = deep_merge(resolved[key], value)
        else:
            resolved[key] = copy.deepcopy(value)
    return resolved


def _check_depth(depth: int) -> None:
    if depth not in BLOCKS_PER_STAGE:
        raise InputError(f"detectron2 ResNet depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")


def _depth_overrides(depth: int) -> Config:
    """Reproduction.md's command-line options; detectron2 requires RES2_OUT_CHANNELS 64 for R-18/34."""
    _check_depth(depth)
    resnets: Config = {"DEPTH": depth}
    if depth in (18, 34):
        resnets["RES2_OUT_CHANNELS"] = 64
    return {"MODEL": {"RESNETS": resnets}}


def _finish(
    chain: list[Config],
    moco_entries: list[tuple[str, Any]],
    depth: int,
    weights: str,
    output_dir: str,
    faithful_yaml_bug: bool,
) -> Config:
    config: Config = {}
    for layer in chain:
        config = deep_merge(config, layer)
    moco = resolve_top_level(moco_entries, faithful_yaml_bug)
    moco.pop("_BASE_", None)
    config = deep_merge(config, moco)
    if faithful_yaml_bug:  # spelled out: what detectron2's defaults give once the block is lost
        config = deep_merge(
            config,
            {
                "MODEL": {
                    "PIXEL_MEAN": DETECTRON2_DEFAULT_PIXEL_MEAN,
                    "PIXEL_STD": DETECTRON2_DEFAULT_PIXEL_STD,
                    "RESNETS": {"STRIDE_IN_1X1": True},
                }
            },
        )
    return deep_merge(
        config, deep_merge(_depth_overrides(depth), {"MODEL": {"WEIGHTS": weights}, "OUTPUT_DIR": output_dir})
    )


def voc_c4_config(
    depth: int = 34, *, weights: str = "./output.pkl", output_dir: str = "../ckpt/", faithful_yaml_bug: bool = True
) -> Config:
    """Faster R-CNN R-C4, VOC07+12 trainval -> VOC07 test, as DisCo/detection's three yamls resolve (Tab. 3: R-34).

    faithful_yaml_bug=True (default, what the official run used): the moco yaml's first MODEL block is
    lost, so detectron2's defaults apply (BGR Caffe mean, std 1, STRIDE_IN_1X1 True) on RGB input.
    False: the intended torchvision normalisation (the two MODEL blocks merged)."""
    return _finish(
        [BASE_RCNN_C4_BN, PASCAL_VOC_R_50_C4_24K], VOC_MOCO_YAML_ENTRIES, depth, weights, output_dir, faithful_yaml_bug
    )


def coco_c4_config(
    depth: int = 18, *, weights: str = "./output.pkl", output_dir: str = "./output", base: str = "disco"
) -> Config:
    """Mask R-CNN R-C4 2x on COCO 2017 (Tab. 3: R-18) with MoCo's coco_R_50_C4_2x_moco.yaml.

    The yaml is missing from the DisCo repo; placed next to DisCo's Base-RCNN-C4-BN.yaml it inherits
    IMS_PER_BATCH 32 / BASE_LR 0.01 (base="disco"); base="moco" gives upstream MoCo's 16 / 0.02.
    That moco yaml has a single MODEL block, so it has no duplicated-key bug.
    """
    if base not in ("disco", "moco"):
        raise InputError(f"coco base must be 'disco' or 'moco', got '{base}'")
    chain = (
        [BASE_RCNN_C4_BN, COCO_R_50_C4_2X]
        if base == "disco"
        else [BASE_RCNN_C4_BN, {"SOLVER": MOCO_BASE_SOLVER}, COCO_R_50_C4_2X]
    )
    entries = [("MODEL", _MOCO_INPUT_BLOCK), ("INPUT", {"FORMAT": "RGB"})]
    return _finish(chain, entries, depth, weights, output_dir, False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def config_yaml(config: Config) -> str:
    """yaml text that detectron2's get_cfg().merge_from_file accepts (tuples become lists; yacs coerces them back)."""
    header = "# generated by disco-bench from DisCo/detection's yamls, _BASE_ chain resolved\n"
    return header + yaml.safe_dump(_plain(config), sort_keys=False)


# ---------------------------------------------------------------- weights


def to_detectron2_key(key: str) -> str:
    """convert-pretrain-to-detectron2.py's renaming, string operation for string operation."""
    if "layer" not in key:
        key = "stem." + key
    for stage in (1, 2, 3, 4):
        key = key.replace(f"layer{stage}", f"res{stage + 1}")
    for index in (1, 2, 3):
        key = key.replace(f"bn{index}", f"conv{index}.norm")
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def convert_state_dict(encoder_q: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """`encoder_q` keys (module.encoder_q. stripped) -> detectron2 keys, tensors -> numpy."""
    converted = {to_detectron2_key(key): value.detach().cpu().numpy() for key, value in encoder_q.items()}
    if len(converted) != len(encoder_q):
        raise ValueError("two checkpoint keys map to the same detectron2 key")
    return converted


def detectron2_payload(encoder_q: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {"model": convert_state_dict(encoder_q), "__author__": "MOCO", "matching_heuristics": True}


@dataclass(frozen=True)
class ConvertedWeights:
    path: Path
    arch: str
    depth: int
    keys: int
    report: LoadReport


def convert_checkpoint(source: CheckpointSource, out_path: str | Path, arch: str | None = None) -> ConvertedWeights:
    """Any checkpoint disco.checkpoints loads (strictly) -> detectron2 pickle.

    As the official script, the projection head is kept (as stem.fc.*, which detectron2 ignores).
    """
    info = inspect_checkpoint(source)
    encoder, report = load_encoder(source, arch, with_head=info.has_head)
    if report.arch not in RESNET_DEPTHS:
        raise InputError(
            f"detectron2 C4 transfer needs a ResNet (one of {', '.join(RESNET_DEPTHS)}); this checkpoint is {report.arch}"
        )
    payload = detectron2_payload(encoder.backbone.state_dict())
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(payload, handle)
    return ConvertedWeights(path, report.arch, RESNET_DEPTHS[report.arch], len(payload["model"]), report)


# ---------------------------------------------------------------- what detectron2 builds, and what loads


def _conv(prefix: str, out_ch: int, in_ch: int, kernel: int) -> dict[str, tuple[int, ...]]:
    """detectron2 Conv2d(bias=False, norm=SyncBN): weight + norm.{weight,bias,running_*,num_batches_tracked}."""
    shapes: dict[str, tuple[int, ...]] = {f"{prefix}.weight": (out_ch, in_ch, kernel, kernel)}
    shapes.update({f"{prefix}.norm.{name}": (out_ch,) for name in ("weight", "bias", "running_mean", "running_var")})
    shapes[f"{prefix}.norm.num_batches_tracked"] = ()
    return shapes


def _basic_block(prefix: str, in_ch: int, out_ch: int) -> dict[str, tuple[int, ...]]:
    shapes = {**_conv(f"{prefix}.conv1", out_ch, in_ch, 3), **_conv(f"{prefix}.conv2", out_ch, out_ch, 3)}
    return {**shapes, **(_conv(f"{prefix}.shortcut", out_ch, in_ch, 1) if in_ch != out_ch else {})}


def _bottleneck_block(prefix: str, in_ch: int, bottleneck: int, out_ch: int) -> dict[str, tuple[int, ...]]:
    shapes = {
        **_conv(f"{prefix}.conv1", bottleneck, in_ch, 1),
        **_conv(f"{prefix}.conv2", bottleneck, bottleneck, 3),
        **_conv(f"{prefix}.conv3", out_ch, bottleneck, 1),
    }
    return {**shapes, **(_conv(f"{prefix}.shortcut", out_ch, in_ch, 1) if in_ch != out_ch else {})}


def detectron2_c4_trunk_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Model tensors detectron2 builds for MODEL.RESNETS.DEPTH=depth in the C4 design (defaults otherwise).

    backbone: stem + res2..res4 (BasicBlocks for 18/34); roi_heads.res5: always 3 BottleneckBlocks
    (Res5ROIHeads._build_res5_block: in = out/2, bottleneck 64*8, out = RES2_OUT_CHANNELS*8) plus
    the extra norm of Res5ROIHeadsExtraNorm.
    """
    _check_depth(depth)
    basic = depth in (18, 34)
    res2_out = 64 if basic else 256
    shapes = _conv("backbone.stem.conv1", 64, 3, 7)
    in_ch = 64
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[depth][:3], start=2):
        out_ch, bottleneck = res2_out * 2 ** (stage - 2), 64 * 2 ** (stage - 2)
        for index in range(blocks):
            prefix = f"backbone.res{stage}.{index}"
            shapes.update(
                _basic_block(prefix, in_ch, out_ch) if basic else _bottleneck_block(prefix, in_ch, bottleneck, out_ch)
            )
            in_ch = out_ch
    res5_out = res2_out * 8
    for index in range(3):
        shapes.update(
            _bottleneck_block(f"roi_heads.res5.{index}", res5_out // 2 if index == 0 else res5_out, 512, res5_out)
        )
    shapes.update(
        {f"roi_heads.res5.norm.{name}": (res5_out,) for name in ("weight", "bias", "running_mean", "running_var")}
    )
    shapes["roi_heads.res5.norm.num_batches_tracked"] = ()
    return shapes


@dataclass(frozen=True)
class TensorFate:
    model_key: str
    model_shape: tuple[int, ...]
    checkpoint_key: str | None
    checkpoint_shape: tuple[int, ...] | None
    status: str  # "loaded" | "skipped" (shape mismatch: stays random) | "random" (nothing in the checkpoint)
    note: str = ""


def _match_checkpoint_key(model_key: str, checkpoint_keys: list[str]) -> str | None:
    """detectron2's matching heuristics: the longest checkpoint key that is a dotted suffix of the model key."""
    candidates = [key for key in checkpoint_keys if model_key == key or model_key.endswith("." + key)]
    return max(candidates, key=len) if candidates else None


def trunk_fates(checkpoint: Mapping[str, np.ndarray], depth: int, checkpoint_block: str = "basic") -> list[TensorFate]:
    """For every backbone/res5 tensor detectron2 builds, whether the converted checkpoint initialises it."""
    keys = list(checkpoint)
    fates = []
    for model_key, model_shape in detectron2_c4_trunk_shapes(depth).items():
        source = _match_checkpoint_key(model_key, keys)
        if source is None:
            fates.append(TensorFate(model_key, model_shape, None, None, "random"))
            continue
        source_shape = tuple(np.shape(checkpoint[source]))
        status = "loaded" if source_shape == model_shape else "skipped"
        note = ""
        if (
            status == "loaded"
            and ".res5." in model_key
            and checkpoint_block == "basic"
            and ".shortcut" not in model_key
        ):
            note = "BasicBlock tensor in a BottleneckBlock slot: same shape, different role"
        fates.append(TensorFate(model_key, model_shape, source, source_shape, status, note))
    return fates


def res5_table(checkpoint: Mapping[str, np.ndarray], depth: int) -> list[TensorFate]:
    """The res5 ROI-head rows of trunk_fates, logged per module (section 4.4: R-18/34 map only partially)."""
    rows = [
        fate
        for fate in trunk_fates(checkpoint, depth, "basic" if depth in (18, 34) else "bottleneck")
        if fate.model_key.startswith("roi_heads.res5.")
    ]
    log.info("detectron2 R-%d res5 ROI head initialisation from the converted checkpoint:", depth)
    for line in format_fates(rows, per_module=True).splitlines():
        log.info(line)
    return rows


def _shape_text(value: tuple[int, ...] | None) -> str:
    return "-" if value is None else "[" + ",".join(map(str, value)) + "]"


def _per_module(rows: list[TensorFate]) -> list[TensorFate]:
    """One row per module (conv weight, or a norm's weight), status 'mixed' if its tensors disagree."""
    modules: dict[str, list[TensorFate]] = {}
    for row in rows:
        modules.setdefault(row.model_key.rsplit(".", 1)[0], []).append(row)
    merged = []
    for module, members in modules.items():
        statuses = {member.status for member in members}
        first = next((member for member in members if member.model_key.endswith(".weight")), members[0])
        merged.append(
            TensorFate(
                module,
                first.model_shape,
                first.checkpoint_key,
                first.checkpoint_shape,
                statuses.pop() if len(statuses) == 1 else "mixed",
                first.note,
            )
        )
    return merged


def format_fates(rows: list[TensorFate], per_module: bool = False) -> str:
    shown = _per_module(rows) if per_module else rows
    header = (
        f"{'model ' + ('module' if per_module else 'tensor'):50} {'model shape':16} {'checkpoint':16} {'status':8} note"
    )
    lines = [
        f"{row.model_key:50} {_shape_text(row.model_shape):16} {_shape_text(row.checkpoint_shape):16} {row.status:8} {row.note}".rstrip()
        for row in shown
    ]
    counts = {status: sum(row.status == status for row in rows) for status in ("loaded", "skipped", "random")}
    return "\n".join([header, *lines, "tensors: " + ", ".join(f"{count} {status}" for status, count in counts.items())])


def unused_checkpoint_keys(checkpoint: Mapping[str, np.ndarray], depth: int) -> list[str]:
    """Converted keys no detectron2 trunk tensor takes (e.g. the projection head as stem.fc.*)."""
    used = {fate.checkpoint_key for fate in trunk_fates(checkpoint, depth)}
    return [key for key in checkpoint if key not in used]


# ---------------------------------------------------------------- running detectron2 (CUDA image only)


def _import_detectron2() -> None:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        raise BackendUnavailable(
            "detectron2 is not installed in this environment: detection runs in the CUDA image built by `disco-bench build`"
        ) from None


def _check_datasets(config: Config, datasets_root: Path) -> None:
    from disco.data.real import coco_layout, voc_layout

    names = [*config.get("DATASETS", {}).get("TRAIN", ()), *config.get("DATASETS", {}).get("TEST", ())]
    if any(name.startswith("voc_") for name in names):
        voc_layout(datasets_root)
    if any(name.startswith("coco_") for name in names):
        coco_layout(datasets_root)


def _register_extra_norm_head() -> None:
    """train_net.py's Res5ROIHeadsExtraNorm: one more norm layer after res5 (MoCo paper)."""
    from detectron2.layers import get_norm
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

    if "Res5ROIHeadsExtraNorm" in ROI_HEADS_REGISTRY:
        return

    class Res5ROIHeadsExtraNorm(Res5ROIHeads):
        def __init__(self, cfg: Any, input_shape: Any) -> None:
            super().__init__(cfg, input_shape)
            self.res5.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, self.res5[-1].out_channels))

    ROI_HEADS_REGISTRY.register(Res5ROIHeadsExtraNorm)


def _detectron2_main(config_path: str, eval_only: bool, resume: bool) -> None:
    """One process of the run (detectron2's launch spawns one per GPU); rank 0 writes metrics.json."""
    import argparse

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultTrainer, default_setup
    from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator
    from detectron2.utils import comm

    _register_extra_norm_head()
    cfg = get_cfg()
    cfg.merge_from_file(config_path)
    cfg.freeze()
    default_setup(cfg, argparse.Namespace(config_file=config_path, eval_only=eval_only, resume=resume, opts=[]))

    class Trainer(DefaultTrainer):
        @classmethod
        def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None) -> Any:
            if "coco" in dataset_name:
                return COCOEvaluator(
                    dataset_name, output_dir=output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
                )
            return PascalVOCDetectionEvaluator(dataset_name)

    if eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=resume)
        results = trainer.train()
    if comm.is_main_process():
        Path(cfg.OUTPUT_DIR, "metrics.json").write_text(
            json.dumps(_plain(dict(results or {})), indent=2, default=float)
        )


def run_detectron2(
    config: Config,
    weights_pkl: str | Path,
    output_dir: str | Path,
    *,
    datasets_root: str | Path | None = None,
    num_gpus: int = 1,
    eval_only: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Train and evaluate (as MoCo's detection/train_net.py); returns detectron2's test results."""
    weights, output = Path(weights_pkl), Path(output_dir)
    if not weights.is_file():
        raise InputError(f"detectron2 weights not found: {weights} (make them with convert_checkpoint)")
    ims_per_batch = int(config.get("SOLVER", {}).get("IMS_PER_BATCH", 16))
    if num_gpus < 1 or ims_per_batch % num_gpus:
        raise InputError(f"SOLVER.IMS_PER_BATCH {ims_per_batch} must split evenly over {num_gpus} GPUs")
    if datasets_root is not None:
        root = Path(datasets_root).resolve()
        _check_datasets(config, root)
        if "detectron2.data" in sys.modules and os.environ.get("DETECTRON2_DATASETS") != str(root):
            raise InputError(
                "detectron2 was already imported with another DETECTRON2_DATASETS; run detection in a fresh process"
            )
        os.environ["DETECTRON2_DATASETS"] = str(root)  # read once, when detectron2.data registers its datasets
    _import_detectron2()
    from detectron2.engine import launch

    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "disco_config.yaml"  # detectron2 writes its full dump to config.yaml
    config_path.write_text(
        config_yaml(
            deep_merge(config, {"MODEL": {"WEIGHTS": str(weights.resolve())}, "OUTPUT_DIR": str(output.resolve())})
        )
    )
    launch(_detectron2_main, num_gpus, dist_url="auto", args=(str(config_path), eval_only, resume))
    metrics = output / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.exists() else {}
