"""Multi-crop views in the one training loop (disco/train.py draw_views, disco/tasks/training.py): a
method whose config declares crops gets that many views, each at its size and area range, per image or
batched; a two-view method draws exactly what it drew before."""

from __future__ import annotations

import pytest
import torch

from disco.data.augment import SWAV_STD, swav_crop_augmentation
from disco.data.batched_augment import BatchedMoCoV2Augmentation
from disco.data.datasets import MultiViews, TransformedImages
from disco.data.sources import Splits
from disco.data.synthetic import synthetic_images
from disco.errors import InputError
from disco.methods.registry import METHODS, SimCLRConfig, SwAVConfig
from disco.methods.swav import SwAV
from disco.models import build_encoder
from disco.tasks.inputs import DataSource, EncoderShape, TrainingInput, ViewOptions
from disco.tasks.training import _train_inputs
from disco.train import draw_views, train
from disco.train_recipe import TrainRecipe

CPU = torch.device("cpu")
CROPS = dict(nmb_crops=(2, 3), size_crops=(32, 16), min_scale_crops=(0.14, 0.05), max_scale_crops=(1.0, 0.14))


def swav_config(**values: object) -> SwAVConfig:
    return SwAVConfig(nmb_prototypes=5, **{**CROPS, "queue_length": 0, **values})


def training_input(config: object, loader: str = "torch") -> TrainingInput:
    return TrainingInput(
        spec=METHODS["swav"],
        method_config=config,
        encoder=EncoderShape("r18", "swav", 32),
        data=DataSource("embedded", 32, smoke=True, loader=loader),
        recipe=TrainRecipe(epochs=1, batch_size=4),
        seed=0,
        views=ViewOptions(flip=False),
    )


def splits() -> Splits:
    images = synthetic_images(16, 32)
    return Splits(images, images, 10, 32)


def test_a_single_augmentation_still_draws_the_two_views_it_drew_before():
    images = synthetic_images(4, 32).images
    augment = BatchedMoCoV2Augmentation(32)
    torch.manual_seed(3)
    expected = augment(images), augment(images)
    torch.manual_seed(3)
    views = draw_views(images, CPU, augment)
    assert len(views) == 2 and all(torch.equal(a, b) for a, b in zip(views, expected))


def test_one_view_per_augmentation_in_order_and_the_loader_views_as_they_come():
    images = synthetic_images(4, 32).images
    draws = [BatchedMoCoV2Augmentation.swav_crop(size, (0.1, 1.0), 32 / 224) for size in (32, 32, 16)]
    assert [tuple(view.shape) for view in draw_views(images, CPU, tuple(draws))] == [
        (4, 3, 32, 32),
        (4, 3, 32, 32),
        (4, 3, 16, 16),
    ]
    loaded = [torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 16, 16), torch.zeros(4, 3, 16, 16)]
    assert [view.shape[-1] for view in draw_views(loaded, CPU, None)] == [32, 16, 16]


def test_the_swav_crops_follow_the_official_transform():
    transform = swav_crop_augmentation(16, (0.05, 0.14), blur_scale=32 / 224, flip=False)
    view = transform(synthetic_images(1, 32).images[0])
    assert view.shape == (3, 16, 16) and view.dtype == torch.float32
    normalize = transform.transforms[-1]
    assert tuple(normalize.std) == SWAV_STD and transform.transforms[1].p == 0.0  # no flips when asked
    jitter = transform.transforms[2].transforms[0]
    assert jitter.brightness == pytest.approx((0.2, 1.8)) and jitter.hue == pytest.approx((-0.2, 0.2))  # 0.8, 0.2


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-image"])
def test_a_multi_crop_config_gets_its_crops_batched_or_per_image(batched):
    dataset, views = _train_inputs(training_input(swav_config()), splits(), _speed(batched), CPU)
    if batched:
        crops = [draw.crop for draw in views["augment"]]
        assert isinstance(dataset, TransformedImages) and [c.flags["size"][0] for c in crops] == [32, 32, 16, 16, 16]
        assert crops[2]._param_generator.scale == (0.05, 0.14) and views["augment"][0].flip.p == 0.0
    else:
        assert isinstance(dataset, MultiViews) and not views
        crops, _ = dataset[0]
        assert [crop.shape[-1] for crop in crops] == [32, 32, 16, 16, 16]


def test_a_two_view_config_keeps_its_two_views_and_dali_refuses_crops():
    dataset, views = _train_inputs(training_input(SimCLRConfig()), splits(), _speed(True), CPU)
    assert isinstance(views["augment"], BatchedMoCoV2Augmentation)  # one augmentation, drawn twice
    with pytest.raises(InputError, match="multi-crop method"):
        _train_inputs(training_input(swav_config(), loader="dali"), splits(), _speed(False), CPU)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-image"])
def test_swav_trains_through_the_loop_and_its_queue_starts_at_its_epoch(tmp_path, batched):
    config = swav_config(queue_length=4, epoch_queue_starts=1)
    dataset, views = _train_inputs(training_input(config), splits(), _speed(batched), CPU)
    torch.manual_seed(0)
    method = SwAV(build_encoder("r18", "swav", hidden=32), config)
    state = train(method, dataset, TrainRecipe(epochs=2, batch_size=4, limit_batches=1), tmp_path, 0, CPU, **views)
    assert len(state.history) == 2 and all(torch.isfinite(torch.tensor(e["loss"])) for e in state.history)
    assert int(method.iteration) == 2 and bool(torch.all(method.queue[:, -1] != 0))  # filled in epoch 1 only


def _speed(batched: bool):
    from disco.speed import SpeedOptions

    return SpeedOptions(batched_augment=batched)
