"""Offline adapters for the real datasets: ImageNet (ImageFolder), SimCLR's 1% / 10% ImageNet subsets,
CIFAR-10/100 (torchvision layout), and VOC / COCO under a DETECTRON2_DATASETS-style root.

Every missing or malformed dataset raises one `DatasetError` line naming the path and the layout expected.
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

from disco.errors import DataUnavailable

Transform = Callable[[Any], Any] | None

IMAGENET_LAYOUT = "<root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (one folder per class, as ImageFolder reads)"
SUBSET_URL = "https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/{percent}percent.txt"
SUBSET_SIZES = {1: 12811, 10: 128116}
SUBSET_LINE = re.compile(r"n\d{8}_\d+\.JPEG")
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
VOC_SPLITS = {"2007": ("trainval", "test"), "2012": ("trainval",)}
VOC_LAYOUT = "<root>/VOC{year}/{Annotations,ImageSets/Main,JPEGImages}"
COCO_LAYOUT = "<root>/coco/annotations/instances_{split}.json and <root>/coco/{split}/*.jpg"


class DatasetError(DataUnavailable):
    """A dataset is missing or not laid out as expected."""


# ---------------------------------------------------------------- ImageNet


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())


def imagenet_split_dir(root: str | Path, split: str) -> Path:
    """`<root>/<split>` checked to be an ImageFolder tree (catches the flat, un-prepared ImageNet val)."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DatasetError(f"ImageNet {split} split not found: {split_dir} does not exist; expected {IMAGENET_LAYOUT}")
    classes = _class_dirs(split_dir)
    loose = [
        entry.name for entry in os.scandir(split_dir) if entry.is_file() and entry.name.lower().endswith(IMG_EXTENSIONS)
    ]
    if loose:
        raise DatasetError(
            f"{split_dir} holds {len(loose)} images directly (e.g. {loose[0]}); expected one folder per class: {IMAGENET_LAYOUT} (sort val with the usual valprep script)"
        )
    if not classes:
        raise DatasetError(f"{split_dir} has no class folders; expected {IMAGENET_LAYOUT}")
    return split_dir


def imagenet_folder(root: str | Path, split: str, transform: Transform = None) -> ImageFolder:
    """ImageNet `split` as an ImageFolder; val must have exactly train's classes so label indices agree."""
    split_dir = imagenet_split_dir(root, split)
    if split != "train":
        train_classes, split_classes = _class_dirs(imagenet_split_dir(root, "train")), _class_dirs(split_dir)
        if train_classes != split_classes:
            odd = sorted(set(train_classes) ^ set(split_classes))[:3]
            raise DatasetError(
                f"{split_dir} has {len(split_classes)} class folders but {Path(root) / 'train'} has {len(train_classes)} (differing: {', '.join(odd)}); label indices would not line up"
            )
    try:
        return ImageFolder(str(split_dir), transform=transform)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{split_dir}: {str(exc).splitlines()[0]}; every class folder needs at least one image ({IMAGENET_LAYOUT})"
        ) from None


# ---------------------------------------------------------------- SimCLR 1% / 10% subsets


def parse_subset_list(
    text: str, source: str, *, expected_count: int | None = None, faithful_header_bug: bool = False
) -> list[str]:
    """Filenames of a SimCLR subset list: one `nXXXXXXXX_N.JPEG` per line, no header row.

    faithful_header_bug=True reproduces DisCo/data/imagenet_1_fraction.py, whose pandas.read_csv
    takes the first filename as the column header and so drops it (12,810 / 128,115 images).
    """
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not SUBSET_LINE.fullmatch(line.strip()):
            raise DatasetError(
                f"{source} line {number}: '{line[:60]}' is not an ImageNet train filename like n01440764_10026.JPEG (one per line, no header)"
            )
    names = [line.strip() for line in lines]
    if len(set(names)) != len(names):
        duplicate = next(name for name, count in Counter(names).items() if count > 1)
        raise DatasetError(f"{source}: '{duplicate}' is listed twice; a subset list names each image once")
    if expected_count is not None and len(names) != expected_count:
        raise DatasetError(
            f"{source} lists {len(names)} images, expected {expected_count}; the file is truncated or another subset"
        )
    return names[1:] if faithful_header_bug else names


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "disco-bench" / "imagenet_subsets"


def _download(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https / user file URL)
            return response.read().decode("ascii")
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"cannot fetch {url} ({exc}); download it by hand and pass its path as the subset list"
        ) from None


def fetch_subset_list(
    percent: int, cache_dir: str | Path | None = None, *, url: str | None = None, timeout: float = 60.0
) -> Path:
    """The SimCLR {1,10}percent.txt in the cache, fetched once and checked (line count and format)."""
    if percent not in SUBSET_SIZES:
        raise DatasetError(f"ImageNet subset must be 1 or 10 percent, got {percent}")
    cached = Path(cache_dir or default_cache_dir()) / f"{percent}percent.txt"
    if cached.is_file():
        parse_subset_list(
            cached.read_text(), f"cached {cached} (delete it to fetch again)", expected_count=SUBSET_SIZES[percent]
        )
        return cached
    source = url or SUBSET_URL.format(percent=percent)
    text = _download(source, timeout)
    parse_subset_list(text, source, expected_count=SUBSET_SIZES[percent])
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=cached.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, cached)
    return cached


def subset_filenames(
    percent: int,
    *,
    list_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    faithful_header_bug: bool = False,
) -> list[str]:
    """The 1% or 10% filenames, from a user file (checked like the fetched one) or the cache."""
    if percent not in SUBSET_SIZES:
        raise DatasetError(f"ImageNet subset must be 1 or 10 percent, got {percent}")
    path = Path(list_file) if list_file is not None else fetch_subset_list(percent, cache_dir)
    if not path.is_file():
        raise DatasetError(
            f"subset list not found: {path}; expected SimCLR's {percent}percent.txt (one filename per line)"
        )
    return parse_subset_list(
        path.read_text(), str(path), expected_count=SUBSET_SIZES[percent], faithful_header_bug=faithful_header_bug
    )


class ImageList(Dataset):
    """(image, label) over explicit files; labels use the full train class list, as ImageFolder would."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], transform: Transform = None):
        self.samples = samples
        self.targets = [label for _, label in samples]
        self.classes = classes
        self.class_to_idx = {name: index for index, name in enumerate(classes)}
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = default_loader(path)
        return (self.transform(image) if self.transform else image), label


def imagenet_subset(
    root: str | Path, filenames: list[str], transform: Transform = None, *, check_files: bool = True
) -> ImageList:
    """The listed train images (`<root>/train/<wnid>/<filename>`), labelled by their wnid's index among all train classes."""
    train_dir = imagenet_split_dir(root, "train")
    classes = _class_dirs(train_dir)
    class_to_idx = {name: index for index, name in enumerate(classes)}
    unknown = sorted({name.split("_")[0] for name in filenames} - class_to_idx.keys())
    if unknown:
        raise DatasetError(
            f"{train_dir} has no class folder for {len(unknown)} listed classes ({', '.join(unknown[:3])}); expected {IMAGENET_LAYOUT}"
        )
    samples = [(str(train_dir / name.split("_")[0] / name), class_to_idx[name.split("_")[0]]) for name in filenames]
    if check_files:
        missing = [path for path, _ in samples if not os.path.isfile(path)]
        if missing:
            raise DatasetError(
                f"{len(missing)} of {len(samples)} listed images are missing under {train_dir} (first: {missing[0]}); expected {IMAGENET_LAYOUT}"
            )
    return ImageList(samples, classes, transform)


# ---------------------------------------------------------------- CIFAR


def cifar(name: str, root: str | Path, *, train: bool, transform: Transform = None, download: bool = False) -> Dataset:
    """torchvision CIFAR10/100 from a local root; download only when asked."""
    if name not in CIFAR_FOLDERS:
        raise DatasetError(f"unknown CIFAR dataset '{name}'; expected one of {', '.join(CIFAR_FOLDERS)}")
    folder = Path(root) / CIFAR_FOLDERS[name]
    if not download and not folder.is_dir():
        raise DatasetError(
            f"{name} not found: {folder} does not exist; expected torchvision's layout <root>/{CIFAR_FOLDERS[name]}/ (or allow the download)"
        )
    dataset_class = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        return dataset_class(str(root), train=train, transform=transform, download=download)
    except RuntimeError as exc:
        raise DatasetError(
            f"{name} under {folder} is incomplete or corrupted ({exc}); re-extract the official python-version archive there"
        ) from None


# ---------------------------------------------------------------- VOC and COCO (detectron2 layout)


@dataclass(frozen=True)
class VocPaths:
    root: Path
    years: dict[str, Path]  # "2007" -> <root>/VOC2007


@dataclass(frozen=True)
class CocoPaths:
    root: Path
    annotations: dict[str, Path]  # "train2017" -> <root>/coco/annotations/instances_train2017.json
    images: dict[str, Path]  # "train2017" -> <root>/coco/train2017


def _require(path: Path, is_dir: bool, layout: str, root: Path) -> None:
    if not (path.is_dir() if is_dir else path.is_file()):
        raise DatasetError(
            f"dataset layout under {root} is incomplete: {path} is missing; expected {layout} (detectron2's DETECTRON2_DATASETS layout)"
        )


def _first_id(split_file: Path, layout: str) -> str:
    ids = split_file.read_text().split()
    if not ids:
        raise DatasetError(f"{split_file} is empty; expected one image id per line ({layout})")
    return ids[0]


def voc_layout(root: str | Path, years: tuple[str, ...] = ("2007", "2012")) -> VocPaths:
    """VOC2007 (trainval + test) and VOC2012 (trainval), spot-checking each split's first image."""
    base = Path(root)
    found: dict[str, Path] = {}
    for year in years:
        layout = VOC_LAYOUT.replace("{year}", year)
        voc = base / f"VOC{year}"
        for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
            _require(voc / sub, True, layout, base)
        for split in VOC_SPLITS.get(year, ("trainval",)):
            split_file = voc / "ImageSets" / "Main" / f"{split}.txt"
            _require(split_file, False, layout + f" with ImageSets/Main/{split}.txt", base)
            image_id = _first_id(split_file, layout)
            _require(voc / "Annotations" / f"{image_id}.xml", False, layout + f" ({split}.txt lists {image_id})", base)
            _require(voc / "JPEGImages" / f"{image_id}.jpg", False, layout + f" ({split}.txt lists {image_id})", base)
        found[year] = voc
    return VocPaths(base, found)


def _looks_like_json_object(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(64).lstrip()[:1] == b"{"


def coco_layout(root: str | Path, splits: tuple[str, ...] = ("train2017", "val2017")) -> CocoPaths:
    base = Path(root)
    annotations, images = {}, {}
    for split in splits:
        layout = COCO_LAYOUT.replace("{split}", split)
        annotation = base / "coco" / "annotations" / f"instances_{split}.json"
        image_dir = base / "coco" / split
        _require(annotation, False, layout, base)
        _require(image_dir, True, layout, base)
        if not _looks_like_json_object(annotation):
            raise DatasetError(f"{annotation} is not a COCO json annotation file (no JSON object); expected {layout}")
        if next(os.scandir(image_dir), None) is None:
            raise DatasetError(f"{image_dir} is empty; expected {layout}")
        annotations[split], images[split] = annotation, image_dir
    return CocoPaths(base, annotations, images)
