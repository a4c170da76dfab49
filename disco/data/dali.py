"""Optional NVIDIA DALI loader for the self-supervised stages on ImageNet (`data.loader: dali`): JPEGs
decoded on the GPU ("mixed" decoder) and MoCo-v2 aug-plus run there, two views per image, so the
training step is not starved by CPU-side PIL augmentation (disco-bench perf measured the official
per-image pipeline at 234 images/s with 8 workers on an H200 host, below the optimized step).

Opt-in and a documented deviation: the same transforms and parameter ranges, drawn per image, but
DALI's operators: the colour steps run in one fixed order (color_twist) instead of a random order per
image, hue is DALI's linear-RGB approximation, and the blur is DALI's Gaussian (sigma ~ U[0.1, 2.0]
at 224 px, a window covering 3 sigma). Without a GPU (`device_id=None`) the same pipeline runs on
DALI's CPU operators, which is how it is tested here. Install: `pip install nvidia-dali-cuda120`
(the CUDA image does so with `--build-arg WITH_DALI=1`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from disco.data.augment import IMAGENET_MEAN, IMAGENET_STD
from disco.errors import BackendUnavailable

JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue (fraction of a turn)


class DaliUnavailable(BackendUnavailable):
    """data.loader: dali without DALI installed: one line saying how to get it or turn it off."""


def _dali() -> tuple[Any, Any, Any, Any, Any]:  # DALI's fn, pipeline_def, types, iterator, policy: untyped
    try:
        from nvidia import dali  # noqa: F401
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    except ImportError as exc:
        raise DaliUnavailable(
            f"data.loader: dali needs NVIDIA DALI ({exc}); pip install nvidia-dali-cuda120, or build the image with --build-arg WITH_DALI=1, or set data.loader: torch"
        ) from None
    return fn, pipeline_def, types, DALIGenericIterator, LastBatchPolicy


def _aug_plus(fn: Any, types: Any, images: Any, image_size: int) -> Any:  # DALI DataNodes (untyped)
    """One MoCo-v2 view of every image in the batch, parameters drawn per image."""
    scale = image_size / 224.0
    views = fn.random_resized_crop(
        images,
        size=[image_size, image_size],
        random_area=[0.2, 1.0],
        random_aspect_ratio=[3 / 4, 4 / 3],
        num_attempts=10,
    )
    b, c, s, h = JITTER
    jitter = fn.random.coin_flip(probability=0.8, dtype=types.BOOL)
    twisted = fn.color_twist(
        views,
        brightness=fn.random.uniform(range=[1 - b, 1 + b]),
        contrast=fn.random.uniform(range=[1 - c, 1 + c]),
        saturation=fn.random.uniform(range=[1 - s, 1 + s]),
        hue=fn.random.uniform(range=[-h * 360, h * 360]),
    )
    views = _select(fn, types, jitter, twisted, views)
    grey = fn.color_twist(views, saturation=0.0)
    views = _select(fn, types, fn.random.coin_flip(probability=0.2, dtype=types.BOOL), grey, views)
    sigma = fn.random.uniform(range=[0.1 * scale, 2.0 * scale])
    blurred = fn.gaussian_blur(views, sigma=sigma, window_size=2 * int(3 * 2.0 * scale + 0.5) + 1)
    views = _select(fn, types, fn.random.coin_flip(probability=0.5, dtype=types.BOOL), blurred, views)
    return fn.crop_mirror_normalize(
        views,
        dtype=types.FLOAT,
        output_layout="CHW",
        mirror=fn.random.coin_flip(probability=0.5),
        mean=[255 * m for m in IMAGENET_MEAN],
        std=[255 * s for s in IMAGENET_STD],
    )


def _select(fn: Any, types: Any, condition: Any, if_true: Any, if_false: Any) -> Any:
    """Per-sample choice between two images (DALI's arithmetic; no conditional-execution graph)."""
    keep = fn.cast(condition, dtype=types.UINT8)
    return fn.cast(if_true * keep + if_false * (1 - keep), dtype=types.UINT8)


def build_pipeline(
    files: Sequence[str],
    labels: Sequence[int],
    image_size: int,
    batch_size: int,
    seed: int,
    shard: int = 0,
    num_shards: int = 1,
    device_id: int | None = None,
    threads: int = 4,
) -> Any:  # a built nvidia.dali Pipeline
    fn, pipeline_def, types, _, _ = _dali()
    on_gpu = device_id is not None

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=seed)
    def two_views() -> tuple[Any, Any, Any]:
        jpegs, targets = fn.readers.file(
            files=list(files),
            labels=list(labels),
            random_shuffle=True,
            shard_id=shard,
            num_shards=num_shards,
            name="reader",
        )
        images = fn.decoders.image(jpegs, device="mixed" if on_gpu else "cpu", output_type=types.RGB)
        return _aug_plus(fn, types, images, image_size), _aug_plus(fn, types, images, image_size), targets

    pipeline = two_views()
    pipeline.build()
    return pipeline


class DaliTwoViews:
    """One epoch of ((view1, view2), labels) batches from a DALI pipeline, as the training loop reads
    a DataLoader of TwoViews; drop_last as the official sampler. len() is the number of batches."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        image_size: int,
        batch_size: int,
        seed: int,
        shard: int = 0,
        num_shards: int = 1,
        device_id: int | None = None,
    ):
        _, _, _, iterator_cls, last_batch = _dali()
        files, labels = zip(*samples) if samples else ((), ())
        self.batches = len(files) // num_shards // batch_size
        pipeline = build_pipeline(files, labels, image_size, batch_size, seed, shard, num_shards, device_id)
        self.iterator = iterator_cls(
            [pipeline],
            ["view1", "view2", "label"],
            reader_name="reader",
            last_batch_policy=last_batch.DROP,
            auto_reset=False,
        )

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        for index, outputs in enumerate(self.iterator):
            if index >= self.batches:
                break
            batch = outputs[0]
            yield (batch["view1"], batch["view2"]), batch["label"].squeeze(-1).long()
