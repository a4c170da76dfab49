"""Loss terms as pure functions (docs/protocol.md section 1.4). Embeddings are L2-normalised."""

from __future__ import annotations

from collections.abc import Callable

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
    return disco_terms(info_nce(logits), q, qk, teacher_q, teacher_qk, mse_per_sample_weight, ce_weight)


def disco_terms(
    ce: torch.Tensor,
    q: torch.Tensor,
    qk: torch.Tensor,
    teacher_q: torch.Tensor,
    teacher_qk: torch.Tensor,
    mse_per_sample_weight: float | None,
    ce_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """DisCo on any base method: its contrastive loss `ce` (InfoNCE for MoCo-v2, NT-Xent for SimCLR)
    plus the MSE of each view's student embedding to the frozen teacher's."""
    mse_view1 = weighted_mse(q, teacher_q, mse_per_sample_weight)
    mse_view2 = weighted_mse(qk, teacher_qk, mse_per_sample_weight)
    return {"loss": ce_weight * ce + mse_view1 + mse_view2, "ce": ce, "mse_v1": mse_view1, "mse_v2": mse_view2}


# ---------------------------------------------------------------- SimCLR (Chen et al., ICML 2020)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the 2N L2-normalised embeddings of two views: each one's positive is the other
    view of its image, its negatives the other 2N-2 embeddings of the batch; mean over the 2N. At
    chance (every candidate equally likely) it is ln(2N-1)."""
    n = z1.shape[0]
    embeddings = torch.cat([z1, z2])
    similarities = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=embeddings.device)
    logits = similarities.masked_fill(self_mask, float("-inf"))
    index = torch.arange(n, device=embeddings.device)
    return F.cross_entropy(logits, torch.cat([index + n, index]))


# ---------------------------------------------------------------- RKD (DisCo/loss.py, docs/protocol.md 3.2)


def pairwise_distances(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """RKD's `pdist`: Euclidean distances from the squared ones clamped at eps, diagonal set to 0."""
    squared_norms = embeddings.pow(2).sum(dim=1)
    squared = (squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2 * embeddings @ embeddings.T).clamp(min=eps)
    distances = squared.sqrt().clone()
    index = torch.arange(len(embeddings), device=embeddings.device)
    distances[index, index] = 0
    return distances


def _mean_normalised_distances(embeddings: torch.Tensor) -> torch.Tensor:
    distances = pairwise_distances(embeddings)
    return distances / distances[distances > 0].mean()


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RkdDistance: smooth-L1 (beta 1, mean over all N^2 entries) between the distance matrices,
    each divided by the mean of its positive entries; the teacher side is a constant."""
    with torch.no_grad():
        teacher_distances = _mean_normalised_distances(teacher)
    return F.smooth_l1_loss(_mean_normalised_distances(student), teacher_distances, reduction="mean")


def _triplet_cosines(embeddings: torch.Tensor) -> torch.Tensor:
    """cos between (e_j - e_i) and (e_k - e_i) for all i, j, k, flattened (N^3 values)."""
    differences = F.normalize(embeddings.unsqueeze(0) - embeddings.unsqueeze(1), p=2, dim=2)
    return torch.bmm(differences, differences.transpose(1, 2)).view(-1)


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKdAngle: smooth-L1 (mean) between the student's and the teacher's triplet angle cosines."""
    with torch.no_grad():
        teacher_cosines = _triplet_cosines(teacher)
    return F.smooth_l1_loss(_triplet_cosines(student), teacher_cosines, reduction="mean")


def grouped_mean(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    student: torch.Tensor,
    teacher: torch.Tensor,
    groups: int,
) -> torch.Tensor:
    """A batch-relational loss averaged over `groups` equal sub-batches: what DDP's gradient average
    of per-GPU losses optimises when one device emulates several GPUs' batches."""
    return torch.stack([loss(s, t) for s, t in zip(student.chunk(groups), teacher.chunk(groups))]).mean()


def rkd_loss(
    logits: torch.Tensor,
    q: torch.Tensor,
    qk: torch.Tensor,
    teacher_q: torch.Tensor,
    teacher_qk: torch.Tensor,
    mse_per_sample_weight: float | None,
    ce_weight: float = 1.0,
    distance_weight: float = 1.0,
    angle_weight: float = 1.0,
    use_mse: bool = False,
    groups: int = 1,
) -> dict[str, torch.Tensor]:
    """CE + w_d RKD_distance(q, t_q) + w_a RKD_angle(q, t_q) [+ DisCo's MSE terms with `use_mse`]:
    DisCo/main_moco_distill_rkd.py L457-474, on view 1 over each per-GPU batch (`groups` of them)."""
    terms = disco_loss(logits, q, qk, teacher_q, teacher_qk, mse_per_sample_weight, ce_weight)
    distance = grouped_mean(rkd_distance, q, teacher_q, groups)
    angle = grouped_mean(rkd_angle, q, teacher_q, groups)
    loss = ce_weight * terms["ce"] + distance_weight * distance + angle_weight * angle
    if use_mse:
        loss = loss + terms["mse_v1"] + terms["mse_v2"]
    return terms | {"loss": loss, "rkd_distance": distance, "rkd_angle": angle}


# ---------------------------------------------------------------- SEED (ICLR 2021)


def seed_logits(
    embedding: torch.Tensor, teacher: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """[N, 1+K]: similarity to the sample's own teacher embedding first, then to the queued teacher
    embeddings (queue is [dim, K]), over the temperature."""
    own = (embedding * teacher).sum(dim=1, keepdim=True)
    return torch.cat([own, embedding @ queue.detach()], dim=1) / temperature


def soft_cross_entropy(logits: torch.Tensor, target_probabilities: torch.Tensor) -> torch.Tensor:
    """-sum_k p_k log softmax(logits)_k, mean over the batch."""
    return -(target_probabilities * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def seed_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    queue: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
) -> dict[str, torch.Tensor]:
    """The student matches the teacher's softmax similarity distribution over [teacher self, queue]."""
    teacher = teacher.detach()
    targets = F.softmax(seed_logits(teacher, teacher, queue, teacher_temperature), dim=1)
    loss = soft_cross_entropy(seed_logits(student, teacher, queue, student_temperature), targets)
    return {"loss": loss, "soft_ce": loss}


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """SwAV's soft codes (main_swav.py `distributed_sinkhorn`, one process): [B, K] prototype scores
    to [B, K] assignments whose rows sum to 1 and that spread the batch equally over the K prototypes,
    by `iterations` rounds of Sinkhorn-Knopp on exp(scores / epsilon); same order of operations."""
    codes = torch.exp(scores / epsilon).t()  # K x B, the paper's notation
    prototypes, batch = codes.shape
    codes = codes / codes.sum()
    for _ in range(iterations):
        codes = codes / codes.sum(dim=1, keepdim=True)  # each prototype's total weight: 1/K
        codes = codes / prototypes
        codes = codes / codes.sum(dim=0, keepdim=True)  # each sample's total weight: 1/B
        codes = codes / batch
    return (codes * batch).t()


def swav_loss(
    scores: torch.Tensor,
    batch: int,
    crops_for_assign: tuple[int, ...],
    temperature: float,
    epsilon: float,
    iterations: int,
    queued_scores: list[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """SwAV's swapped prediction (main_swav.py `train`): `scores` is [crops * B, K], crop after crop;
    each crop of `crops_for_assign` gets codes by Sinkhorn (computed with the queue's scores in front
    when `queued_scores[i]` is given, then cut to the batch) that every other crop predicts through a
    softmax at `temperature`; averaged over the predicting crops, then over the assigned ones."""
    crops = scores.shape[0] // batch
    loss = scores.new_zeros(())
    for index, crop in enumerate(crops_for_assign):
        assigned = scores[batch * crop : batch * (crop + 1)].detach()
        queued = queued_scores[index] if queued_scores else None
        if queued is not None:
            assigned = torch.cat((queued, assigned))
        codes = sinkhorn(assigned, epsilon, iterations)[-batch:]
        subloss = scores.new_zeros(())
        for other in (view for view in range(crops) if view != crop):
            predicted = F.log_softmax(scores[batch * other : batch * (other + 1)] / temperature, dim=1)
            subloss = subloss - torch.mean(torch.sum(codes * predicted, dim=1))
        loss = loss + subloss / (crops - 1)
    return loss / len(crops_for_assign)


def disco_swav_loss(
    swav: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor, assigned_crops: int, mse_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """DisCo over SwAV (DisCo-pytorch swav-master/main_swav_distill.py L406, L436-437): F.mse_loss, a
    mean over every element of every crop's embedding, added to the sum of the swapped-prediction
    losses over the assigned crops before that sum is divided by their number. `swav` is swav_loss (the
    sum already divided), so the MSE enters divided by the number of assigned crops."""
    mse = F.mse_loss(student, teacher.detach())
    return {"loss": swav + mse_weight * mse / assigned_crops, "ce": swav, "mse": mse}
