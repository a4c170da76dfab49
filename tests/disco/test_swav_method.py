"""SwAV and DisCo over SwAV as modules (disco/methods/swav.py, disco_swav.py): whole training epochs
through the real loop against transcriptions of the official code (tests/disco/official_swav.py) on
the same weights and batches: the multi-resolution forward, the prototypes' normalisation, Sinkhorn, the
queue from its epoch on, the frozen prototypes' first iterations and the SGD step."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from disco.methods.disco_swav import DisCoSwAV
from disco.methods.registry import DisCoSwAVConfig, SwAVConfig
from disco.methods.swav import SwAV, embed_crops, resolution_groups
from disco.models import build_encoder
from disco.train import call_hook, train_one_epoch
from disco.train_recipe import TrainRecipe
from tests.disco import official_swav
from tests.disco.official_swav import OfficialMultiCropModel, new_queue

BATCH, LR, MOMENTUM, WEIGHT_DECAY = 4, 0.1, 0.9, 1e-4
CROPS = dict(nmb_crops=(2, 2), size_crops=(32, 16), min_scale_crops=(0.14, 0.05), max_scale_crops=(1.0, 0.14))


def swav_config(cls: type = SwAVConfig, **values: object) -> SwAVConfig:
    return cls(nmb_prototypes=6, **CROPS, **values)


def official_args(config: SwAVConfig) -> SimpleNamespace:
    """main_swav.py's args for the same settings (one process)."""
    names = ("crops_for_assign", "nmb_crops", "temperature", "epsilon", "sinkhorn_iterations", "queue_length")
    values = {name: list(v) if isinstance(v := getattr(config, name), tuple) else v for name in names}
    return SimpleNamespace(
        **values,
        epoch_queue_starts=config.epoch_queue_starts,
        freeze_prototypes_niters=config.freeze_prototypes_niters,
        world_size=1,
        feat_dim=128,
    )


def batches(seed: int, steps: int) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(BATCH, 3, size, size, generator=generator) for size in (32, 32, 16, 16)] for _ in range(steps)]


def sgd(module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def ours_epochs(method: nn.Module, epochs: list[list[list[torch.Tensor]]]) -> list[float]:
    """What disco/train.py's `train` does per epoch: the start_epoch hook, then train_one_epoch."""
    optimizer, recipe, means = sgd(method), TrainRecipe(epochs=len(epochs), batch_size=BATCH), []
    for epoch, steps in enumerate(epochs):
        call_hook(method, "start_epoch", epoch)
        loader = [(crops, torch.zeros(BATCH)) for crops in steps]
        means.append(train_one_epoch(method, loader, optimizer, torch.device("cpu"), recipe, None)["loss"])
    return means


def assert_same_weights(ours: nn.Module, theirs: nn.Module) -> None:
    for (name, mine), (_, official) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        torch.testing.assert_close(mine, official, rtol=1e-5, atol=1e-6, msg=name)


def test_a_swav_training_matches_the_official_epochs_queue_and_frozen_prototypes_included():
    # epoch 0 without a queue; epoch 1 starts it (empty, filled by its first step, used by its second);
    # the prototypes take no step during the first 3 iterations, then move
    config = swav_config(queue_length=BATCH, epoch_queue_starts=1, freeze_prototypes_niters=3)
    torch.manual_seed(0)
    ours = SwAV(build_encoder("r18", "swav", hidden=32), config)
    theirs = OfficialMultiCropModel(copy.deepcopy(ours.encoder), copy.deepcopy(ours.prototypes), normalize=True)
    epochs = [batches(1, 2), batches(2, 2)]
    official_swav.args.__dict__.update(vars(official_args(config)))
    optimizer, queue, official_means = sgd(theirs), None, []
    for epoch, steps in enumerate(epochs):
        queue = new_queue(epoch, queue)
        losses, queue = official_swav.train(steps, theirs, optimizer, epoch, None, queue)
        official_means.append(sum(losses) / len(losses))
    means = ours_epochs(ours, epochs)
    torch.testing.assert_close(torch.tensor(means), torch.tensor(official_means), rtol=1e-5, atol=1e-6)
    assert_same_weights(ours.encoder, theirs.encoder)
    torch.testing.assert_close(ours.prototypes.weight, theirs.prototypes.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.queue, queue, rtol=1e-5, atol=1e-6)
    assert int(ours.iteration) == 4


def test_the_prototypes_stay_on_the_sphere_and_still_during_the_frozen_iterations():
    config = swav_config(queue_length=0, freeze_prototypes_niters=2)
    torch.manual_seed(0)
    method = SwAV(build_encoder("r18", "swav", hidden=32), config)
    method.normalize_prototypes()
    start = method.prototypes.weight.detach().clone()
    ours_epochs(method, [batches(3, 2)])
    # frozen: no gradient, no momentum, no weight decay (the renormalisation before each step moves the last bit)
    torch.testing.assert_close(method.prototypes.weight, start, rtol=0, atol=1e-7)
    ours_epochs(method, [batches(4, 1)])
    assert (method.prototypes.weight - start).abs().max() > 1e-4
    method.normalize_prototypes()
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(6))


def test_disco_over_swav_matches_the_official_distill_epoch_with_an_eval_mode_raw_teacher():
    config = swav_config(DisCoSwAVConfig, queue_length=BATCH, epoch_queue_starts=0, freeze_prototypes_niters=1)
    torch.manual_seed(0)
    teacher = build_encoder("r18", "swav", hidden=32)
    ours = DisCoSwAV(build_encoder("r18", "swav", hidden=32), teacher, config)
    theirs = OfficialMultiCropModel(copy.deepcopy(ours.student), copy.deepcopy(ours.base.prototypes), normalize=True)
    # the script's teacher: SwAV's ResNet built without normalize=True, with prototypes whose scores it drops
    their_teacher = OfficialMultiCropModel(copy.deepcopy(teacher), nn.Linear(128, 6, bias=False), normalize=False)
    steps = batches(5, 3)
    official_swav.args.__dict__.update(vars(official_args(config)))
    queue = new_queue(0, None)
    losses, queue = official_swav.train_distill(steps, their_teacher, theirs, sgd(theirs), 0, None, queue)
    means = ours_epochs(ours, [steps])
    torch.testing.assert_close(torch.tensor(means[0]), torch.tensor(sum(losses) / len(losses)), rtol=1e-5, atol=1e-6)
    assert_same_weights(ours.student, theirs.encoder)
    torch.testing.assert_close(ours.base.prototypes.weight, theirs.prototypes.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.base.queue, queue, rtol=1e-5, atol=1e-6)
    assert_same_weights(ours.teacher, their_teacher.encoder)  # frozen, its BN statistics untouched (eval)
    assert not ours.teacher.training and ours.student.training


def test_the_teacher_is_frozen_and_its_raw_embedding_is_the_target():
    config = swav_config(DisCoSwAVConfig, queue_length=0)
    method = DisCoSwAV(build_encoder("r18", "swav", hidden=32), build_encoder("r18", "swav", hidden=32), config)
    method.train()
    crops = batches(6, 1)[0]
    terms = method.training_step(*crops)
    assert set(terms) == {"loss", "ce", "mse"} and all(p.grad is None for p in method.teacher.parameters())
    raw = embed_crops(method.teacher, crops)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(len(raw)))  # not L2-normalised, as the script
    assert not any(p.requires_grad for p in method.teacher.parameters())


def test_crops_of_one_width_share_a_backbone_call_and_the_head_sees_them_all():
    crops = [torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 32, 32)]
    assert [len(group) for group in resolution_groups(crops)] == [2, 1, 1]  # consecutive, as unique_consecutive
    encoder = build_encoder("r18", "swav", hidden=32).eval()
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(encoder.project(encoder.features(x)), encoder(x))  # the head split off is the same
    embedded = embed_crops(encoder, [x, x[:, :, :16, :16]])
    torch.testing.assert_close(embedded[:3], encoder(x))  # eval mode: a group's rows are its own forward


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nmb_crops": (2,)}, "one entry per kind of crop"),
        ({"crops_for_assign": (0, 4)}, "must name distinct crops among the 4"),
        ({"crops_for_assign": (1, 1)}, "distinct"),
        ({"min_scale_crops": (0.14, 0.5)}, "0 < min_scale <= max_scale <= 1"),
        ({"queue_length": 6}, "multiple of batch_size 4"),
        ({"temperature": 0.0}, "must be positive"),
    ],
)
def test_a_bad_swav_config_is_one_clear_error(change, message):
    values = {**CROPS, **change}
    with pytest.raises(ValueError, match=message):
        SwAVConfig(**values).validate(BATCH)


def test_the_config_declares_its_crops_in_order_and_holds_tuples():
    config = SwAVConfig(nmb_crops=[2, 3], size_crops=[32, 16], min_scale_crops=[0.14, 0.05], max_scale_crops=[1, 0.14])
    crops = config.crops()
    assert [c.size for c in crops] == [32, 32, 16, 16, 16] and (crops[2].min_scale, crops[2].max_scale) == (0.05, 0.14)
    assert isinstance(config.nmb_crops, tuple) and isinstance(config.crops_for_assign, tuple)


def test_swav_refuses_several_processes_in_one_line(monkeypatch):
    from disco import distributed
    from disco.errors import InputError

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(InputError, match="one process"):
        SwAV(build_encoder("r18", "swav", hidden=32), swav_config())
