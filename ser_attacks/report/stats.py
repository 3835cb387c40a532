"""Statistics the paper lacked: bootstrap confidence intervals and permutation tests.

Per-sample data are the attacked test segments of a run (``adversarial.npz``): 0/1 correctness of
the clean and the adversarial prediction. Segments of one recording are not independent (up to a few
3 s segments per recording, and with ``split=paper`` augmented siblings), so the intervals below are
optimistic for multi-segment recordings; they resample segments, not speakers.
"""
from __future__ import annotations

import numpy as np

ALPHA = 0.05
N_BOOT = 2000
N_PERM = 5000


def bootstrap_ci(values, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap (1 - alpha) interval; NaNs for no data."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


def gap_ci(a, b, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its bootstrap interval, resampling the two groups independently."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    db = b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    lo, hi = np.quantile(da - db, [alpha / 2, 1 - alpha / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def permutation_test(a, b, n_perm: int = N_PERM, seed: int = 0) -> float:
    """Two-sided two-sample permutation test of mean(a) == mean(b) (group labels shuffled).

    p = (1 + #{|permuted gap| >= |observed gap|}) / (1 + n_perm); NaN when a group is empty.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return np.nan
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    perm = rng.permuted(np.tile(pooled, (n_perm, 1)), axis=1)
    gaps = np.abs(perm[:, :a.size].mean(axis=1) - perm[:, a.size:].mean(axis=1))
    return float((1 + np.sum(gaps >= observed - 1e-12)) / (1 + n_perm))


def paired_permutation_test(a, b, n_perm: int = N_PERM, seed: int = 0) -> float:
    """Two-sided sign-flip permutation test of mean(a - b) == 0 for paired samples (same items)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        return np.nan
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    gaps = np.abs((signs * d).mean(axis=1))
    return float((1 + np.sum(gaps >= observed - 1e-12)) / (1 + n_perm))


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaNs kept, not counted)."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok])]
    m = ok.size
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def mean_std(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; NaN for one value) and count of the non-NaN values."""
    v = np.asarray([x for x in values if x == x], float)
    if v.size == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else np.nan, int(v.size)
