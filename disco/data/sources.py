"""Resolve a data config to train/test datasets: embedded (tiny), synthetic (smoke), ImageNet."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from disco.data.embedded import ImageSet, load_embedded, stratified_split
from disco.data.synthetic import synthetic_images
from disco.errors import InputError
from disco.tasks.inputs import DataSource

SMOKE_IMAGES = 64


@dataclass(frozen=True)
class Splits:
    train: ImageSet | Dataset
    test: ImageSet | Dataset
    num_classes: int
    image_size: int
    synthetic: bool = False  # --smoke: stands in for every dataset an evaluation would read


def load_splits(data: DataSource, root: str | None = None) -> Splits:
    size = data.image_size
    if data.smoke:
        images = synthetic_images(SMOKE_IMAGES, size)
        train, test = stratified_split(images, 0.25)
        return Splits(train, test, images.num_classes, size, synthetic=True)
    if data.source == "embedded":
        if data.dataset is None:
            raise InputError("data.source embedded needs a `dataset` (e.g. mnist5k) in the profile's data:")
        dataset = load_embedded(data.dataset, size)
        train, test = stratified_split(dataset, data.test_fraction)
        return Splits(train, test, dataset.num_classes, size)
    if data.source == "imagenet":
        from disco.data.real import imagenet_folder

        if not root:
            raise InputError("data.source imagenet needs a root: set data.root in the profile or $DISCO_IMAGENET")
        train, test = imagenet_folder(root, "train"), imagenet_folder(root, "val")
        return Splits(train, test, len(train.classes), size)
    raise ValueError(f"unknown data source '{data.source}' (embedded, imagenet)")
