"""Seed statistics: mean, sample standard deviation and the Student-t 95% interval of the mean."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% Student-t critical values by degrees of freedom (scipy is not a dependency).
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    21: 2.080,
    22: 2.074,
    23: 2.069,
    24: 2.064,
    25: 2.060,
    26: 2.056,
    27: 2.052,
    28: 2.048,
    29: 2.045,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t_critical(df: int) -> float:
    """The tabulated value at the largest df <= `df` (conservative between rows); 1.96 beyond 120."""
    if df > max(T_975):
        return 1.960
    return T_975[max(row for row in T_975 if row <= df)]


@dataclass(frozen=True)
class Stat:
    values: tuple[float, ...]  # one per seed that is done

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:  # sample standard deviation (n - 1)
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.std is None:
            return None
        half = t_critical(self.n - 1) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half
