"""Loss terms as pure functions (docs/protocol.md section 1.4). Embeddings are L2-normalised."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def contrastive_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """[N, 1+K] logits: the positive q.k first, then q against every queued key (queue is [dim, K])."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.detach()
    return torch.cat([positive, negatives], dim=1) / temperature


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive at index 0, mean over the batch (nn.CrossEntropyLoss())."""
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)


def mse_sum(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """nn.MSELoss(reduction='sum'): summed over the batch and the embedding dims."""
    return (student - teacher).pow(2).sum()


def weighted_mse(student: torch.Tensor, teacher: torch.Tensor, per_sample_weight: float | None) -> torch.Tensor:
    """The DisCo MSE term.

    per_sample_weight=None is the official literal `MSELoss(reduction='sum')` over the local batch,
    i.e. weight N_local on the per-sample mean. A number w gives `w * mean_i ||t_i - s_i||^2`; the
    paper's effective weight is w = 32 (the per-GPU batch of 256 over 8 GPUs), whatever the layout.
    """
    if per_sample_weight is None:
        return mse_sum(student, teacher)
    return per_sample_weight * mse_sum(student, teacher) / student.shape[0]


def disco_loss(
    logits: torch.Tensor,
    q: torch.Tensor,
    qk: torch.Tensor,
    teacher_q: torch.Tensor,
    teacher_qk: torch.Tensor,
    mse_per_sample_weight: float | None,
    ce_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """L = CE(logits, 0) + MSE(t(v1), s(v1)) + MSE(t(v2), s(v2)); `ce_weight=0` is `--only-mse`."""
    ce = info_nce(logits)
    mse_view1 = weighted_mse(q, teacher_q, mse_per_sample_weight)
    mse_view2 = weighted_mse(qk, teacher_qk, mse_per_sample_weight)
    return {"loss": ce_weight * ce + mse_view1 + mse_view2, "ce": ce, "mse_v1": mse_view1, "mse_v2": mse_view2}
