"""Training health: is a self-supervised encoder learning, or has it collapsed?

This module: the thresholds and the verdict (torch-free: the report reads it); disco/monitor.py: the
metrics on embeddings and the per-epoch monitor the training loop calls. A contrastive run
can look fine in a table and still be collapsed: an InfoNCE near ln(K+1) (chance among the positive
and K queued negatives) or embeddings that all point the same way (mean pairwise cosine near 1).

- mean pairwise cosine: mean of cos(z_i, z_j) over i != j. 1 = one point; ~0 = spread.
- effective rank (Roy & Vetterli 2007): exp(entropy of the singular values of the L2-normalised
  embedding matrix, normalised to sum 1). 1 = all vectors on one line; n = n orthogonal directions.
- alignment (Wang & Isola 2020): E ||f(x) - f(x')||^2 over two views of the same image (lower =
  views agree); uniformity: log E exp(-2 ||f(x) - f(y)||^2) over distinct images (lower = spread).
- InfoNCE / ln(K+1): 1 = the positive is no more likely than a queued negative.

Verdicts (documented thresholds, docs/health.md):
  collapsed  mean pairwise cosine > COLLAPSED_COSINE (0.9), or InfoNCE >= AT_CHANCE (0.97) ln(K+1)
  weak       mean pairwise cosine > SPREAD_COSINE (0.5), or InfoNCE > LEARNING_RATIO (0.85) ln(K+1)
  healthy    otherwise
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COLLAPSED_COSINE = 0.9
SPREAD_COSINE = 0.5
AT_CHANCE = 0.97
LEARNING_RATIO = 0.85
HEALTHY, WEAK, COLLAPSED = "healthy", "weak", "collapsed"


def chance_ratio(info_nce: float, negatives: int) -> float:
    """A contrastive loss as a fraction of ln(K+1), its value when the positive is as likely as each
    of its K negatives: K is MoCo's queue size, 2N-2 for SimCLR's NT-Xent over a batch of N
    (each method declares its K: disco/methods/registry.py `negatives`)."""
    return info_nce / math.log(negatives + 1)


@dataclass(frozen=True)
class Verdict:
    status: str  # healthy | weak | collapsed
    reasons: tuple[str, ...]


def verdict(cosine: float | None, info_nce_ratio: float | None) -> Verdict:
    """The health of a final embedding from its mean pairwise cosine and its InfoNCE / ln(K+1)."""
    collapsed, weak = [], []
    if cosine is not None:
        if cosine > COLLAPSED_COSINE:
            collapsed.append(f"mean pairwise cosine {cosine:.3f} > {COLLAPSED_COSINE}")
        elif cosine > SPREAD_COSINE:
            weak.append(f"mean pairwise cosine {cosine:.3f} > {SPREAD_COSINE}")
    if info_nce_ratio is not None:
        if info_nce_ratio >= AT_CHANCE:
            collapsed.append(f"InfoNCE at {info_nce_ratio:.2f} ln(K+1) (chance)")
        elif info_nce_ratio > LEARNING_RATIO:
            weak.append(f"InfoNCE at {info_nce_ratio:.2f} ln(K+1) > {LEARNING_RATIO}")
    if collapsed:
        return Verdict(COLLAPSED, tuple(collapsed + weak))
    return Verdict(WEAK, tuple(weak)) if weak else Verdict(HEALTHY, ())
