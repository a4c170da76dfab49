"""A reviewer's check of SwAV at the tiny scale, written from the SwAV paper (Caron et al. 2020,
Algorithm 1 and the Sinkhorn-Knopp codes), not from disco/: its own crops, head, prototypes, codes,
swapped prediction and loop. It reuses only the embedded MNIST-5k loader, so that a SwAV that stays at
ln(prototypes) here as in `tiny-swav` points at the recipe at this scale, not at disco/methods/swav.py.

    python scripts/independent_swav_check.py '{"eps": 0.02, "epochs": 4}'
    python scripts/independent_swav_check.py '{"eps": 0.02, "small": 4}'            # + 4 16-px crops
    python scripts/independent_swav_check.py '{"eps": 0.02, "arch": "resnet50"}'    # torchvision
    python scripts/independent_swav_check.py '{"eps": 0.02, "arch": "timm:efficientnet_b0"}'

Prints, per epoch: the mean SwAV loss (chance: ln K), the mean pairwise cosine of a batch's
embeddings, and the kNN top-1 (k=20, cosine) and mean pairwise cosine of the pooled features on a
1,000-image held-out split (docs/tiny-profile.md "SwAV at the tiny scale" has the results)."""

from __future__ import annotations

import json
import math
import sys
import time

import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

from disco.data.embedded import load_embedded

BATCH = 128
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def backbone(arch: str) -> tuple[nn.Module, int]:
    if arch.startswith("timm:"):
        import timm

        net = timm.create_model(arch[5:], num_classes=0)
        return net, int(net.num_features)
    net = getattr(torchvision.models, arch)(num_classes=10)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - MEAN) / STD


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int = 3) -> torch.Tensor:
    """Codes: rows sum to 1, each prototype gets an equal share of the batch (the paper's Eq. 3)."""
    codes = torch.exp(scores / epsilon).t()
    codes /= codes.sum()
    prototypes, batch = codes.shape
    for _ in range(iterations):
        codes /= codes.sum(dim=1, keepdim=True) * prototypes
        codes /= codes.sum(dim=0, keepdim=True) * batch
    return (codes * batch).t()


@torch.no_grad()
def knn_and_cosine(net: nn.Module, train: tuple, test: tuple) -> tuple[float, float]:
    net.eval()
    bank = torch.cat([F.normalize(net(normalise(chunk)), dim=1) for chunk in train[0].split(500)])
    queries = torch.cat([F.normalize(net(normalise(chunk)), dim=1) for chunk in test[0].split(500)])
    weights, index = (queries @ bank.t()).topk(20, dim=1)
    votes = torch.zeros(len(queries), 10).scatter_add_(1, train[1][index], (weights / 0.07).exp())
    net.train()
    return (votes.argmax(1) == test[1]).float().mean().item() * 100, (bank @ bank.t()).mean().item()


def main(options: dict) -> None:
    prototypes, epsilon, temperature = options.get("K", 30), options.get("eps", 0.05), options.get("tau", 0.1)
    epochs, base_lr, small = options.get("epochs", 4), options.get("lr", 0.06), options.get("small", 0)
    freeze = options.get("freeze", 31)
    torch.manual_seed(0)
    torch.set_num_threads(options.get("threads", 1))
    data = load_embedded("mnist5k", 32)
    order = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(0))
    test = data.images[order[:1000]], data.labels[order[:1000]]
    train = data.images[order[1000:]], data.labels[order[1000:]]
    net, dim = backbone(options.get("arch", "resnet18"))
    head = nn.Sequential(nn.Linear(dim, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 128))
    protos = nn.Linear(128, prototypes, bias=False)
    params = [*net.parameters(), *head.parameters(), *protos.parameters()]
    optimizer = torch.optim.SGD(params, lr=base_lr, momentum=0.9, weight_decay=1e-4)
    colour = v2.Compose([v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)])
    large = v2.RandomResizedCrop(32, scale=(options.get("min_scale", 0.3), 1.0), antialias=True)
    little = v2.RandomResizedCrop(16, scale=(0.05, 0.3), antialias=True)

    def views(images: torch.Tensor, crop: nn.Module) -> torch.Tensor:
        return normalise(torch.stack([colour(crop(image)) for image in images]))

    steps, step, start = len(train[1]) // BATCH, 0, time.time()
    print("init kNN, feature cosine", knn_and_cosine(net, train, test), flush=True)
    for epoch in range(epochs):
        shuffled, total = torch.randperm(len(train[1])), 0.0
        for batch_index in range(steps):
            warm = min(1.0, (step + 1) / (2 * steps))
            for group in optimizer.param_groups:
                group["lr"] = base_lr * warm * 0.5 * (1 + math.cos(math.pi * step / (epochs * steps)))
            images = train[0][shuffled[batch_index * BATCH : (batch_index + 1) * BATCH]]
            crops = [views(images, large), views(images, large)] + [views(images, little) for _ in range(small)]
            with torch.no_grad():
                protos.weight.copy_(F.normalize(protos.weight, dim=1))
            groups = [crops[:2], crops[2:]] if small else [crops]
            embedding = torch.cat([F.normalize(head(net(torch.cat(group))), dim=1) for group in groups])
            scores = protos(embedding)
            loss = torch.zeros(())
            for assigned in (0, 1):
                codes = sinkhorn(scores[assigned * BATCH : (assigned + 1) * BATCH], epsilon)
                predictions = [
                    -(codes * F.log_softmax(scores[v * BATCH : (v + 1) * BATCH] / temperature, dim=1)).sum(1).mean()
                    for v in range(len(crops))
                    if v != assigned
                ]
                loss = loss + sum(predictions) / (len(crops) - 1)
            loss = loss / 2
            optimizer.zero_grad()
            loss.backward()
            if step < freeze:
                protos.weight.grad = None
            optimizer.step()
            step, total = step + 1, total + loss.item()
        with torch.no_grad():
            first = embedding[:BATCH]
            cosine = (first @ first.t()).mean().item()
        knn, features = knn_and_cosine(net, train, test)
        print(
            f"epoch {epoch + 1} loss {total / steps:.3f} (ln K {math.log(prototypes):.3f}) "
            f"embedding cosine {cosine:.3f} kNN {knn:.1f} feature cosine {features:.3f} {time.time() - start:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
