"""Object-detection transfer (docs/protocol.md 4.4).

backend "detectron2" (paper): the student's weights converted as MoCo's convert-pretrain-to-detectron2.py
does, then Faster R-CNN R-C4 on VOC07+12 or Mask R-CNN R-C4 on COCO through
disco/detection/detectron2_backend.py (imported only then; CUDA image).

backend "torchvision" (tiny): torchvision's Faster R-CNN (single-level AnchorGenerator, MultiScaleRoIAlign)
on one feature map of the backbone: by default the stride-16 stage, detectron2's C4 cut (a 64-px canvas
gives a 4x4 map; `feature_stride: 32` takes forward_features' last map, 2x2). The backbone is frozen in
eval mode by default, which measures the representation and lets its maps be computed once;
`train_backbone: true` fine-tunes it with BN in train mode, as the paper does. Trained on digits pasted
on canvases (disco/data/detection_embedded.py), scored with COCO AP / AP50 / AP75 through pycocotools.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign

from disco.data.augment import IMAGENET_MEAN, IMAGENET_STD
from disco.data.detection_embedded import DetectionSet, paste_digits
from disco.data.embedded import ImageSet
from disco.data.sources import Splits
from disco.errors import InputError
from disco.eval_recipes import DetectionRecipe, coerce_recipe
from disco.models import Encoder

if TYPE_CHECKING:
    from disco.evaluate import ProgressFn

DETECTRON2_BENCHMARKS = ("voc", "coco")


def detection(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    config = coerce_recipe(DetectionRecipe, recipe)
    if config.backend == "detectron2":
        metrics = detectron2_detection(encoder, config)
    else:
        metrics = embedded_detection(encoder, splits, config, device, seed, progress)
    return {**metrics, "recipe": asdict(config)}


def benchmark_detection(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
    *,
    benchmark: str,
) -> dict[str, Any]:
    """detection_voc / detection_coco: the detectron2 back end on one benchmark (the paper's Tab. 3)."""
    config = coerce_recipe(
        DetectionRecipe,
        {"backend": "detectron2", "benchmark": benchmark}
        | (asdict(recipe) if isinstance(recipe, DetectionRecipe) else dict(recipe or {})),
    )
    if (config.backend, config.benchmark) != ("detectron2", benchmark):
        raise InputError(
            f"detection_{benchmark} runs detectron2 on {benchmark.upper()}; its recipe says backend {config.backend}, benchmark {config.benchmark} (use the `detection` evaluation for other set-ups)"
        )
    return detection(encoder, splits, config, device, seed, progress)


# ---------------------------------------------------------------- COCO-style mAP


def coco_map(
    truth_boxes: list[torch.Tensor],
    truth_labels: list[torch.Tensor],
    predictions: list[dict[str, torch.Tensor]],
    num_classes: int,
) -> dict[str, float]:
    """COCO AP (IoU .50:.95), AP50, AP75 in percent, via pycocotools; boxes (x0, y0, x1, y1), labels 0-based."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not len(truth_boxes) == len(truth_labels) == len(predictions):
        raise ValueError(
            f"need one prediction per image: {len(truth_boxes)} images, {len(truth_labels)} label lists, {len(predictions)} predictions"
        )
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, (boxes, labels, predicted) in enumerate(zip(truth_boxes, truth_labels, predictions), start=1):
        images.append({"id": image_id})
        for box, label in zip(boxes.tolist(), labels.tolist()):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": _xywh(box),
                    "area": (box[2] - box[0]) * (box[3] - box[1]),
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(
            predicted["boxes"].tolist(), predicted["scores"].tolist(), predicted["labels"].tolist()
        ):
            detections.append({"image_id": image_id, "category_id": label + 1, "bbox": _xywh(box), "score": score})
    if not annotations:
        raise ValueError("no ground-truth boxes: AP is undefined")
    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": index + 1} for index in range(num_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: max(0.0, 100.0 * float(evaluator.stats[index])) for index, name in enumerate(("AP", "AP50", "AP75"))}


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


# ---------------------------------------------------------------- torchvision back end


class FeatureMapBackbone(nn.Module):
    """One feature map of the backbone as a single-level detection backbone, plus a trainable 1x1 neck.

    stride 32: forward_features, the last map (what the pooled features come from);
    stride 16: the last stride-16 stage via timm's forward_intermediates: the C4 cut of detectron2's R-C4.
    """

    def __init__(self, backbone: nn.Module, trainable: bool, stride: int, neck_channels: int, input_size: int):
        super().__init__()
        self.body: Any = backbone  # a timm model: forward_features / forward_intermediates
        self.trainable = trainable
        self.level = None if stride == 32 else _stage_index(backbone, stride)
        for param in self.body.parameters():
            param.requires_grad = trainable
        try:
            with torch.no_grad():
                self.body.eval()
                probe = self.raw_map(torch.zeros(1, 3, input_size, input_size))
        except (AssertionError, RuntimeError) as error:  # e.g. a ViT built for another resolution
            raise InputError(
                f"{type(backbone).__name__} cannot take {input_size}-px detection inputs ({str(error).splitlines()[0]}); set the detection recipe's input_size to the resolution it was built for"
            ) from None
        if probe.ndim != 4:
            raise InputError(
                f"detection needs a convolutional feature map; {type(backbone).__name__} gives shape {tuple(probe.shape)}"
            )
        # An FPN-style lateral: the RPN's 3x3 conv has channels^2 * 9 weights, 15M on a 1280-channel map.
        self.neck = nn.Conv2d(probe.shape[1], neck_channels, kernel_size=1) if neck_channels else nn.Identity()
        self.out_channels = int(neck_channels or probe.shape[1])

    def raw_map(self, images: torch.Tensor) -> torch.Tensor:
        if self.level is None:
            return self.body.forward_features(images)
        return self.body.forward_intermediates(images, indices=[self.level], intermediates_only=True, stop_early=True)[
            0
        ]

    def train(self, mode: bool = True) -> FeatureMapBackbone:
        super().train(mode)
        self.body.train(mode and self.trainable)  # frozen: BN statistics stay those of pretraining
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            feature_map = self.raw_map(images)
        return self.neck(feature_map)


def _stage_index(backbone: nn.Module, stride: int) -> int:
    """Index (for forward_intermediates) of the last timm feature stage at `stride`."""
    if stride not in (16, 32):
        raise InputError(f"detection feature_stride must be 16 (C4 cut) or 32 (last map), got {stride}")
    info = getattr(backbone, "feature_info", None)
    if not info or not hasattr(backbone, "forward_intermediates"):
        raise InputError(f"{type(backbone).__name__} exposes no timm feature stages; use feature_stride 32")
    matches = [index for index, stage in enumerate(info) if stage["reduction"] == stride]
    if not matches:
        raise InputError(
            f"{type(backbone).__name__} has no stride-{stride} stage (strides: {sorted({stage['reduction'] for stage in info})})"
        )
    return matches[-1]


def build_detector(backbone: nn.Module, num_classes: int, config: DetectionRecipe) -> FasterRCNN:
    features = FeatureMapBackbone(
        backbone, config.train_backbone, config.feature_stride, config.neck_channels, config.input_size
    )
    anchors = AnchorGenerator(sizes=(tuple(config.anchor_sizes),), aspect_ratios=(tuple(config.aspect_ratios),))
    pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=config.roi_output_size, sampling_ratio=2)
    width = config.representation_size
    box_head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(features.out_channels * config.roi_output_size**2, width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
    )
    return FasterRCNN(
        features,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=pooler,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(width, num_classes + 1),
        min_size=config.input_size,
        max_size=config.input_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        rpn_pre_nms_top_n_train=200,
        rpn_post_nms_top_n_train=64,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_test=64,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
        box_score_thresh=config.score_threshold,
        box_detections_per_img=20,
    )


def _detection_sets(splits: Splits, config: DetectionRecipe) -> tuple[DetectionSet, DetectionSet]:
    if not (isinstance(splits.train, ImageSet) and isinstance(splits.test, ImageSet)):
        raise InputError(
            "the torchvision detection back end pastes embedded digits and needs an embedded data source; the paper profile uses `backend: detectron2`"
        )
    shape: dict[str, Any] = {
        "canvas": config.canvas,
        "digits_per_image": tuple(config.digits_per_image),
        "digit_height": tuple(config.digit_height),
    }
    # Train canvases draw digits from the train split and test canvases from the test split: no digit is in both.
    return paste_digits(splits.train, config.train_images, seed=config.data_seed, **shape), paste_digits(
        splits.test, config.test_images, seed=config.data_seed + 1, **shape
    )


def _inputs(data: DetectionSet, indices: list[int], size: int, device: torch.device) -> torch.Tensor:
    """Canvases as the backbone sees them: resized to `size`, ImageNet-normalised."""
    images = data.images[indices].to(device, torch.float32) / 255.0
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN, device=device), torch.tensor(IMAGENET_STD, device=device)
    return (images - mean[:, None, None]) / std[:, None, None]


@torch.no_grad()
def frozen_feature_maps(
    model: FasterRCNN, data: DetectionSet, size: int, device: torch.device, batch_size: int
) -> torch.Tensor:
    """Every canvas's backbone map, once: exact for a frozen eval-mode backbone and unaugmented canvases."""
    model.backbone.body.eval()
    return torch.cat(
        [
            model.backbone.raw_map(_inputs(data, list(range(start, min(start + batch_size, len(data)))), size, device))
            for start in range(0, len(data), batch_size)
        ]
    )


def run_heads(
    model: FasterRCNN, feature_map: torch.Tensor, size: int, targets: list[dict[str, torch.Tensor]] | None = None
) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """GeneralizedRCNN.forward after its transform and backbone: neck, RPN, RoI heads (losses in train mode)."""
    # The anchor generator reads only the batch's spatial size from `tensors`: an empty channel axis suffices.
    images = ImageList(feature_map.new_empty(len(feature_map), 0, size, size), [(size, size)] * len(feature_map))
    features = {"0": model.backbone.neck(feature_map)}
    proposals, rpn_losses = model.rpn(images, features, targets)
    detections, roi_losses = model.roi_heads(features, proposals, images.image_sizes, targets)
    return detections, {**rpn_losses, **roi_losses}


def _targets(
    data: DetectionSet, indices: list[int], scale: float, device: torch.device
) -> list[dict[str, torch.Tensor]]:
    # torchvision reserves class 0 for the background.
    return [
        {"boxes": data.boxes[index].to(device) * scale, "labels": data.labels[index].to(device) + 1}
        for index in indices
    ]


def detection_lr(config: DetectionRecipe, iteration: int) -> float:
    """detectron2's WarmupMultiStepLR: linear warm-up from lr/1000, then x gamma at each step."""
    warmup = 1.0 if iteration >= config.warmup_iters else 0.001 + 0.999 * iteration / config.warmup_iters
    return config.lr * warmup * config.gamma ** sum(1 for step in config.steps if iteration >= step)


def _feature_map(
    model: FasterRCNN,
    data: DetectionSet,
    cached: torch.Tensor | None,
    indices: list[int],
    size: int,
    device: torch.device,
) -> torch.Tensor:
    return cached[indices] if cached is not None else model.backbone.raw_map(_inputs(data, indices, size, device))


def train_detector(
    model: FasterRCNN,
    data: DetectionSet,
    config: DetectionRecipe,
    device: torch.device,
    seed: int,
    progress: ProgressFn | None = None,
) -> float:
    """SGD over `iterations` batches of shuffled canvases; returns the last iteration's total loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(
        [param for param in model.parameters() if param.requires_grad],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    cached = (
        None
        if config.train_backbone
        else frozen_feature_maps(model, data, config.input_size, device, config.batch_size)
    )
    model.train()
    order: list[int] = []
    loss = torch.zeros(())
    for iteration in range(config.iterations):
        if len(order) < config.batch_size:
            order += torch.randperm(len(data), generator=generator).tolist()
        indices, order = order[: config.batch_size], order[config.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = detection_lr(config, iteration)
        feature_map = _feature_map(model, data, cached, indices, config.input_size, device)
        _, losses = run_heads(
            model, feature_map, config.input_size, _targets(data, indices, config.input_size / config.canvas, device)
        )
        loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress and (iteration + 1) % 50 == 0:
            progress("iteration", iteration + 1, config.iterations)
    return float(loss.detach())


@torch.no_grad()
def predict(
    model: FasterRCNN, data: DetectionSet, config: DetectionRecipe, device: torch.device
) -> list[dict[str, torch.Tensor]]:
    """Detections per canvas, boxes back in canvas pixels, labels 0-based."""
    model.eval()
    outputs = []
    for start in range(0, len(data), config.batch_size):
        indices = list(range(start, min(start + config.batch_size, len(data))))
        detections, _ = run_heads(
            model, _feature_map(model, data, None, indices, config.input_size, device), config.input_size
        )
        scale = config.canvas / config.input_size
        outputs += [
            {
                "boxes": found["boxes"].cpu() * scale,
                "scores": found["scores"].cpu(),
                "labels": found["labels"].cpu() - 1,
            }
            for found in detections
        ]
    return outputs


def embedded_detection(
    encoder: Encoder,
    splits: Splits,
    config: DetectionRecipe,
    device: torch.device,
    seed: int,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    train_set, test_set = _detection_sets(splits, config)
    model = build_detector(copy.deepcopy(encoder.backbone).cpu(), splits.num_classes, config).to(device)
    started = time.perf_counter()
    final_loss = train_detector(model, train_set, config, device, seed, progress)
    train_seconds = time.perf_counter() - started
    metrics = coco_map(test_set.boxes, test_set.labels, predict(model, test_set, config, device), test_set.num_classes)
    return {
        **metrics,
        "final_loss": final_loss,
        "train_seconds": round(train_seconds, 1),
        "num_train_images": len(train_set),
        "num_test_images": len(test_set),
        "num_test_boxes": sum(len(boxes) for boxes in test_set.boxes),
        "protocol": f"torchvision Faster R-CNN on the stride-{config.feature_stride} map (one level, 1x1 neck to {config.neck_channels or 'no'} channels), "
        f"backbone {'fine-tuned, BN in train mode' if config.train_backbone else 'frozen, BN in eval mode'}; COCO AP via pycocotools on pasted digits",
    }


# ---------------------------------------------------------------- detectron2 back end


def resnet_depth(backbone: nn.Module) -> int:
    """18/34/50/101/152 from a timm ResNet's block counts and block type; InputError for anything else."""
    from timm.models.resnet import Bottleneck, ResNet

    if not isinstance(backbone, ResNet):
        raise InputError(
            f"detectron2 R-C4 detection needs a ResNet student (r18, r34, r50, ...); this backbone is {type(backbone).__name__}"
        )
    blocks = tuple(len(cast(nn.Sequential, getattr(backbone, f"layer{stage}"))) for stage in (1, 2, 3, 4))
    bottleneck = isinstance(cast(nn.Sequential, backbone.layer1)[0], Bottleneck)
    depths = {
        ((2, 2, 2, 2), False): 18,
        ((3, 4, 6, 3), False): 34,
        ((3, 4, 6, 3), True): 50,
        ((3, 4, 23, 3), True): 101,
        ((3, 8, 36, 3), True): 152,
    }
    if (blocks, bottleneck) not in depths or backbone.conv1.out_channels != 64:
        raise InputError(
            f"detectron2 R-C4 detection supports ResNet-18/34/50/101/152; this ResNet has blocks {blocks} ({'bottleneck' if bottleneck else 'basic'}), stem {backbone.conv1.out_channels}"
        )
    return depths[(blocks, bottleneck)]  # type: ignore[index]  # checked membership above


def detectron2_detection(encoder: Encoder, config: DetectionRecipe) -> dict[str, Any]:
    """MoCo's conversion + DisCo's R-C4 config, run by detectron2 (CUDA image); AP / AP50 / AP75 of the bbox task."""
    import pickle

    from disco.detection import detectron2_backend as d2

    if config.benchmark not in DETECTRON2_BENCHMARKS:
        raise InputError(
            f"detectron2 detection benchmark must be one of {', '.join(DETECTRON2_BENCHMARKS)}, got '{config.benchmark}'"
        )
    depth = resnet_depth(encoder.backbone)
    datasets_root = config.datasets_root or os.environ.get("DETECTRON2_DATASETS")
    if not datasets_root:
        raise InputError(
            "detectron2 detection needs `datasets_root` in the recipe or DETECTRON2_DATASETS: the folder holding VOC2007/VOC2012 or coco/"
        )
    output = config.output_dir or tempfile.mkdtemp(prefix=f"disco-detectron2-{config.benchmark}-")
    os.makedirs(output, exist_ok=True)
    weights = os.path.join(output, "student.pkl")
    with open(weights, "wb") as handle:
        pickle.dump(d2.detectron2_payload(encoder.backbone_state_dict()), handle)
    setup = (
        d2.voc_c4_config(depth, faithful_yaml_bug=config.faithful_yaml_bug)
        if config.benchmark == "voc"
        else d2.coco_c4_config(depth)
    )
    if config.max_iter is not None:  # smoke runs: a couple of iterations, decays at or after them
        solver = setup["SOLVER"]
        setup = d2.deep_merge(
            setup,
            {
                "SOLVER": {
                    "MAX_ITER": config.max_iter,
                    "STEPS": tuple(min(step, config.max_iter) for step in solver.get("STEPS", ())),
                    "WARMUP_ITERS": min(solver.get("WARMUP_ITERS", 0), config.max_iter),
                }
            },
        )
    results = d2.run_detectron2(setup, weights, output, datasets_root=datasets_root, num_gpus=config.num_gpus)
    if "bbox" not in results:
        raise InputError(
            f"detectron2 wrote no bbox results under {output} (got: {', '.join(results) or 'nothing'}); see its log there"
        )
    bbox = results["bbox"]
    return {
        "AP": float(bbox["AP"]),
        "AP50": float(bbox["AP50"]),
        "AP75": float(bbox["AP75"]),
        "depth": depth,
        "output_dir": output,
        "detectron2": results,
        "protocol": f"detectron2 R{depth}-C4 on {config.benchmark.upper()}, fine-tuned, SyncBN (DisCo/detection)",
    }
