import math

import pytest
import torch
from torch import nn

from disco.health import COLLAPSED, HEALTHY, WEAK, chance_ratio, verdict
from disco.monitor import (
    HealthMonitor,
    HeldOut,
    alignment,
    effective_rank,
    embedding_health,
    mean_pairwise_cosine,
    uniformity,
)


def test_identical_vectors_are_one_point():
    z = torch.tensor([[3.0, 4.0, 0.0]]).repeat(5, 1)
    assert mean_pairwise_cosine(z) == pytest.approx(1.0)
    assert effective_rank(z) == pytest.approx(1.0)
    assert uniformity(z) == pytest.approx(0.0)  # log E exp(0)


def test_orthonormal_vectors_are_spread_and_full_rank():
    z = torch.eye(6) * 2.5  # scale does not matter: everything is L2-normalised first
    assert mean_pairwise_cosine(z) == pytest.approx(0.0, abs=1e-12)
    assert effective_rank(z) == pytest.approx(6.0)
    assert uniformity(z) == pytest.approx(-4.0)  # every pair at squared distance 2: log exp(-2 * 2)


def test_hand_computed_cosine_and_rank():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # pairs: 0, 1/sqrt2, 1/sqrt2
    assert mean_pairwise_cosine(z) == pytest.approx((2 / math.sqrt(2)) / 3)
    normalised = torch.nn.functional.normalize(z, dim=1).double()
    s = torch.linalg.svdvals(normalised)
    p = s / s.sum()
    assert effective_rank(z) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    assert 1.0 < effective_rank(z) < 2.0


def test_alignment_is_zero_for_equal_views_and_four_for_opposite():
    z = torch.randn(8, 4)
    assert alignment(z, z * 3) == pytest.approx(0.0, abs=1e-12)
    assert alignment(z, -z) == pytest.approx(4.0)


def test_chance_ratio():
    assert chance_ratio(math.log(4097), 4096) == pytest.approx(1.0)
    assert chance_ratio(0.5 * math.log(4097), 4096) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("cosine", "ratio", "status"),
    [
        (0.2, 0.5, HEALTHY),
        (0.6, 0.5, WEAK),
        (0.2, 0.9, WEAK),
        (0.95, 0.5, COLLAPSED),
        (0.2, 0.99, COLLAPSED),
        (None, None, HEALTHY),
    ],
)
def test_verdict_thresholds(cosine, ratio, status):
    result = verdict(cosine, ratio)
    assert result.status == status
    assert bool(result.reasons) == (status != HEALTHY)


class Constant(nn.Module):
    """A collapsed encoder: every image to the same embedding and the same features."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))
        self.mode_seen: list[bool] = []

    def forward(self, x):
        self.mode_seen.append(self.training)
        return self.weight.expand(x.shape[0], -1) + 0 * x.flatten(1)[:, :1]

    def features(self, x):
        return self.forward(x)


def test_monitor_flags_a_collapsed_encoder_in_eval_mode_and_restores_train_mode():
    images = torch.randn(16, 3, 4, 4)
    encoder = Constant().train()
    monitor = HealthMonitor(HeldOut(images, images, images.flip(0)), negatives=64, knn=lambda e: 12.5, knn_every=2)
    entry = monitor(encoder, 2, 4, {"ce": math.log(65)})
    assert entry["emb_cosine"] == pytest.approx(1.0)
    assert entry["emb_erank"] == pytest.approx(1.0)
    assert entry["ce_chance_ratio"] == pytest.approx(1.0)
    assert entry["knn_top1"] == 12.5
    assert "knn_top1" not in monitor(encoder, 3, 4, {"ce": 1.0})  # only every knn_every epochs (and the last)
    assert verdict(entry["emb_cosine"], entry["ce_chance_ratio"]).status == COLLAPSED
    assert encoder.mode_seen and not any(encoder.mode_seen)  # measured in eval mode
    assert encoder.training


def test_embedding_health_keys():
    z = torch.randn(10, 8)
    metrics = embedding_health(z, z, z, z)
    assert set(metrics) == {"emb_cosine", "emb_erank", "feat_cosine", "feat_erank", "alignment", "uniformity"}
    assert metrics["alignment"] == pytest.approx(0.0, abs=1e-12)
