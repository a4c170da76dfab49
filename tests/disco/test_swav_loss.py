"""SwAV's loss (disco/losses.py sinkhorn, swav_loss) and DisCo's over it (disco_swav_loss): hand-computed
values, float64 gradchecks, and the loss and its gradient against the official main_swav.py code on
the same scores (tests/disco/test_swav_method.py: whole training steps)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from disco.losses import disco_swav_loss, sinkhorn, swav_loss
from tests.disco.official_swav import distributed_sinkhorn, official_loss

OFFICIAL = {"epsilon": 0.05, "sinkhorn_iterations": 3, "temperature": 0.1, "world_size": 1}


def test_sinkhorn_by_hand_on_two_samples_and_two_prototypes():
    # exp([[ln 3, 0], [0, 0]]) = [[3, 1], [1, 1]]; /6; rows (per prototype) to 1/2; columns to 1/2
    scores = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]], dtype=torch.float64)
    codes = sinkhorn(scores, epsilon=1.0, iterations=1)
    # K x B = [[3, 1], [1, 1]]: rows /4 and /2 -> [[3/4, 1/4], [1/2, 1/2]] / 2; columns -> sample 0
    # [3/8, 1/4] -> [3/5, 2/5], sample 1 [1/8, 1/4] -> [1/3, 2/3]
    expected = torch.tensor([[3 / 5, 2 / 5], [1 / 3, 2 / 3]], dtype=torch.float64)
    assert torch.allclose(codes, expected, atol=1e-12)


def test_sinkhorn_codes_are_distributions_that_share_the_batch_equally_over_prototypes():
    scores = F.normalize(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    codes = sinkhorn(scores, epsilon=0.05, iterations=50)
    assert torch.allclose(codes.sum(dim=1), torch.ones(64), atol=1e-5)
    assert torch.allclose(codes.sum(dim=0), torch.full((8,), 64 / 8), atol=1e-3)


def test_swav_loss_by_hand_with_uniform_codes_is_the_mean_cross_entropy_to_the_uniform_target():
    # constant scores: codes are uniform (1/K) and every predicted softmax is uniform: loss = ln K
    scores = torch.zeros(2 * 3, 4)
    assert torch.isclose(swav_loss(scores, 3, (0, 1), 0.1, 0.05, 3), torch.tensor(math.log(4)))


def test_swav_loss_by_hand_on_two_crops_of_two_samples_over_two_prototypes():
    # epsilon 1, one Sinkhorn iteration, temperature 1. Crop 0's codes: the sinkhorn test's
    # [[3/5, 2/5], [1/3, 2/3]]. Crop 1's scores [[0, ln 2], [ln 2, 0]]: exp^T = [[1, 2], [2, 1]], every row
    # and column sums alike, so its codes are its softmax: [[1/3, 2/3], [2/3, 1/3]]. Each crop predicts the
    # other's codes through its softmax: crop 1's is [[1/3, 2/3], [2/3, 1/3]], crop 0's [[3/4, 1/4], [1/2, 1/2]].
    ln = math.log
    scores = torch.tensor([[ln(3), 0.0], [0.0, 0.0], [0.0, ln(2)], [ln(2), 0.0]], dtype=torch.float64)
    crop0_codes_from_crop1 = (-(3 / 5 * ln(1 / 3) + 2 / 5 * ln(2 / 3)) - (1 / 3 * ln(2 / 3) + 2 / 3 * ln(1 / 3))) / 2
    crop1_codes_from_crop0 = (-(1 / 3 * ln(3 / 4) + 2 / 3 * ln(1 / 4)) - (2 / 3 * ln(1 / 2) + 1 / 3 * ln(1 / 2))) / 2
    expected = (crop0_codes_from_crop1 + crop1_codes_from_crop0) / 2
    loss = swav_loss(scores, 2, (0, 1), temperature=1.0, epsilon=1.0, iterations=1)
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)


def test_disco_over_swav_adds_the_mean_squared_error_divided_by_the_assigned_crops_by_hand():
    # main_swav_distill.py L406, L436-437: (sum of the swapped predictions + mse) / 2 = swav + mse / 2
    student, teacher = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    terms = disco_swav_loss(torch.tensor(2.0), student, teacher, assigned_crops=2)
    assert terms["mse"].item() == 2.5 and terms["loss"].item() == 2.0 + 2.5 / 2 and terms["ce"].item() == 2.0
    assert disco_swav_loss(torch.tensor(2.0), student, teacher, 2, mse_weight=0.0)["loss"].item() == 2.0


def test_disco_over_swav_gradients_match_finite_differences_in_float64():
    # the student's embeddings reach the loss through their scores and the MSE; the assigned crops
    # (whose codes are constants to autograd) are held fixed, as in the SwAV gradcheck
    generator = torch.Generator().manual_seed(2)
    prototypes = F.normalize(torch.randn(5, 8, dtype=torch.float64, generator=generator), dim=1)
    assigned = F.normalize(torch.randn(2 * 3, 8, dtype=torch.float64, generator=generator), dim=1)
    teacher = torch.randn(4 * 3, 8, dtype=torch.float64, generator=generator)
    others = torch.randn(2 * 3, 8, dtype=torch.float64, generator=generator).requires_grad_(True)

    def loss(other_crops: torch.Tensor) -> torch.Tensor:
        student = torch.cat([assigned, F.normalize(other_crops, dim=1)])
        swav = swav_loss(student @ prototypes.t(), 3, (0, 1), 0.1, 0.5, 3)
        return disco_swav_loss(swav, student, teacher, 2)["loss"]

    assert torch.autograd.gradcheck(loss, (others,), eps=1e-6, atol=1e-6)


def test_swav_loss_gradients_match_finite_differences_in_float64():
    # the codes are constants to autograd (SwAV's stop-gradient): vary only the crop that is never
    # assigned, whose scores reach the loss through its predictions alone
    generator = torch.Generator().manual_seed(1)
    assigned = torch.randn(2 * 4, 5, dtype=torch.float64, generator=generator)
    other = torch.randn(4, 5, dtype=torch.float64, generator=generator).requires_grad_(True)

    def loss(crop: torch.Tensor) -> torch.Tensor:
        return swav_loss(torch.cat([assigned, crop]), 4, (0, 1), 0.1, 0.5, 3)

    assert torch.autograd.gradcheck(loss, (other,), eps=1e-6, atol=1e-6)


def _step(seed: int, use_queue: bool):
    generator = torch.Generator().manual_seed(seed)
    batch, crops, dim, prototypes = 8, 4, 16, 10
    embedding = F.normalize(torch.randn(crops * batch, dim, generator=generator), dim=1)
    weight = F.normalize(torch.randn(prototypes, dim, generator=generator), dim=1).requires_grad_(True)
    queue = F.normalize(torch.randn(2, 3 * batch, dim, generator=generator), dim=2) if use_queue else None
    return batch, crops, embedding, weight, queue


@pytest.mark.parametrize("use_queue", [False, True])
def test_one_step_equals_the_official_code_on_the_same_weights_and_batch(use_queue):
    batch, crops, embedding, weight, queue = _step(3, use_queue)
    namespace = SimpleNamespace(**OFFICIAL, crops_for_assign=[0, 1], nmb_crops=[2, crops - 2])
    theirs_weight = weight.detach().clone().requires_grad_(True)
    theirs = official_loss(embedding @ theirs_weight.t(), embedding, batch, queue.clone() if use_queue else None,
                           theirs_weight.detach(), namespace)  # fmt: skip
    theirs.backward()
    queued = [queue[i] @ weight.detach().t() for i in range(2)] if queue is not None else None
    ours = swav_loss(embedding @ weight.t(), batch, (0, 1), 0.1, 0.05, 3, queued)
    ours.backward()
    assert torch.equal(ours.detach(), theirs.detach()), (ours.item(), theirs.item())
    assert weight.grad is not None and theirs_weight.grad is not None
    assert torch.equal(weight.grad, theirs_weight.grad)


def test_sinkhorn_equals_the_official_one():
    from tests.disco import official_swav

    official_swav.args.__dict__.update(OFFICIAL)
    scores = torch.randn(32, 12, generator=torch.Generator().manual_seed(4))
    assert torch.equal(sinkhorn(scores, 0.05, 3), distributed_sinkhorn(scores.clone()))
