"""Speaker-level statistics: hierarchical bootstrap intervals and permutation tests over speakers.

The data of a configuration are its attacked test segments, one row each after pooling (``collect.pool``:
repeated runs on the same segment are averaged, never counted twice). Segments of one recording and
recordings of one speaker are not independent, and gender belongs to the speaker, so:

* every interval resamples twice: speakers with replacement, then, within each drawn speaker, its recordings
  with replacement (a speaker drawn twice gets two independent draws of its recordings); the statistic is
  recomputed on the segments of the drawn recordings (``hier_boot``; 95 % percentile interval, 2,000 draws).
  ``scipy.stats.bootstrap`` resamples independent observations of one level only, so the two-stage draw is
  written here; everything else uses scipy.
* group comparisons (female vs male, dataset vs dataset) permute the group labels of *speakers*, not of
  segments (``speaker_test``: ``scipy.stats.permutation_test``, exact over all relabellings when they are at
  most ``N_PERM``, e.g. 252 for 5 + 5 speakers); with fewer than ``MIN_SPEAKERS`` speakers in a group the
  design cannot answer and the result is "not testable" instead of a p-value. The smallest p-value the
  design can reach is reported beside it (3 + 3 speakers: 0.1, never "significant").
* comparisons of the same speakers under two conditions (protocol gap) flip signs of per-speaker differences
  (``paired_speaker_test``, ``permutation_type="samples"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd

ALPHA = 0.05
N_BOOT = 2000
N_PERM = 9999
MIN_SPEAKERS = 3


# -------------------------------------------------------------------------------------------- bootstrap
def _by_speaker(speaker, recording, num, den=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per speaker: its recordings' sums of ``num`` and of ``den`` (default: segment counts)."""
    df = pd.DataFrame({"s": np.asarray(speaker).astype(str), "r": np.asarray(recording).astype(str),
                       "num": np.asarray(num, float),
                       "den": np.ones(len(num)) if den is None else np.asarray(den, float)})
    rec = df.groupby(["s", "r"], sort=True)[["num", "den"]].sum()
    return [(g.num.to_numpy(), g.den.to_numpy()) for _, g in rec.groupby(level=0, sort=True)]


def hier_boot(speaker, recording, num, den=None, n_boot: int = N_BOOT, rng=None) -> np.ndarray:
    """``n_boot`` two-stage bootstrap replicates of sum(num) / sum(den) (default den = 1 per segment: the mean)."""
    groups = _by_speaker(speaker, recording, num, den)
    rng = np.random.default_rng(0) if rng is None else rng
    n_spk = len(groups)
    pick = rng.integers(0, n_spk, size=(n_boot, n_spk))
    tot_num, tot_den = np.zeros(n_boot), np.zeros(n_boot)
    for s, (r_num, r_den) in enumerate(groups):
        rows = np.nonzero(pick == s)[0]                  # one entry per time speaker s was drawn
        if not len(rows):
            continue
        draw = rng.integers(0, len(r_num), size=(len(rows), len(r_num)))
        np.add.at(tot_num, rows, r_num[draw].sum(axis=1))
        np.add.at(tot_den, rows, r_den[draw].sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot_num / tot_den


def _interval(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return np.nan, np.nan
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def hier_ci(speaker, recording, num, den=None, n_boot: int = N_BOOT, alpha: float = ALPHA,
            seed: int = 0) -> tuple[float, float, float]:
    """sum(num) / sum(den) (the mean of ``num`` by default) and its two-stage bootstrap (1 - alpha) interval;
    NaNs without data."""
    num = np.asarray(num, float)
    if num.size == 0:
        return np.nan, np.nan, np.nan
    d = np.ones(num.size) if den is None else np.asarray(den, float)
    if d.sum() == 0:
        return np.nan, np.nan, np.nan
    reps = hier_boot(speaker, recording, num, d, n_boot, np.random.default_rng(seed))
    return (float(num.sum() / d.sum()), *_interval(reps, alpha))


def hier_gap_ci(a: pd.DataFrame, b: pd.DataFrame, col: str, n_boot: int = N_BOOT, alpha: float = ALPHA,
                seed: int = 0) -> tuple[float, float, float]:
    """mean(a[col]) - mean(b[col]) for two independent sets of segments (columns speaker, recording_id),
    each resampled in two stages."""
    if not len(a) or not len(b):
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    ra = hier_boot(a.speaker, a.recording_id, a[col], None, n_boot, rng)
    rb = hier_boot(b.speaker, b.recording_id, b[col], None, n_boot, rng)
    return (float(a[col].mean() - b[col].mean()), *_interval(ra - rb, alpha))


# ------------------------------------------------------------------------------------------------ tests
@dataclass
class Test:
    """A permutation test over speakers: ``p`` (NaN when not testable), the smallest p the design can reach,
    the speakers per group and a note ("not testable (...)" / "exact" / "9999 random relabellings")."""
    p: float
    min_p: float
    n_a: int
    n_b: int
    note: str

    @property
    def testable(self) -> bool:
        return self.p == self.p

    def text(self) -> str:
        """p as the report prints it."""
        if not self.testable:
            return self.note
        p = "<0.001" if self.p < 0.001 else f"{self.p:.3f}"
        return f"{p} ({self.n_a} vs {self.n_b} speakers, min p {self.min_p:.3g})"


def _speaker_sums(tab: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    g = tab.groupby(tab.speaker.astype(str), sort=True)[col]
    return g.sum().to_numpy(float), g.count().to_numpy(float)


def speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, what: str = "gender", n_resamples: int = N_PERM,
                 seed: int = 0, min_speakers: int = MIN_SPEAKERS) -> Test:
    """Two-sided test of equal mean ``col`` between two groups of speakers (segments of ``a`` vs ``b``; each
    table has a ``speaker`` column). The statistic is the difference of the groups' segment means; the
    speakers' group labels are permuted (``scipy.stats.permutation_test``, exact when the number of
    relabellings C(n_a + n_b, n_a) <= ``n_resamples``)."""
    from scipy.stats import permutation_test
    sa, na = _speaker_sums(a, col)
    sb, nb = _speaker_sums(b, col)
    if len(sa) < min_speakers or len(sb) < min_speakers:
        return Test(np.nan, np.nan, len(sa), len(sb), f"not testable (n speakers per {what} < {min_speakers}: "
                                                        f"{len(sa)} vs {len(sb)})")
    sums, counts = np.concatenate([sa, sb]), np.concatenate([na, nb])

    def stat(x, y, axis=-1):
        x, y = x.astype(int), y.astype(int)
        return sums[x].sum(axis) / counts[x].sum(axis) - sums[y].sum(axis) / counts[y].sum(axis)
    total = comb(len(sa) + len(sb), len(sa))
    res = permutation_test((np.arange(len(sa)), np.arange(len(sa), len(sa) + len(sb))), stat,
                           permutation_type="independent", vectorized=True, n_resamples=n_resamples,
                           alternative="two-sided", random_state=seed)
    exact = total <= n_resamples
    return Test(float(res.pvalue), min(1.0, 2.0 / total) if exact else 2.0 / (n_resamples + 1), len(sa), len(sb),
                f"exact over {total} relabellings" if exact else f"{n_resamples} random relabellings")


def paired_speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, n_resamples: int = N_PERM, seed: int = 0,
                        min_speakers: int = MIN_SPEAKERS) -> Test:
    """Two-sided sign-flip test of equal ``col`` for the speakers present in both ``a`` and ``b`` (the same
    speakers under two conditions): per speaker the mean over its segments in each, then
    ``scipy.stats.permutation_test(permutation_type="samples")`` on the mean per-speaker difference."""
    from scipy.stats import permutation_test
    ma = a.groupby(a.speaker.astype(str))[col].mean()
    mb = b.groupby(b.speaker.astype(str))[col].mean()
    common = sorted(set(ma.index) & set(mb.index))
    if len(common) < min_speakers:
        return Test(np.nan, np.nan, len(common), len(common),
                    f"not testable (speakers in both < {min_speakers}: {len(common)})")
    x, y = ma[common].to_numpy(), mb[common].to_numpy()
    res = permutation_test((x, y), lambda u, v, axis=-1: np.mean(u - v, axis=axis), permutation_type="samples",
                           vectorized=True, n_resamples=n_resamples, alternative="two-sided", random_state=seed)
    total = 2 ** len(common)
    exact = total <= n_resamples
    return Test(float(res.pvalue), min(1.0, 2.0 / total) if exact else 2.0 / (n_resamples + 1), len(common),
                len(common), f"exact over {total} sign flips" if exact else f"{n_resamples} random sign flips")


# ---------------------------------------------------------------------------------------------- helpers
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
