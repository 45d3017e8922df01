"""Statistics of a leaderboard: mean ± sample standard deviation over seeds, and the paired
t-test behind the '≈ best' mark. Standard library and numpy only."""

from __future__ import annotations

import math
import statistics

import numpy as np


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan with one value; nan where a value is nan:
    ``statistics.stdev`` raises on one)."""
    if len(xs) < 2:
        return float(np.mean(xs)), float("nan")
    if not all(math.isfinite(x) for x in xs):
        return float(np.mean(xs)), float("nan")
    return float(np.mean(xs)), statistics.stdev(xs)


# two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """t_{0.975, df}: the table up to 30 degrees of freedom, then the Cornish-Fisher expansion
    around the normal quantile (within 1e-3 there)."""
    if df < 1:
        raise ValueError(f"t975 needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def paired_contains_zero(diffs: list[float]) -> bool:
    """Whether the 95 % interval of the mean of paired differences, mean ± t_{0.975, n−1} ·
    sd / √n, contains 0 (``diffs`` has at least 2 values)."""
    d = np.asarray(diffs, dtype=float)
    half = t975(len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return bool(abs(d.mean()) <= half)
