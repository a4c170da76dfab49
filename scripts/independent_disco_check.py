"""A reviewer's check of the tiny verdict, written from the papers (SimCLR, DisCo), not from disco/:
its own NT-Xent, MSE term, augmentation pipeline, training loop and probes (scikit-learn's logistic
regression on standardised features, cosine kNN with k=20). It reuses only the data loader (the
embedded MNIST-5k split) and the frozen teacher's checkpoint of a tiny run, so that a difference
between its numbers and the benchmark's points at the training code, not at the data or the teacher.

    python scripts/independent_disco_check.py runs-or-artifacts/stages/pretrain-simclr-r50-tiny-s0-*/final.pt

Trains an EfficientNet-B0 for 8 epochs with SimCLR (the baseline) and with SimCLR + DisCo's MSE to the
teacher (per-sample weight 32, both views), seed 0, and prints kNN and linear top-1 of each, of the
random-initialised EfficientNet-B0 and of the teacher."""

from __future__ import annotations

import math
import sys
import time

import kornia.augmentation as K
import numpy as np
import timm
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

from disco.data.sources import load_splits

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def mlp(width_in: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.ReLU(), nn.Linear(hidden, 128))


def images_of(split) -> tuple[torch.Tensor, torch.Tensor]:
    return split.images, split.labels  # uint8 [N, 3, 32, 32], long [N]


def augmenter() -> nn.Module:
    return nn.Sequential(
        K.RandomResizedCrop((32, 32), scale=(0.3, 1.0)),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.Normalize(torch.tensor(MEAN), torch.tensor(STD)),
    )


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = len(a)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def train_student(images: torch.Tensor, teacher: nn.Module | None, mse_weight: float, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    backbone = timm.create_model("efficientnet_b0", num_classes=0)
    model = nn.Sequential(backbone, mlp(1280, 2048 if teacher is not None else 1280))
    augment = augmenter()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)
    epochs, batch = 8, 128
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = 0.06 * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order, started, total = torch.randperm(len(images)), time.time(), 0.0
        model.train()
        for start in range(0, len(images) - batch + 1, batch):
            x = images[order[start : start + batch]].float() / 255
            v1, v2 = augment(x), augment(x)
            z = model(torch.cat([v1, v2]))
            z1, z2 = z[:batch], z[batch:]
            loss = nt_xent(z1, z2)
            if teacher is not None:
                with torch.no_grad():
                    t = F.normalize(teacher(torch.cat([v1, v2])), dim=1)
                s = F.normalize(z, dim=1)
                loss = loss + mse_weight * (
                    (s[:batch] - t[:batch]).pow(2).sum(1).mean() + (s[batch:] - t[batch:]).pow(2).sum(1).mean()
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss)
        print(
            f"  epoch {epoch + 1}: loss {total / (len(images) // batch):.3f} ({time.time() - started:.0f} s)",
            flush=True,
        )
    return backbone.eval()


@torch.no_grad()
def features(backbone: nn.Module, images: torch.Tensor) -> np.ndarray:
    normalise = K.Normalize(torch.tensor(MEAN), torch.tensor(STD))
    return torch.cat([backbone(normalise(chunk.float() / 255)) for chunk in images.split(500)]).numpy()


def probes(backbone: nn.Module, train, test) -> str:
    (x_train, y_train), (x_test, y_test) = images_of(train), images_of(test)
    f_train, f_test = features(backbone, x_train), features(backbone, x_test)
    a, b = F.normalize(torch.from_numpy(f_test), dim=1), F.normalize(torch.from_numpy(f_train), dim=1)
    neighbours = (a @ b.T).topk(20, dim=1).indices
    knn = float((torch.mode(y_train[neighbours], dim=1).values == y_test).float().mean() * 100)
    scaler = StandardScaler().fit(f_train)
    probe = LogisticRegression(max_iter=2000, C=0.1).fit(scaler.transform(f_train), y_train.numpy())
    linear = probe.score(scaler.transform(f_test), y_test.numpy()) * 100
    return f"kNN(k=20) {knn:.1f}  linear(standardised, logistic) {linear:.1f}"


def main(teacher_checkpoint: str) -> None:
    torch.set_num_threads(2)
    data = {"source": "embedded", "dataset": "mnist5k", "test_fraction": 0.2, "image_size": 32, "workers": 0}
    splits = load_splits(data, None)
    payload = torch.load(teacher_checkpoint, map_location="cpu", weights_only=False)
    teacher_backbone = timm.create_model("resnet50", num_classes=0)
    teacher = nn.Sequential(teacher_backbone, mlp(2048, 2048))
    teacher.load_state_dict(_renamed(payload["encoder"]))  # strict
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad = False
    train_images = images_of(splits.train)[0]
    torch.manual_seed(0)
    print(
        "random-init EfficientNet-B0:",
        probes(timm.create_model("efficientnet_b0", num_classes=0).eval(), splits.train, splits.test),
        flush=True,
    )
    print("teacher ResNet-50:", probes(teacher_backbone, splits.train, splits.test), flush=True)
    print("SimCLR baseline:", flush=True)
    print("  ", probes(train_student(train_images, None, 0.0), splits.train, splits.test), flush=True)
    print("DisCo (SimCLR + 32 x MSE, both views):", flush=True)
    print("  ", probes(train_student(train_images, teacher, 32.0), splits.train, splits.test), flush=True)


def _renamed(encoder_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our encoder's keys (backbone.*, backbone.fc.{0,2}.*) as this script's Sequential(backbone, mlp)."""
    renamed = {}
    for key, value in encoder_state.items():
        key = key.removeprefix("backbone.")
        renamed[f"1.{key.removeprefix('fc.')}" if key.startswith("fc.") else f"0.{key}"] = value
    return renamed


if __name__ == "__main__":
    main(sys.argv[1])
