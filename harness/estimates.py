"""`run --dry-run` cost estimates for stages never run here: a throughput model calibrated on measured
runs, per architecture and resolution. Torch-free (a dry run imports no model).

seconds per image of one eval-mode forward pass = overhead + per_gflop * GFLOPs(arch at 224 px) * (res/224)^2,
with (overhead, per_gflop) fitted per device kind on two measured architectures (EfficientNet-B0 and
ResNet-50). A training image costs TRAIN_FORWARDS forward passes (query forward and backward, key
forward; DisCo adds the student's second view and the teacher's two forwards); an evaluation reads
its images a few times. Rough by design (a factor of ~2): a stored wall time, where one exists,
is used instead.
"""

from __future__ import annotations

from typing import Any

from disco.methods.registry import stage_crops

# GFLOPs of one 224-px forward pass (the models' published figures; ViT/XCiT at 224 px)
GFLOPS = {
    "r18": 1.82,
    "r34": 3.67,
    "r50": 4.11,
    "r101": 7.83,
    "r152": 11.56,
    "r50w2": 12.4,
    "effb0": 0.39,
    "effb1": 0.70,
    "mbv3": 0.22,
    "vitt": 1.26,
    "vits": 4.61,
    "xcitt": 1.2,
    "xcits": 4.8,
}
# (overhead s, s per GFLOP) of one image's forward pass. cpu: this project's 2-core machine, fitted on
# EfficientNet-B0 (2,446 images/s) and ResNet-50 (796 images/s) at 32 px, eval mode, batch 256.
# cuda: one H200, fitted to the DisCo r50-effb0 step at 224 px, batch 256, fp32 (433 images/s; results/perf/h200).
CALIBRATION = {"cpu": (3.2e-4, 1.12e-2), "cuda": (2.0e-5, 1.35e-4)}
DATASET_IMAGES = {"mnist5k": 5000, "digits": 1797, "imagenet": 1_331_167}  # every split together
CALIBRATED_ON = {"cpu": "the 2-core reference CPU", "cuda": "one H200"}
TRAIN_FORWARDS = {"pretrain": 8.0, "distill": 16.0}  # student forward-equivalents per training image
TEACHER_FORWARDS = 2.0  # DisCo: the frozen teacher on both views
# bf16 autocast on CPU (no AMX), measured on the 2-core machine: a ResNet-50 step 1.8x faster (NHWC),
# an EfficientNet-B0 step 2x slower (depthwise convolutions); None: the device's fp32 figure
BF16_CPU_FACTOR = {"depthwise": 2.0, "dense": 1 / 1.8}
DEPTHWISE = {"effb0", "effb1", "mbv3"}
EVAL_PASSES = 1.0  # feature extraction over train and test; the probes on cached features cost little beside it


def forward_seconds(arch: str, resolution: int, device: str, precision: str = "fp32") -> float | None:
    if arch not in GFLOPS:
        return None
    cuda = device.startswith("cuda")
    overhead, per_gflop = CALIBRATION["cuda" if cuda else "cpu"]
    seconds = overhead + per_gflop * GFLOPS[arch] * (resolution / 224) ** 2
    if precision == "bf16" and not cuda:
        seconds *= BF16_CPU_FACTOR["depthwise" if arch in DEPTHWISE else "dense"]
    return seconds


def dataset_images(config: dict[str, Any], training: bool) -> float | None:
    data = config.get("data", {})
    if data.get("smoke"):
        return 48.0
    total = DATASET_IMAGES.get(data.get("dataset") or data.get("source", ""))
    if total is None:
        return None
    return (
        total * (1 - float(data.get("test_fraction", 0.2)))
        if training and data.get("source") == "embedded"
        else float(total)
    )


def view_pixels(config: dict[str, Any], resolution: int) -> float:
    """A step's pixels relative to two full-size views: 1, or a multi-crop method's crops (SwAV's
    2x32 + 4x16 px: 1.5; its step measured ~2x SimCLR's on the 2-core CPU, small crops cost more per pixel)."""
    crops = stage_crops(config)
    return sum((crop.size / resolution) ** 2 for crop in crops) / 2 if crops else 1.0


def estimate_seconds(kind: str, config: dict[str, Any], device: str, encoder_arch: str | None = None) -> float | None:
    """Seconds a stage of `kind` with `config` takes on `device`, or None when the model has no answer."""
    resolution = int(config.get("data", {}).get("image_size", 224))
    images = dataset_images(config, training=kind in TRAIN_FORWARDS)
    if kind == "init":
        return 2.0
    if kind == "import":
        return 30.0
    if images is None:
        return None
    if kind in TRAIN_FORWARDS:
        precision = str(config.get("precision", "fp32"))
        student = forward_seconds(config.get("arch", ""), resolution, device, precision)
        if student is None:
            return None
        views = view_pixels(config, resolution)
        per_image = TRAIN_FORWARDS[kind] * student * views
        if kind == "distill":
            teacher_precision = str(config.get("teacher_precision", precision))
            teacher = forward_seconds(config.get("teacher_arch", ""), resolution, device, teacher_precision)
            per_image += TEACHER_FORWARDS * (teacher or 0.0) * views
        epochs = config.get("recipe", {}).get("epochs", 1)
        return epochs * images * per_image
    if kind == "eval" and encoder_arch:
        forward = forward_seconds(encoder_arch, resolution, device)
        return None if forward is None else EVAL_PASSES * images * forward + 0.5
    return None
