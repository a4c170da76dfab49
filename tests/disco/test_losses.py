import math

import torch
from torch.nn import functional as F

from disco.losses import contrastive_logits, disco_loss, info_nce, mse_sum, weighted_mse


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=1)


def test_contrastive_logits_positive_first_and_scaled_by_temperature():
    q = unit([1.0, 0.0], [0.0, 1.0])
    k = unit([1.0, 0.0], [1.0, 0.0])
    queue = unit([0.0, 1.0], [-1.0, 0.0]).T  # [dim, K]
    logits = contrastive_logits(q, k, queue, temperature=0.2)
    expected = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64) / 0.2
    assert torch.allclose(logits, expected)


def test_info_nce_matches_hand_computed_cross_entropy():
    logits = torch.tensor([[5.0, 0.0, -5.0], [0.0, 5.0, 0.0]], dtype=torch.float64)
    by_hand = [-(5.0 - math.log(math.exp(5) + 1 + math.exp(-5))), -(0.0 - math.log(1 + math.exp(5) + 1))]
    assert math.isclose(float(info_nce(logits)), sum(by_hand) / 2, rel_tol=1e-12)


def test_mse_sum_is_sum_over_batch_and_dims_and_equals_2_minus_2cos_for_unit_vectors():
    s = unit([1.0, 0.0], [0.0, 1.0], [1.0, 1.0])
    t = unit([0.0, 1.0], [0.0, 1.0], [1.0, -1.0])
    assert math.isclose(float(mse_sum(s, t)), 2.0 + 0.0 + 2.0, rel_tol=1e-12)
    cosines = (s * t).sum(dim=1)
    assert math.isclose(float(mse_sum(s, t)), float((2 - 2 * cosines).sum()), rel_tol=1e-12)


def test_literal_sum_weight_grows_with_local_batch_while_paper_weight_does_not():
    torch.manual_seed(0)
    s, t = F.normalize(torch.randn(64, 128), dim=1), F.normalize(torch.randn(64, 128), dim=1)
    per_sample_mean = float(mse_sum(s, t)) / 64
    # literal official reduction: weight = local batch (64 here, 32 on the paper's 8 GPUs)
    assert math.isclose(float(weighted_mse(s, t, None)), 64 * per_sample_mean, rel_tol=1e-6)
    # the paper's effective weight is 32 whatever the local batch
    assert math.isclose(float(weighted_mse(s, t, 32.0)), 32 * per_sample_mean, rel_tol=1e-6)
    # on a local batch of exactly 32, both agree: that is the paper's setting
    assert math.isclose(
        float(weighted_mse(s[:32], t[:32], None)), float(weighted_mse(s[:32], t[:32], 32.0)), rel_tol=1e-6
    )


def test_disco_loss_is_ce_plus_both_mse_terms_and_only_mse_drops_ce():
    q, qk = unit([1.0, 0.0], [0.0, 1.0]), unit([1.0, 1.0], [0.0, 1.0])
    tq, tqk = unit([0.0, 1.0], [0.0, 1.0]), unit([1.0, 0.0], [1.0, 0.0])
    logits = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    terms = disco_loss(logits, q, qk, tq, tqk, mse_per_sample_weight=None)
    ce = float(info_nce(logits))
    # view 1: (2 + 0) ; view 2: (2 - 2 cos45) + 2
    assert math.isclose(float(terms["mse_v1"]), 2.0, rel_tol=1e-12)
    assert math.isclose(float(terms["mse_v2"]), (2 - 2 * math.cos(math.pi / 4)) + 2.0, rel_tol=1e-12)
    assert math.isclose(float(terms["loss"]), ce + float(terms["mse_v1"]) + float(terms["mse_v2"]), rel_tol=1e-12)
    only_mse = disco_loss(logits, q, qk, tq, tqk, mse_per_sample_weight=None, ce_weight=0.0)
    assert math.isclose(float(only_mse["loss"]), float(terms["mse_v1"] + terms["mse_v2"]), rel_tol=1e-12)
