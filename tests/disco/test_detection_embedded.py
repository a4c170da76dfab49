import pytest
import torch

from disco.data.detection_embedded import ink_crop, paste_digits
from disco.data.embedded import ImageSet
from disco.evals.detection import coco_map


def _blobs(count: int = 12) -> ImageSet:
    """Synthetic 'digits': a bright rectangle of varying size in a black 16-px tile, label = index % 3."""
    images = torch.zeros(count, 3, 16, 16, dtype=torch.uint8)
    for index in range(count):
        height, width = 6 + index % 6, 3 + index % 5
        images[index, :, 2 : 2 + height, 4 : 4 + width] = 200
    return ImageSet(images, torch.arange(count) % 3, 3, "blobs")


@pytest.fixture(scope="module")
def pasted():
    return paste_digits(_blobs(), count=20, canvas=64, digits_per_image=(1, 3), digit_height=(12, 30), seed=3)


def test_boxes_hold_the_pasted_ink_and_nothing_lies_outside_them(pasted):
    for image, boxes in zip(pasted.images, pasted.boxes):
        outside = torch.ones(64, 64, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.int().tolist():
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
            patch = image[0, y0:y1, x0:x1]
            assert patch.max() >= 150, "a box without its digit"
            # tight: ink on (or within a pixel of) all four edges
            assert patch[:2].any() and patch[-2:].any() and patch[:, :2].any() and patch[:, -2:].any()
            outside[y0:y1, x0:x1] = False
        assert not image[:, outside].any(), "ink outside every box"


def test_boxes_do_not_overlap_and_labels_pair_with_boxes(pasted):
    assert len(pasted) == 20 and pasted.images.shape == (20, 3, 64, 64)
    for boxes, labels in zip(pasted.boxes, pasted.labels):
        assert len(boxes) == len(labels) >= 1 and labels.max() < 3
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_pasting_is_deterministic_per_seed():
    first, again, other = (paste_digits(_blobs(), 4, seed=seed) for seed in (1, 1, 2))
    assert torch.equal(first.images, again.images) and all(torch.equal(a, b) for a, b in zip(first.boxes, again.boxes))
    assert not torch.equal(first.images, other.images)


def test_ink_crop_and_bad_arguments():
    tile = torch.zeros(3, 10, 10, dtype=torch.uint8)
    tile[:, 2:5, 3:9] = 7
    assert ink_crop(tile).shape == (3, 6)
    with pytest.raises(ValueError, match="no ink"):
        ink_crop(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="digit_height"):
        paste_digits(_blobs(), 2, canvas=32, digit_height=(12, 40))
    with pytest.raises(ValueError, match="digits_per_image"):
        paste_digits(_blobs(), 2, digits_per_image=(0, 2))


def _predictions(boxes, labels, shift: float = 0.0, label_offset: int = 0):
    return [
        {"boxes": b + shift, "scores": torch.linspace(1.0, 0.5, len(b)), "labels": (lab + label_offset) % 3}
        for b, lab in zip(boxes, labels)
    ]


def test_coco_map_of_a_perfect_detector_is_100_and_of_wrong_ones_0(pasted):
    perfect = coco_map(pasted.boxes, pasted.labels, _predictions(pasted.boxes, pasted.labels), 3)
    assert perfect == {"AP": pytest.approx(100.0), "AP50": pytest.approx(100.0), "AP75": pytest.approx(100.0)}
    misplaced = coco_map(pasted.boxes, pasted.labels, _predictions(pasted.boxes, pasted.labels, shift=100.0), 3)
    mislabelled = coco_map(pasted.boxes, pasted.labels, _predictions(pasted.boxes, pasted.labels, label_offset=1), 3)
    assert misplaced["AP"] == pytest.approx(0.0) and mislabelled["AP50"] == pytest.approx(0.0)
    empty = [
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        for _ in pasted.boxes
    ]
    assert coco_map(pasted.boxes, pasted.labels, empty, 3)["AP"] == 0.0


def test_coco_map_partial_and_loose_boxes(pasted):
    half = [
        p if index % 2 else {"boxes": p["boxes"] + 100.0, "scores": p["scores"], "labels": p["labels"]}
        for index, p in enumerate(_predictions(pasted.boxes, pasted.labels))
    ]
    partial = coco_map(pasted.boxes, pasted.labels, half, 3)
    assert 20.0 < partial["AP"] < 80.0
    # boxes grown by 20% on each side: IoU ~0.51, kept at IoU .50 but not at .75
    loose = [
        {
            **p,
            "boxes": p["boxes"]
            + torch.stack(
                [
                    -(p["boxes"][:, 2] - p["boxes"][:, 0]) * 0.2,
                    -(p["boxes"][:, 3] - p["boxes"][:, 1]) * 0.2,
                    (p["boxes"][:, 2] - p["boxes"][:, 0]) * 0.2,
                    (p["boxes"][:, 3] - p["boxes"][:, 1]) * 0.2,
                ],
                dim=1,
            ),
        }
        for p in _predictions(pasted.boxes, pasted.labels)
    ]
    scores = coco_map(pasted.boxes, pasted.labels, loose, 3)
    assert scores["AP50"] == pytest.approx(100.0) and scores["AP75"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one prediction per image"):
        coco_map(pasted.boxes, pasted.labels, half[:-1], 3)
