"""Batched on-device aug-plus (disco/data/batched_augment.py) against the per-image pipeline."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms.v2 import functional as TF

from disco.data.augment import mocov2_augmentation, probe_test_transform
from disco.data.batched_augment import BatchedMoCoV2Augmentation, per_image_colour_jitter
from disco.data.datasets import TransformedImages, fixed_view
from disco.data.synthetic import synthetic_images
from disco.evaluate import tensor_batches

TORCHVISION_STEPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def colourful_images(count: int, size: int = 32) -> torch.Tensor:
    """uint8 images with distinct structure per channel, so crops, colour steps and flips all show."""
    ramp = torch.linspace(0, 1, size)
    base = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), (ramp[None] * ramp[:, None]).sqrt()])
    shifts = torch.linspace(0.0, 0.3, count)[:, None, None, None]
    return ((base[None] * 0.7 + shifts).clamp(0, 1) * 255).round().to(torch.uint8)


def test_colour_jitter_uses_each_images_own_factors_and_order_with_torchvisions_formulas():
    torch.manual_seed(0)
    images = colourful_images(6).float() / 255
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.05], [0.6, 1.4, 0.8, -0.1]]).repeat(3, 1)
    order = torch.stack([torch.randperm(4) for _ in range(6)])
    applied = torch.tensor([True, True, True, True, True, False])
    out = per_image_colour_jitter(images, factors, order, applied)
    for index in range(6):
        expected = images[index]
        if applied[index]:
            for step in order[index].tolist():
                expected = TORCHVISION_STEPS[step](expected, float(factors[index, step]))
        torch.testing.assert_close(out[index], expected, atol=2e-5, rtol=0)


def test_batched_views_have_per_image_parameters():
    torch.manual_seed(0)
    same = colourful_images(1).expand(16, -1, -1, -1).contiguous()
    views = BatchedMoCoV2Augmentation(32)(same)
    assert views.shape == (16, 3, 32, 32) and views.dtype == torch.float32
    distinct = {tuple(view.flatten()[:64].tolist()) for view in views}
    assert len(distinct) == 16  # one crop/colour draw per image, not one per batch


def test_batched_views_are_reproducible_under_a_seed():
    images = colourful_images(8)
    torch.manual_seed(3)
    first = BatchedMoCoV2Augmentation(32)(images)
    torch.manual_seed(3)
    assert torch.equal(first, BatchedMoCoV2Augmentation(32)(images))


def _view_statistics(views: torch.Tensor) -> torch.Tensor:
    """Per view: channel means, channel spread (grayscale lowers it), left-right balance (flip)."""
    left, right = views[..., :16].mean(dim=(2, 3)), views[..., 16:].mean(dim=(2, 3))
    channel_means = views.mean(dim=(2, 3))
    return torch.cat([channel_means, channel_means.std(dim=1, keepdim=True), (right - left)[:, :1]], dim=1)


def test_batched_views_match_the_per_image_pipeline_in_distribution():
    torch.manual_seed(0)
    images = colourful_images(1).expand(1500, -1, -1, -1).contiguous()
    batched = _view_statistics(BatchedMoCoV2Augmentation(32)(images))
    per_image_transform = mocov2_augmentation(32)
    per_image = _view_statistics(torch.stack([per_image_transform(image) for image in images]))
    # the means of each statistic agree to a few standard errors; so do their spreads
    standard_error = per_image.std(dim=0) / len(images) ** 0.5
    assert ((batched.mean(dim=0) - per_image.mean(dim=0)).abs() < 5 * standard_error + 0.01).all(), (
        batched.mean(0),
        per_image.mean(0),
    )
    assert ((batched.std(dim=0) / per_image.std(dim=0) - 1).abs() < 0.15).all(), (batched.std(0), per_image.std(0))


def test_fixed_view_equals_the_per_image_transform():
    source = synthetic_images(20, 32)
    transform = probe_test_transform(32)
    batched = fixed_view(source, transform)
    per_image = TransformedImages(source, transform)
    assert type(batched.tensors[0]) is torch.Tensor  # no tv_tensors subclass overhead in the model
    for index in range(len(source)):
        image, label = per_image[index]
        assert torch.equal(batched[index][0], image) and int(batched[index][1]) == label


@pytest.mark.parametrize("batch_size", [256, 7])
def test_tensor_batches_are_the_dataloaders_batches(batch_size):
    dataset = TensorDataset(torch.arange(1000.0)[:, None], torch.arange(1000))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(3))
    ours = list(tensor_batches(dataset, batch_size, torch.Generator().manual_seed(3)))
    theirs = list(loader)
    assert len(ours) == len(theirs)
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(ours, theirs))
    in_order = list(tensor_batches(dataset, batch_size))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(in_order, DataLoader(dataset, batch_size=batch_size)))
