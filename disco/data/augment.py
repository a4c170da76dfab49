"""MoCo-v2 "aug-plus" augmentation (docs/protocol.md 1.5), SwAV's multi-crop transforms and the linear-evaluation transforms,
for PIL images (ImageNet) and uint8 tensors (embedded sets) alike, through torchvision.transforms.v2."""

from __future__ import annotations

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SWAV_STD = (0.228, 0.224, 0.225)  # SwAV's multicropdataset.py L39 (0.228, not torchvision's 0.229)
SWAV_JITTER = (0.8, 0.8, 0.8, 0.2)  # get_color_distortion(s=1.0), multicropdataset.py L88-94


class PILGaussianBlur:
    """The official blur: PIL's GaussianBlur with radius ~ U[low, high] (not torchvision's kernel)."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        radius = float(torch.empty(()).uniform_(*self.sigma))  # torch RNG: seeded per epoch/worker
        if not isinstance(image, Image.Image):
            return v2.functional.gaussian_blur(image, kernel_size=_odd_kernel(self.sigma[1]), sigma=radius)
        return image.filter(ImageFilter.GaussianBlur(radius=radius))


def _odd_kernel(sigma: float) -> int:
    return 2 * int(3 * sigma + 0.5) + 1


def mocov2_augmentation(image_size: int, crop_scale: tuple[float, float] = (0.2, 1.0), flip: bool = True) -> v2.Compose:
    """RRC(scale 0.2-1), colour jitter 0.4/0.4/0.4/0.1 p=0.8, grayscale p=0.2, blur p=0.5, flip.

    The blur radius range (0.1, 2.0) is defined at 224 px; it is scaled with the resolution so a
    32-px image is not blurred away (exact at 224). crop_scale and flip: a profile's `augment:`."""
    scale = image_size / 224.0
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([PILGaussianBlur((0.1 * scale, 2.0 * scale))], p=0.5),
            v2.RandomHorizontalFlip(p=0.5 if flip else 0.0),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def swav_crop_augmentation(
    size: int, scale: tuple[float, float], blur_scale: float = 1.0, flip: bool = True
) -> v2.Compose:
    """One of SwAV's multi-crop transforms (multicropdataset.py L41-52): RandomResizedCrop(size, scale),
    flip, colour distortion of strength 1 (jitter 0.8/0.8/0.8/0.2 p=0.8, grayscale p=0.2), PIL blur
    p=0.5, normalised with SwAV's std. The blur radius range (0.1, 2.0), the same for every crop in the
    official code, is multiplied by `blur_scale` (the data's resolution / 224, as mocov2_augmentation's;
    1 at 224 px). flip: a profile's `augment:`."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            v2.RandomHorizontalFlip(p=0.5 if flip else 0.0),
            v2.RandomApply([v2.ColorJitter(*SWAV_JITTER)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([PILGaussianBlur((0.1 * blur_scale, 2.0 * blur_scale))], p=0.5),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, SWAV_STD),
        ]
    )


def probe_train_transform(image_size: int, augment: bool) -> v2.Compose:
    """Linear evaluation, train side: RRC + flip (paper). Without augmentation it is the test
    transform, so the frozen backbone's features can be cached once (exact for eval-mode BN)."""
    if not augment:
        return probe_test_transform(image_size)
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def probe_test_transform(
    image_size: int, resize_ratio: float = 256 / 224, interpolation: str = "bilinear"
) -> v2.Compose:
    """Resize(size * 256/224), CenterCrop(size); CIFAR transfer uses ratio 1 and bicubic."""
    mode = v2.InterpolationMode.BICUBIC if interpolation == "bicubic" else v2.InterpolationMode.BILINEAR
    return v2.Compose(
        [
            v2.Resize(int(round(image_size * resize_ratio)), interpolation=mode, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
