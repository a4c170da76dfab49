"""Real-dataset adapters on tiny fixture trees (JPEGs written with PIL) and on SimCLR's subset lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas
import pytest
import torch
from PIL import Image

from disco.data.real import (
    DatasetError,
    cifar,
    coco_layout,
    fetch_subset_list,
    imagenet_folder,
    imagenet_subset,
    parse_subset_list,
    subset_filenames,
    voc_layout,
)
from disco.errors import DataUnavailable

SHARED_SUBSETS = Path("/work/shared/data/imagenet_subsets")
needs_shared_lists = pytest.mark.skipif(
    not SHARED_SUBSETS.is_dir(), reason=f"{SHARED_SUBSETS} (SimCLR's subset lists) is not available on this machine"
)
CLASSES = ["n01440764", "n01443537", "n01484850"]


def write_jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(path, "JPEG")


@pytest.fixture
def imagenet_root(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet"
    for label, wnid in enumerate(CLASSES):
        for index in range(3):
            write_jpeg(root / "train" / wnid / f"{wnid}_{100 + index}.JPEG", 60 * label + index)
        write_jpeg(root / "val" / wnid / f"ILSVRC2012_val_0000000{label + 1}.JPEG", 60 * label)
    return root


def message_of(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    message = excinfo.value.args[0]
    assert isinstance(excinfo.value, DataUnavailable) and "\n" not in message
    return message


# ------------------------------------------------------------------ ImageNet


def test_imagenet_folders_give_consistent_labels(imagenet_root: Path) -> None:
    train = imagenet_folder(imagenet_root, "train")
    val = imagenet_folder(imagenet_root, "val", transform=lambda image: torch.tensor(image.size))
    assert len(train) == 9 and len(val) == 3
    assert train.class_to_idx == val.class_to_idx == {wnid: index for index, wnid in enumerate(CLASSES)}
    image, label = val[2]
    assert label == 2 and image.tolist() == [8, 8]


def test_flat_imagenet_val_is_rejected(imagenet_root: Path) -> None:
    shutil.rmtree(imagenet_root / "val")
    write_jpeg(imagenet_root / "val" / "ILSVRC2012_val_00000001.JPEG", 0)
    with pytest.raises(DatasetError) as excinfo:
        imagenet_folder(imagenet_root, "val")
    message = message_of(excinfo)
    assert str(imagenet_root / "val") in message and "one folder per class" in message


def test_val_classes_must_match_train(imagenet_root: Path) -> None:
    shutil.rmtree(imagenet_root / "val" / CLASSES[1])
    with pytest.raises(DatasetError, match="2 class folders but .* has 3") as excinfo:
        imagenet_folder(imagenet_root, "val")
    assert CLASSES[1] in message_of(excinfo)


def test_missing_split_and_empty_class_folder(imagenet_root: Path) -> None:
    with pytest.raises(DatasetError, match="ImageNet test split not found") as excinfo:
        imagenet_folder(imagenet_root, "test")
    assert "<root>/train/<wnid>/*.JPEG" in message_of(excinfo)
    for image in (imagenet_root / "train" / CLASSES[0]).iterdir():
        image.unlink()
    with pytest.raises(DatasetError, match="at least one image"):
        imagenet_folder(imagenet_root, "train")


def test_subset_selects_listed_images_with_full_train_labels(imagenet_root: Path) -> None:
    listed = [f"{CLASSES[2]}_101.JPEG", f"{CLASSES[0]}_100.JPEG"]
    subset = imagenet_subset(imagenet_root, listed)
    train = imagenet_folder(imagenet_root, "train")
    labels_by_name = {Path(path).name: label for path, label in train.samples}
    assert [Path(path).name for path, _ in subset.samples] == listed
    assert subset.targets == [labels_by_name[name] for name in listed] == [2, 0]
    image, label = subset[0]
    assert label == 2 and image.size == (8, 8)


def test_subset_with_unknown_class_or_missing_image_fails(imagenet_root: Path) -> None:
    with pytest.raises(DatasetError, match="no class folder for 1 listed classes \\(n09999999\\)"):
        imagenet_subset(imagenet_root, ["n09999999_1.JPEG"])
    with pytest.raises(DatasetError, match="1 of 2 listed images are missing") as excinfo:
        imagenet_subset(imagenet_root, [f"{CLASSES[0]}_100.JPEG", f"{CLASSES[0]}_555.JPEG"])
    assert f"{CLASSES[0]}_555.JPEG" in message_of(excinfo)


# ------------------------------------------------------------------ SimCLR subset lists


@needs_shared_lists
@pytest.mark.parametrize(("percent", "count"), [(1, 12811), (10, 128116)])
def test_official_lists_keep_every_line_including_the_first(percent: int, count: int) -> None:
    path = SHARED_SUBSETS / f"{percent}percent.txt"
    first_line = path.read_text().splitlines()[0]
    names = subset_filenames(percent, list_file=path)
    assert len(names) == count and names[0] == first_line
    assert len({name.split("_")[0] for name in names}) == 1000


@needs_shared_lists
@pytest.mark.parametrize("percent", [1, 10])
def test_faithful_header_bug_matches_pandas_read_csv(percent: int) -> None:
    path = SHARED_SUBSETS / f"{percent}percent.txt"
    buggy = subset_filenames(percent, list_file=path, faithful_header_bug=True)
    official = pandas.read_csv(path, delimiter="\t")  # DisCo/data/imagenet_1_fraction.py, header row and all
    assert buggy == official.iloc[:, 0].tolist()
    assert len(buggy) == {1: 12810, 10: 128115}[percent]
    assert official.columns[0] == path.read_text().splitlines()[0] not in buggy


@needs_shared_lists
def test_fetch_checks_and_caches_the_list(tmp_path: Path) -> None:
    source = tmp_path / "served" / "1percent.txt"
    source.parent.mkdir()
    shutil.copy(SHARED_SUBSETS / "1percent.txt", source)
    cached = fetch_subset_list(1, tmp_path / "cache", url=source.as_uri())
    assert cached.read_text() == source.read_text()
    source.unlink()  # the second call must not fetch again
    assert fetch_subset_list(1, tmp_path / "cache", url=source.as_uri()) == cached
    assert subset_filenames(1, cache_dir=tmp_path / "cache")[0] == cached.read_text().split()[0]


@needs_shared_lists
def test_fetch_rejects_a_truncated_download_and_caches_nothing(tmp_path: Path) -> None:
    served = tmp_path / "10percent.txt"
    served.write_text("\n".join((SHARED_SUBSETS / "10percent.txt").read_text().splitlines()[:5000]) + "\n")
    with pytest.raises(DatasetError, match="lists 5000 images, expected 128116"):
        fetch_subset_list(10, tmp_path / "cache", url=served.as_uri())
    assert not (tmp_path / "cache" / "10percent.txt").exists()
    with pytest.raises(DatasetError, match="cannot fetch"):
        fetch_subset_list(10, tmp_path / "cache", url=(tmp_path / "absent.txt").as_uri())


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("filename\nn01440764_10026.JPEG\n", "line 1: 'filename'"),
        ("n01440764_10026.JPEG\n\nn01443537_2.JPEG\n", "line 2"),
        ("n01440764_10026.JPEG\tn01440764\n", "line 1"),
        ("n01440764_10026.jpg\n", "line 1"),
        ("n01440764_10026.JPEG\nn01440764_10026.JPEG\n", "listed twice"),
    ],
)
def test_malformed_list_files(text: str, words: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        parse_subset_list(text, "my_list.txt")
    message = message_of(excinfo)
    assert message.startswith("my_list.txt") and words in message


def test_list_with_crlf_endings_parses_and_counts_are_checked(tmp_path: Path) -> None:
    assert parse_subset_list("n01440764_1.JPEG\r\nn01443537_2.JPEG\r\n", "crlf.txt") == [
        "n01440764_1.JPEG",
        "n01443537_2.JPEG",
    ]
    short = tmp_path / "1percent.txt"
    short.write_text("n01440764_1.JPEG\n")
    with pytest.raises(DatasetError, match="lists 1 images, expected 12811"):
        subset_filenames(1, list_file=short)
    with pytest.raises(DatasetError, match="subset list not found"):
        subset_filenames(1, list_file=tmp_path / "absent.txt")
    with pytest.raises(DatasetError, match="1 or 10 percent"):
        subset_filenames(5, list_file=short)


# ------------------------------------------------------------------ CIFAR


def test_cifar_missing_or_corrupted_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        cifar("cifar10", tmp_path, train=True)
    assert str(tmp_path / "cifar-10-batches-py") in message_of(excinfo)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="incomplete or corrupted") as excinfo:
        cifar("cifar100", tmp_path, train=False)
    message_of(excinfo)
    with pytest.raises(DatasetError, match="unknown CIFAR dataset 'cifar1000'"):
        cifar("cifar1000", tmp_path, train=True)


# ------------------------------------------------------------------ VOC and COCO


def build_voc(root: Path) -> None:
    for year, splits in {"2007": {"trainval": "000005", "test": "000001"}, "2012": {"trainval": "2008_000008"}}.items():
        voc = root / f"VOC{year}"
        (voc / "ImageSets" / "Main").mkdir(parents=True)
        (voc / "Annotations").mkdir()
        for split, image_id in splits.items():
            (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{image_id}\n")
            (voc / "Annotations" / f"{image_id}.xml").write_text("<annotation/>")
            write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", 10)


def test_voc_layout_accepts_the_detectron2_tree(tmp_path: Path) -> None:
    build_voc(tmp_path)
    paths = voc_layout(tmp_path)
    assert paths.years == {"2007": tmp_path / "VOC2007", "2012": tmp_path / "VOC2012"}


@pytest.mark.parametrize(
    ("breakage", "missing"),
    [
        ("VOC2012", "VOC2012/Annotations"),
        ("VOC2007/ImageSets/Main/test.txt", "VOC2007/ImageSets/Main/test.txt"),
        ("VOC2007/JPEGImages/000005.jpg", "VOC2007/JPEGImages/000005.jpg"),
        ("VOC2012/Annotations/2008_000008.xml", "VOC2012/Annotations/2008_000008.xml"),
    ],
)
def test_voc_layout_names_what_is_missing(tmp_path: Path, breakage: str, missing: str) -> None:
    build_voc(tmp_path)
    target = tmp_path / breakage
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError) as excinfo:
        voc_layout(tmp_path)
    message = message_of(excinfo)
    assert (
        str(tmp_path / missing) in message and "VOC" in message and "{Annotations,ImageSets/Main,JPEGImages}" in message
    )


def test_voc_empty_split_file(tmp_path: Path) -> None:
    build_voc(tmp_path)
    (tmp_path / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").write_text("")
    with pytest.raises(DatasetError, match="trainval.txt is empty"):
        voc_layout(tmp_path)


def build_coco(root: Path) -> None:
    annotations = root / "coco" / "annotations"
    annotations.mkdir(parents=True)
    for split in ("train2017", "val2017"):
        write_jpeg(root / "coco" / split / "000000000139.jpg", 30)
        payload = {
            "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 8, "width": 8}],
            "annotations": [],
            "categories": [{"id": 1, "name": "person"}],
        }
        (annotations / f"instances_{split}.json").write_text(json.dumps(payload))


def test_coco_layout_and_its_failures(tmp_path: Path) -> None:
    build_coco(tmp_path)
    paths = coco_layout(tmp_path)
    assert paths.annotations["val2017"] == tmp_path / "coco" / "annotations" / "instances_val2017.json"
    assert paths.images["train2017"] == tmp_path / "coco" / "train2017"

    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text("<html>rate limited</html>")
    with pytest.raises(DatasetError, match="not a COCO json") as excinfo:
        coco_layout(tmp_path)
    message_of(excinfo)
    (tmp_path / "coco" / "train2017" / "000000000139.jpg").unlink()
    with pytest.raises(DatasetError, match="train2017 is empty"):
        coco_layout(tmp_path, splits=("train2017",))
    shutil.rmtree(tmp_path / "coco" / "annotations")
    with pytest.raises(DatasetError) as excinfo:
        coco_layout(tmp_path)
    assert "instances_train2017.json is missing" in message_of(excinfo)
