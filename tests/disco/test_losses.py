import math

import pytest
import torch
from torch.nn import functional as F

from disco.losses import (
    contrastive_logits,
    disco_loss,
    disco_terms,
    info_nce,
    mse_sum,
    nt_xent,
    pairwise_distances,
    rkd_angle,
    rkd_distance,
    rkd_loss,
    seed_logits,
    seed_loss,
    soft_cross_entropy,
    weighted_mse,
)
from disco.methods.registry import in_batch_negatives


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


def points(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# a right angle at the origin (student) against three collinear points (teacher)
RIGHT_ANGLE = points([0.0, 0.0], [1.0, 0.0], [0.0, 1.0])
COLLINEAR = points([0.0, 0.0], [1.0, 0.0], [2.0, 0.0])


def test_pairwise_distances_are_euclidean_with_a_zero_diagonal():
    expected = points([0.0, 1.0, 1.0], [1.0, 0.0, math.sqrt(2)], [1.0, math.sqrt(2), 0.0])
    assert torch.allclose(pairwise_distances(RIGHT_ANGLE), expected, atol=1e-12)


def test_rkd_distance_matches_hand_computed_smooth_l1_of_mean_normalised_distances():
    student_mean = (4 + 2 * math.sqrt(2)) / 6  # the 6 positive entries: 1, 1, sqrt2 twice each
    teacher_mean = (2 * 1 + 2 * 2 + 2 * 1) / 6
    differences = [
        1 / student_mean - 1 / teacher_mean,  # (0, 1)
        1 / student_mean - 2 / teacher_mean,  # (0, 2)
        math.sqrt(2) / student_mean - 1 / teacher_mean,  # (1, 2)
    ]
    assert all(abs(d) < 1 for d in differences)  # the quadratic branch of smooth-L1 (beta 1)
    by_hand = 2 * sum(0.5 * d * d for d in differences) / 9  # both triangles, mean over N^2 = 9
    assert math.isclose(float(rkd_distance(RIGHT_ANGLE, COLLINEAR)), by_hand, rel_tol=1e-12)
    assert float(rkd_distance(COLLINEAR, 3 * COLLINEAR)) == 0.0  # scale-free


def test_rkd_angle_matches_hand_computed_triplet_cosines():
    # per apex i the two cross terms (j != k, both != i) differ; every other entry is 0 - 0 or 1 - 1
    inv_sqrt2 = 1 / math.sqrt(2)
    cross = [0.0 - 1.0, inv_sqrt2 - (-1.0), inv_sqrt2 - 1.0]  # apex 0, 1, 2: student cos - teacher cos

    def smooth_l1(x):
        return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5

    by_hand = 2 * sum(smooth_l1(d) for d in cross) / 27
    assert math.isclose(by_hand, 3.5 / 27, rel_tol=1e-12)
    assert math.isclose(float(rkd_angle(RIGHT_ANGLE, COLLINEAR)), by_hand, rel_tol=1e-12)


def test_rkd_loss_adds_weighted_rkd_terms_to_ce_and_the_mse_terms_only_with_use_mse():
    torch.manual_seed(0)
    q, qk, tq, tqk = (F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1) for _ in range(4))
    logits = torch.randn(4, 5, dtype=torch.float64)
    ce = float(info_nce(logits))
    distance, angle = float(rkd_distance(q, tq)), float(rkd_angle(q, tq))
    rkd = rkd_loss(logits, q, qk, tq, tqk, 32.0, distance_weight=2.0, angle_weight=3.0)
    assert math.isclose(float(rkd["loss"]), ce + 2 * distance + 3 * angle, rel_tol=1e-12)
    with_mse = rkd_loss(logits, q, qk, tq, tqk, 32.0, use_mse=True)
    mse = float(weighted_mse(q, tq, 32.0) + weighted_mse(qk, tqk, 32.0))
    assert math.isclose(float(with_mse["loss"]), ce + distance + angle + mse, rel_tol=1e-12)


def test_rkd_over_per_gpu_groups_is_the_mean_of_each_groups_terms():
    torch.manual_seed(1)
    q, qk, tq, tqk = (F.normalize(torch.randn(8, 8, dtype=torch.float64), dim=1) for _ in range(4))
    logits = torch.randn(8, 5, dtype=torch.float64)
    grouped = rkd_loss(logits, q, qk, tq, tqk, 32.0, groups=2)
    halves = [(q[:4], tq[:4]), (q[4:], tq[4:])]
    assert math.isclose(
        float(grouped["rkd_distance"]), sum(float(rkd_distance(s, t)) for s, t in halves) / 2, rel_tol=1e-12
    )
    assert math.isclose(float(grouped["rkd_angle"]), sum(float(rkd_angle(s, t)) for s, t in halves) / 2, rel_tol=1e-12)
    assert not math.isclose(float(grouped["rkd_angle"]), float(rkd_angle(q, tq)), rel_tol=1e-3)


def test_seed_logits_put_the_own_teacher_embedding_first():
    student, teacher = unit([1.0, 0.0]), unit([0.0, 1.0])
    queue = unit([1.0, 0.0], [-1.0, 0.0]).T
    expected = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64) / 0.5
    assert torch.allclose(seed_logits(student, teacher, queue, 0.5), expected)


def test_seed_loss_is_the_soft_cross_entropy_to_the_teachers_distribution_by_hand():
    student, teacher = unit([1.0, 0.0]), unit([0.0, 1.0])
    queue = unit([1.0, 0.0]).T  # one queued embedding e = (1, 0)
    # teacher (T=1): logits [t.t, t.e] = [1, 0]; student (T=1): [s.t, s.e] = [0, 1]
    p_self, p_queue = math.e / (math.e + 1), 1 / (math.e + 1)
    log_z = math.log(1 + math.e)
    by_hand = -(p_self * (0 - log_z) + p_queue * (1 - log_z))
    assert math.isclose(by_hand, log_z - p_queue, rel_tol=1e-12)
    terms = seed_loss(student, teacher, queue, student_temperature=1.0, teacher_temperature=1.0)
    assert math.isclose(float(terms["loss"]), by_hand, rel_tol=1e-12)


def test_seed_sharp_teacher_temperature_makes_the_target_one_hot_on_the_own_column():
    student, teacher = unit([1.0, 1.0], [1.0, -1.0]), unit([1.0, 0.0], [0.0, 1.0])
    queue = unit([0.0, 1.0], [-1.0, 0.0]).T
    logits = seed_logits(student, teacher, queue, 0.2)
    one_hot = F.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    sharp = seed_loss(student, teacher, queue, 0.2, teacher_temperature=1e-3)["loss"]
    assert math.isclose(float(sharp), float(one_hot), rel_tol=1e-9)


def test_soft_cross_entropy_with_one_hot_targets_is_cross_entropy():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    targets = F.one_hot(torch.tensor([1, 2]), 3).double()
    assert math.isclose(
        float(soft_cross_entropy(logits, targets)), float(F.cross_entropy(logits, torch.tensor([1, 2]))), rel_tol=1e-12
    )


def _random_unit(n: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=1)


@pytest.mark.parametrize(
    "loss",
    [
        lambda s, t: rkd_distance(s, t),
        lambda s, t: rkd_angle(s, t),
        lambda s, t: seed_loss(s, t, _random_unit(8, 6, 3).T, 0.2, 0.01)["loss"],
        lambda s, t: rkd_loss(t @ s.T, s, s.flip(0), t, t.flip(0), 32.0, use_mse=True)["loss"],
        lambda s, t: nt_xent(F.normalize(s, dim=1), F.normalize(s.flip(0) + t, dim=1), 0.2),
        lambda s, t: disco_terms(nt_xent(s, s.flip(0), 0.5), s, s.flip(0), t, t.flip(0), 32.0)["loss"],
    ],
    ids=["rkd_distance", "rkd_angle", "seed", "rkd_disco", "nt_xent", "disco_over_simclr"],
)
def test_student_gradients_match_finite_differences_in_float64(loss):
    student = _random_unit(5, 6, 1).requires_grad_(True)
    teacher = _random_unit(5, 6, 2)
    assert torch.autograd.gradcheck(lambda s: loss(s, teacher), (student,), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- SimCLR's NT-Xent


def test_nt_xent_matches_a_hand_computed_value():
    """Two images, two views: each of the 4 embeddings has 1 positive and 2 negatives."""
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.6, 0.8], [0.8, -0.6]])
    t = 0.5
    z = torch.cat([z1, z2])
    similarities = (z @ z.T / t).tolist()
    positives = {0: 2, 1: 3, 2: 0, 3: 1}
    expected = 0.0
    for i, j in positives.items():
        others = [similarities[i][k] for k in range(4) if k != i]
        expected += -similarities[i][j] + math.log(sum(math.exp(v) for v in others))
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected / 4, rel=1e-6)


def test_nt_xent_at_chance_is_ln_2n_minus_1_and_low_when_views_agree():
    """Identical embeddings everywhere: every candidate equally likely, ln(2N-1) (the health
    monitor's chance level for SimCLR, K = 2N-2). Views that agree and images that differ: near 0."""
    n = 8
    same = F.normalize(torch.ones(n, 4), dim=1)
    assert nt_xent(same, same, 0.2).item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)
    distinct = torch.eye(n)
    assert nt_xent(distinct, distinct, 0.05).item() < 1e-3
    assert in_batch_negatives(None, n) == 2 * n - 2


def test_disco_over_a_base_loss_adds_both_mse_terms_to_the_base_loss():
    q, qk, tq, tqk = (_random_unit(4, 6, seed) for seed in (1, 2, 3, 4))
    base = nt_xent(q, qk, 0.2)
    terms = disco_terms(base, q, qk, tq, tqk, 32.0)
    expected = base + 32.0 * ((q - tq).pow(2).sum() + (qk - tqk).pow(2).sum()) / 4
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-9)
    only_mse = disco_terms(base, q, qk, tq, tqk, 32.0, ce_weight=0.0)
    assert only_mse["loss"].item() == pytest.approx((expected - base).item(), rel=1e-9)
