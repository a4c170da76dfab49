"""Semi-supervised evaluation with 1% / 10% of the train labels (docs/protocol.md 4.2).

semi_linear_{1,10}pct:   what DisCo/main_lincls_semi.py does: the linear probe of 4.1 (frozen eval-mode
                         backbone) trained on the labelled fraction only, lr 3.0 halved at 60/80, 100 epochs.
semi_finetune_{1,10}pct: what later papers report: backbone + head fine-tuned on the fraction, BN in train
                         mode (SwAV eval_semisup.py: 20 epochs, trunk/head lr 0.01/0.2 at 10%, 0.02/5 at 1%,
                         x0.2 at 12 and 16, momentum 0.9, wd 0).
Both score the full test split. Paper data: SimCLR's {1,10}percent.txt subsets of ImageNet train;
embedded data: a class-balanced fraction of the train split (1% of mnist5k's 4,000 = 40, 4 per class).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import asdict
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from disco.data.augment import probe_test_transform, probe_train_transform
from disco.data.datasets import TransformedImages, fixed_view, size
from disco.data.embedded import ImageSet, label_fraction
from disco.data.sources import Splits
from disco.errors import InputError
from disco.eval_recipes import SemiFinetuneRecipe, SemiLinearRecipe, SubsetChoice, coerce_recipe
from disco.evals.linear import linear
from disco.evaluate import FeatureFn, ProgressFn, extract_features, topk_correct
from disco.models import Encoder, feature_dim
from disco.schedules import step_lr

PERCENTS = (1, 10)


def labelled_subset(train: ImageSet | Dataset, percent: int, choice: SubsetChoice) -> tuple[ImageSet | Dataset, str]:
    """The labelled `percent`% of `train`, and a description of where it came from."""
    if isinstance(train, ImageSet):
        subset = label_fraction(train, percent / 100.0, choice.subset_seed)
        return subset, f"class-balanced {percent}% of {train.name} (seed {choice.subset_seed})"
    if hasattr(train, "samples"):
        return imagenet_fraction(train, percent, choice), f"SimCLR {percent}percent.txt"
    raise InputError(
        f"semi-supervised evaluation needs an embedded set or an ImageFolder-style train split, got {type(train).__name__}"
    )


def imagenet_fraction(train: Dataset, percent: int, choice: SubsetChoice) -> Subset:
    """The images of SimCLR's list among an ImageFolder's samples, matched by file name."""
    from disco.data.real import DatasetError, subset_filenames

    wanted = set(
        subset_filenames(percent, list_file=choice.subset_list, faithful_header_bug=choice.faithful_header_bug)
    )
    indices = [index for index, (path, _) in enumerate(cast(Any, train).samples) if os.path.basename(path) in wanted]
    if len(indices) != len(wanted):
        raise DatasetError(
            f"the ImageNet train split holds {len(indices)} of the {len(wanted)} images of the {percent}% list; is it the full ILSVRC-2012 train set?"
        )
    return Subset(train, indices)


def semi_linear(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
    *,
    percent: int,
) -> dict[str, Any]:
    config = coerce_recipe(SemiLinearRecipe, recipe)
    subset, source = labelled_subset(splits.train, percent, config)
    metrics = linear(encoder, dataclasses.replace(splits, train=subset), config, device, seed, progress)
    protocol = "linear probe on the labelled fraction, frozen eval-mode backbone (DisCo main_lincls_semi.py)"
    return {**metrics, "protocol": protocol, "label_percent": percent, "subset": source, "recipe": asdict(config)}


def semi_finetune(
    encoder: Encoder,
    splits: Splits,
    recipe: Any,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
    *,
    percent: int,
) -> dict[str, Any]:
    config = coerce_recipe(SemiFinetuneRecipe, recipe)
    subset, source = labelled_subset(splits.train, percent, config)
    torch.manual_seed(seed)
    model = copy.deepcopy(encoder).to(device)  # the caller's encoder stays as it was
    head = nn.Linear(feature_dim(model.backbone), splits.num_classes).to(device)  # PyTorch's default init, as SwAV's
    trunk = [param for name, param in model.backbone.named_parameters() if not name.startswith(f"{model.head_name}.")]
    for param in model.parameters():
        param.requires_grad = False
    for param in trunk:
        param.requires_grad = True
    groups = [
        {"params": trunk, "lr": config.trunk_lr, "base_lr": config.trunk_lr},
        {"params": list(head.parameters()), "lr": config.head_lr, "base_lr": config.head_lr},
    ]
    optimizer = torch.optim.SGD(groups, lr=config.trunk_lr, momentum=config.momentum, weight_decay=config.weight_decay)
    train = TransformedImages(subset, probe_train_transform(splits.image_size, augment=True))
    test = fixed_view(splits.test, probe_test_transform(splits.image_size))
    classify = lambda images: head(model.features(images))  # noqa: E731
    best, last = {"top1": 0.0, "top5": 0.0}, {"top1": 0.0, "top5": 0.0}
    for epoch in range(config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = step_lr(group["base_lr"], epoch, config.milestones, config.gamma)
        _finetune_epoch(model, classify, train, optimizer, config, device, seed * 7919 + epoch)
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            model.eval()
            logits, labels = extract_features(
                classify, test, config.batch_size, device, config.workers, config.limit_batches
            )
            correct = topk_correct(logits, labels)
            last = {"top1": 100.0 * correct[1] / len(labels), "top5": 100.0 * correct[5] / len(labels)}
            best = max(best, last, key=lambda metrics: metrics["top1"])
        if progress:
            progress("epoch", epoch + 1, config.epochs)
    return {
        "top1": last["top1"],
        "top5": last["top5"],
        "top1_best": best["top1"],
        "top5_at_best": best["top5"],
        "num_train": size(subset),
        "num_test": size(splits.test),
        "label_percent": percent,
        "subset": source,
        "protocol": "fine-tune backbone + linear head on the labelled fraction, BN in train mode (SwAV eval_semisup.py)",
        "recipe": asdict(config),
    }


def _finetune_epoch(
    model: Encoder,
    classify: FeatureFn,
    train: Dataset,
    optimizer: torch.optim.Optimizer,
    config: SemiFinetuneRecipe,
    device: torch.device,
    shuffle_seed: int,
) -> None:
    model.train()
    # A last batch of one image would fail in train-mode BN.
    loader = DataLoader(
        train,
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(shuffle_seed),
        num_workers=config.workers,
        drop_last=size(train) % config.batch_size == 1,
    )
    for index, (images, targets) in enumerate(loader):
        if config.limit_batches is not None and index >= config.limit_batches:
            break
        loss = F.cross_entropy(classify(images.to(device)), torch.as_tensor(targets).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
