"""Fitness ranks as nyto's rank() and centered_rank() define them (docs/language.md).

rank(f): 0-based ascending ranks, ties get the mean of the ranks they span: scipy's
`rankdata(f, method="average") - 1`, which is what evosax's centered-rank fitness shaping uses
(evosax/core/fitness_shaping.py, `_rank_fitness`). Like evosax, a NaN fitness ranks as +inf
(worst, when lower is better).
centered_rank(f) = rank / (M - 1) - 0.5, in [-0.5, 0.5]; 0 for a single member (M - 1 = 0).
"""
import numpy as np


def rank(f):
    """0-based average ranks of the 1-D array f (float64)."""
    f = np.where(np.isnan(f), np.inf, np.asarray(f, dtype=np.float64))
    order = np.argsort(f, kind="stable")
    s = f[order]
    # Runs of equal values in sorted order: each run [lo, hi) shares the mean rank (lo + hi - 1)/2.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    out = np.empty(len(f))
    out[order] = mean_rank
    return out


def centered_rank(f):
    M = len(f)
    if M == 1:
        return np.zeros(1)
    return rank(f) / (M - 1) - 0.5
