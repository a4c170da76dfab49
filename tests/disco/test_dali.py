"""The optional DALI loader (disco/data/dali.py), on DALI's CPU operators (the CI installs the
image's pinned DALI, .ci/setup-dali.sh)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disco.data.augment import IMAGENET_MEAN, IMAGENET_STD
from disco.data.dali import DaliTwoViews, DaliUnavailable
from disco.errors import BackendUnavailable

try:
    import nvidia.dali  # noqa: F401

    HAVE_DALI = True
except ImportError:
    HAVE_DALI = False
needs_dali = pytest.mark.skipif(not HAVE_DALI, reason="NVIDIA DALI is not installed (.ci/setup-dali.sh installs it)")


def test_without_dali_the_loader_is_one_line_saying_how_to_fix_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # as if not installed
    with pytest.raises(DaliUnavailable) as caught:
        DaliTwoViews([("a.jpg", 0)], image_size=32, batch_size=1, seed=0)
    message = caught.value.args[0]
    assert isinstance(caught.value, BackendUnavailable) and "\n" not in message
    assert "pip install nvidia-dali-cuda120" in message and "data.loader: torch" in message


def write_jpegs(folder: Path, classes: int, per_class: int, pattern: str = "noise") -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    samples = []
    for label in range(classes):
        (folder / f"n{label:08d}").mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            if pattern == "halves":  # red left half, dark right half: shows flips and grayscale
                pixels = np.zeros((48, 48, 3), dtype=np.uint8)
                pixels[:, :24] = (230, 40, 40)
            else:
                pixels = rng.integers(0, 255, (40 + 8 * label, 56, 3), dtype=np.uint8)
            path = folder / f"n{label:08d}" / f"img_{label}_{index}.JPEG"
            Image.fromarray(pixels).save(path, quality=95)
            samples.append((str(path), label))
    return samples


@needs_dali
def test_dali_views_have_the_training_loops_layout(tmp_path):
    samples = write_jpegs(tmp_path, classes=2, per_class=9)
    loader = DaliTwoViews(samples, image_size=32, batch_size=4, seed=1)
    assert len(loader) == 18 // 4  # drop_last
    batches = list(loader)
    assert len(batches) == len(loader)
    labels = torch.cat([labels for _, labels in batches])
    assert labels.dtype == torch.long and set(labels.tolist()) <= {0, 1}
    for (view1, view2), _ in batches:
        assert view1.shape == view2.shape == (4, 3, 32, 32) and view1.dtype == torch.float32
        assert not torch.equal(view1, view2)  # two independent views of each image


@needs_dali
def test_dali_views_are_seeded(tmp_path):
    samples = write_jpegs(tmp_path, classes=2, per_class=4)
    first = [views[0] for views, _ in DaliTwoViews(samples, 32, 4, seed=5)]
    again = [views[0] for views, _ in DaliTwoViews(samples, 32, 4, seed=5)]
    other = [views[0] for views, _ in DaliTwoViews(samples, 32, 4, seed=6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@needs_dali
def test_dali_draws_flip_and_grayscale_per_image_at_the_recipes_rates(tmp_path):
    samples = write_jpegs(tmp_path, classes=1, per_class=64, pattern="halves")
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    views = torch.cat([torch.cat(pair) for pair, _ in DaliTwoViews(samples, 32, 32, seed=0)])  # 128 views
    pixels = views * std + mean
    grey = (pixels.amax(dim=1) - pixels.amin(dim=1)).amax(dim=(1, 2)) < 0.03
    red_side_right = pixels[:, 0, :, 16:].mean(dim=(1, 2)) > pixels[:, 0, :, :16].mean(dim=(1, 2))
    assert 0.08 < grey.float().mean() < 0.35  # p = 0.2
    assert 0.3 < red_side_right.float().mean() < 0.7  # p = 0.5 (crops keep the halves' sides)


@needs_dali
def test_a_pretrain_stage_trains_from_the_dali_loader(tmp_path):
    from disco.tasks import run_task

    for split in ("train", "val"):
        write_jpegs(tmp_path / "imagenet" / split, classes=2, per_class=4)
    config = {
        "method": "mocov2",
        "arch": "r18",
        "head": "mocov2",
        "seed": 0,
        "data": {"source": "imagenet", "image_size": 32, "loader": "dali"},
        "recipe": {
            "epochs": 2,
            "batch_size": 4,
            "lr": 0.03,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "schedule": "cosine",
            "workers": 0,
        },
        "mocov2": {"queue_size": 16, "momentum": 0.99, "temperature": 0.2, "bn_group_size": 2},
    }
    metrics, history, artifacts = run_task(
        "pretrain",
        config,
        {},
        tmp_path / "stage",
        {"data_root": str(tmp_path / "imagenet"), "speed": "optimized"},
        torch.device("cpu"),
        None,
    )
    assert [entry["epoch"] for entry in history] == [1, 2] and np.isfinite(metrics["final_loss"])
    assert (tmp_path / "stage" / artifacts["checkpoint"]).exists()
