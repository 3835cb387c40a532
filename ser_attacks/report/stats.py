"""Speaker-level statistics: cluster bootstrap intervals, exact bounds at 0 and 1, permutation tests over
speakers (within folds where speakers of a fold share a model), Holm families.

The data of a configuration are its attacked test segments, one row each after pooling (``collect.pool``:
repeated runs on the same segment are averaged, never counted twice). Segments of one recording and
recordings of one speaker are not independent, gender belongs to the speaker, and the speakers of one
``speaker_cv`` fold share one trained model, so:

* every interval is a **cluster bootstrap over speakers** (``cluster_boot``): speakers are drawn with
  replacement, each with its totals (sum of the measure, number of segments), and the statistic
  sum(num) / sum(den) is recomputed from the drawn speakers' totals (95 % percentile interval, 2,000 draws,
  its spread widened for few speakers by ``small_sample_factor``: sqrt(G/(G-1)) t_{G-1}/z, 1.56 for 6 speakers,
  so that EMOVO's 6 speakers still cover a known truth at about the nominal rate: tests/test_report_stats.py).
  With equal segments per speaker this is the mean of the speaker means. The former two-stage draw (speakers,
  then recordings within them) counted within-speaker variance twice: its SD exceeded even the
  independent-segment binomial SD (``tests/test_report_stats.py``).
* where every segment has the same outcome (all 0 or all 1: a percentile bootstrap is degenerate there) the
  interval is the **exact** Clopper-Pearson bound on the segments (``exact_bound``: 0 of 50 → ≤ 0.071), and
  tables print ``≤ x`` / ``≥ x``; a paired difference that is 0 on every segment gets ±(that bound).
* group comparisons permute **speakers** on the statistic |T|, T = mean over one group's speakers of the
  speaker means − the same over the other group (``speaker_test``): the speaker is the unit, and |T| makes
  the test two-sided without doubling a one-sided p of a skewed, discrete null. Unstratified comparisons use
  ``scipy.stats.permutation_test`` (``alternative="greater"`` on |T|); with ``strata`` (gender: the fold, whose
  speakers share a model, each fold 1 F + 1 M on EmoDB / EMOVO, 2 + 2 on RAVDESS) labels are permuted only
  within a stratum, enumerated exactly when there are at most ``N_PERM`` relabellings. The smallest attainable
  p is reported beside every p; when it exceeds ``ALPHA`` (EmoDB 5 folds of 1 + 1: 2/32 = 1/16; EMOVO 3
  folds: 2/8 = 1/4) the comparison is **not testable** and no p is given.
* comparisons of the same speakers under two conditions (protocol gap, paired attacks) flip the signs of the
  per-speaker differences on |mean| (``paired_speaker_test``).
* Holm-Bonferroni within one family, the same rule everywhere (``FAMILY_RULE``, docs/reports-and-statistics.md).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb, prod

import numpy as np
import pandas as pd

ALPHA = 0.05
N_BOOT = 2000
N_PERM = 9999
MIN_SPEAKERS = 3
REFERENCES = ("noise", "autoattack")        # checklist references, not questions: outside every Holm family
FAMILY_RULE = ("one Holm family = one question (female − male; corpus − corpus; protocol paper − leakage-free) × "
               "one measure (clean accuracy; adversarial accuracy; success rate on correctly classified segments) "
               "× one protocol (split); its members are every corpus (pair) and attack compared, the reference "
               "configurations (noise, AutoAttack) left out")


# -------------------------------------------------------------------------------------------- bootstrap
def _speaker_totals(speaker, num, den=None) -> tuple[np.ndarray, np.ndarray]:
    """Per speaker (sorted): the sum of ``num`` and of ``den`` (default: its number of segments)."""
    num = np.asarray(num, float)
    df = pd.DataFrame({"s": np.asarray(speaker).astype(str), "num": num,
                       "den": np.ones(num.size) if den is None else np.asarray(den, float)})
    g = df.groupby("s", sort=True)[["num", "den"]].sum()
    return g.num.to_numpy(), g.den.to_numpy()


def cluster_boot(speaker, num, den=None, n_boot: int = N_BOOT, rng=None) -> np.ndarray:
    """``n_boot`` cluster-bootstrap replicates of sum(num) / sum(den): speakers drawn with replacement, each
    with its totals (default den = 1 per segment: the mean)."""
    s_num, s_den = _speaker_totals(speaker, num, den)
    rng = np.random.default_rng(0) if rng is None else rng
    pick = rng.integers(0, len(s_num), size=(n_boot, len(s_num)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_num[pick].sum(axis=1) / s_den[pick].sum(axis=1)


def hier_boot(speaker, recording, num, den=None, n_boot: int = N_BOOT, rng=None) -> np.ndarray:
    """Former name (two-stage draw); now ``cluster_boot`` (the recordings are not resampled)."""
    return cluster_boot(speaker, num, den, n_boot, rng)


def exact_bound(n: float, alpha: float = ALPHA) -> float:
    """Clopper-Pearson bound for 0 successes of ``n`` (two-sided level 1 - alpha): the upper bound of a
    proportion observed at 0 (1 minus it: the lower bound of one observed at 1). 0 of 50 → 0.071."""
    n = int(round(n))
    return 1.0 if n <= 0 else float(1.0 - (alpha / 2) ** (1.0 / n))


def small_sample_factor(n_speakers: int, alpha: float = ALPHA) -> float:
    """How much the bootstrap spread is widened for few speakers: sqrt(G / (G - 1)) * t_{G-1} / z (the cluster
    bootstrap's variance is (G - 1) / G of the unbiased one, and a t with G - 1 degrees of freedom, not a normal,
    describes a mean of G speaker means). 1.56 for 6 speakers, 1.09 for 24; 1 with fewer than 2."""
    from scipy.stats import norm, t
    g = int(n_speakers)
    if g < 2:
        return 1.0
    return float(np.sqrt(g / (g - 1)) * t.ppf(1 - alpha / 2, g - 1) / norm.ppf(1 - alpha / 2))


def _interval(reps: np.ndarray, alpha: float, n_speakers: int = 0, bounds=(-np.inf, np.inf)
              ) -> tuple[float, float]:
    """Percentile interval of the replicates, widened about their mean by ``small_sample_factor``, clipped to
    ``bounds``."""
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return np.nan, np.nan
    f = small_sample_factor(n_speakers, alpha) if n_speakers else 1.0
    reps = reps.mean() + (reps - reps.mean()) * f
    lo, hi = np.clip(np.quantile(reps, [alpha / 2, 1 - alpha / 2]), *bounds)
    return float(lo), float(hi)


def _degenerate(num: np.ndarray, den: np.ndarray, alpha: float, diff: bool) -> tuple[float, float] | None:
    """Exact bounds when every segment has the same outcome 0 or 1 (a percentile bootstrap gives [v, v])."""
    w = den > 0
    if not w.any():
        return None
    v = num[w] / den[w]
    if np.ptp(v) > 1e-12:
        return None
    b = exact_bound(den.sum(), alpha)
    if abs(v[0]) < 1e-12:
        return (-b, b) if diff else (0.0, b)
    if abs(v[0] - 1) < 1e-12 and not diff:
        return 1.0 - b, 1.0
    return None


def hier_ci(speaker, recording, num, den=None, n_boot: int = N_BOOT, alpha: float = ALPHA,
            seed: int = 0, diff: bool = False) -> tuple[float, float, float]:
    """sum(num) / sum(den) (the mean of ``num`` by default) and its (1 - alpha) cluster-bootstrap interval over
    speakers (``recording`` is accepted for the callers and not resampled); an exact bound where every segment
    has the same outcome 0 or 1 (``diff``: ``num`` is a paired difference, 0 everywhere → ±bound); NaNs
    without data."""
    num = np.asarray(num, float)
    if num.size == 0:
        return np.nan, np.nan, np.nan
    d = np.ones(num.size) if den is None else np.asarray(den, float)
    if d.sum() == 0:
        return np.nan, np.nan, np.nan
    est = float(num.sum() / d.sum())
    exact = _degenerate(num, d, alpha, diff)
    if exact is not None:
        return (est, *exact)
    reps = cluster_boot(speaker, num, d, n_boot, np.random.default_rng(seed))
    n_spk = len(set(np.asarray(speaker).astype(str)[d > 0]))
    proportion = bool(np.all(num >= 0) and np.all(num <= d))         # a share: its interval stays in [0, 1]
    lim = (-1.0, 1.0) if diff and np.all(np.abs(num) <= d) else (0.0, 1.0) if proportion else (-np.inf, np.inf)
    return (est, *_interval(reps, alpha, n_spk, lim))


def hier_gap_ci(a: pd.DataFrame, b: pd.DataFrame, col: str, n_boot: int = N_BOOT, alpha: float = ALPHA,
                seed: int = 0) -> tuple[float, float, float]:
    """mean(a[col]) - mean(b[col]) for two independent sets of segments (column speaker), each resampled by
    speaker; where both are constant at the same 0 or 1, ±the exact bound of the smaller set."""
    if not len(a) or not len(b):
        return np.nan, np.nan, np.nan
    est = float(a[col].mean() - b[col].mean())
    va, vb = a[col].to_numpy(float), b[col].to_numpy(float)
    if np.ptp(va) < 1e-12 and np.ptp(vb) < 1e-12 and abs(va[0] - vb[0]) < 1e-12 and va[0] in (0.0, 1.0):
        bound = exact_bound(min(len(va), len(vb)), alpha)
        return est, -bound, bound
    rng = np.random.default_rng(seed)
    ra = cluster_boot(a.speaker, va, None, n_boot, rng)
    rb = cluster_boot(b.speaker, vb, None, n_boot, rng)
    n_spk = min(a.speaker.nunique(), b.speaker.nunique())          # the smaller group sets the small-sample factor
    return (est, *_interval(ra - rb, alpha, n_spk, (-1.0, 1.0) if max(np.abs(va).max(), np.abs(vb).max()) <= 1
                            else (-np.inf, np.inf)))


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


def speaker_means(t: pd.DataFrame, col: str) -> pd.Series:
    """The mean of ``col`` over each speaker's segments (index: speaker)."""
    return t.groupby(t.speaker.astype(str), sort=True)[col].mean()


def _speaker_strata(t: pd.DataFrame) -> pd.Series:
    """The fold of each speaker (one model per fold); '' where unknown."""
    if "fold" not in t:
        return pd.Series("", index=sorted(t.speaker.astype(str).unique()))
    return t.groupby(t.speaker.astype(str), sort=True).fold.first().astype(str)


def _abs_t(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """|mean of the labelled speakers − mean of the others| for each row of ``labels`` (bool, n_perm x n)."""
    la = labels.astype(float)
    return np.abs(la @ values / la.sum(axis=1) - (1 - la) @ values / (1 - la).sum(axis=1))


def _stratified(values: np.ndarray, in_a: np.ndarray, strata: np.ndarray, n_resamples: int,
                seed: int) -> tuple[float, float, int, bool]:
    """p of |T| with the group labels permuted within each stratum: (p, smallest attainable p, relabellings,
    exact)."""
    blocks = [np.flatnonzero(strata == s) for s in pd.unique(strata)]
    ks = [int(in_a[b].sum()) for b in blocks]
    total = prod(comb(len(b), k) for b, k in zip(blocks, ks))
    t_obs = _abs_t(values, in_a[None, :])[0]
    if total <= n_resamples:
        choices = [list(itertools.combinations(b, k)) for b, k in zip(blocks, ks)]
        labels = np.zeros((total, len(values)), bool)
        for i, pick in enumerate(itertools.product(*choices)):
            for c in pick:
                labels[i, list(c)] = True
        t = _abs_t(values, labels)
        p = float(np.mean(t >= t_obs - 1e-12))
        mirror = all(2 * k == len(b) for b, k in zip(blocks, ks))    # swapping every stratum gives the same |T|
        return p, min(1.0, (2.0 if mirror else 1.0) / total), total, True
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_resamples, len(values)), bool)
    for b, k in zip(blocks, ks):
        order = np.argsort(rng.random((n_resamples, len(b))), axis=1)[:, :k]
        rows = np.repeat(np.arange(n_resamples), k)
        labels[rows, b[order.ravel()]] = True
    t = _abs_t(values, labels)
    p = float((np.sum(t >= t_obs - 1e-12) + 1) / (n_resamples + 1))
    return p, 1.0 / (n_resamples + 1), total, False


def speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, what: str = "gender", n_resamples: int = N_PERM,
                 seed: int = 0, min_speakers: int = MIN_SPEAKERS, strata: bool = False,
                 alpha: float = ALPHA) -> Test:
    """Two-sided test of equal ``col`` between two groups of speakers (segments of ``a`` vs ``b``; each table
    has a ``speaker`` column, and a ``fold`` column with ``strata``). Statistic |T|: T = mean of group a's
    speaker means − mean of group b's. Labels permuted over all speakers (``scipy.stats.permutation_test``,
    exact when C(n_a + n_b, n_a) <= ``n_resamples``) or, with ``strata``, within each fold (its speakers share
    a model). Not testable with fewer than ``min_speakers`` per group or when the smallest attainable p
    exceeds ``alpha``."""
    from scipy.stats import permutation_test
    ma, mb = speaker_means(a, col), speaker_means(b, col)
    na, nb = len(ma), len(mb)
    if na < min_speakers or nb < min_speakers:
        return Test(np.nan, np.nan, na, nb, f"not testable (n speakers per {what} < {min_speakers}: {na} vs {nb})")
    values = np.concatenate([ma.to_numpy(float), mb.to_numpy(float)])
    if strata:
        st = np.concatenate([_speaker_strata(a).reindex(ma.index).to_numpy(str),
                             _speaker_strata(b).reindex(mb.index).to_numpy(str)])
        in_a = np.r_[np.ones(na, bool), np.zeros(nb, bool)]
        n_strata = len(set(st))
        p, min_p, total, exact = _stratified(values, in_a, st, n_resamples, seed)
        where = f"within {n_strata} fold{'s' if n_strata > 1 else ''}" if n_strata > 1 else "over all speakers"
        note = f"exact over {total} relabellings {where}" if exact else f"{n_resamples} random relabellings {where}"
    else:
        total = comb(na + nb, na)
        res = permutation_test((values[:na], values[na:]),
                               lambda x, y, axis=-1: np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis)),
                               permutation_type="independent", vectorized=True, n_resamples=n_resamples,
                               alternative="greater", random_state=seed)
        exact = total <= n_resamples
        p = float(res.pvalue)
        min_p = min(1.0, (2.0 if na == nb else 1.0) / total) if exact else 1.0 / (n_resamples + 1)
        note = f"exact over {total} relabellings" if exact else f"{n_resamples} random relabellings"
    if min_p > alpha:
        return Test(np.nan, min_p, na, nb, f"not testable ({na} vs {nb} speakers, {note}: smallest attainable p "
                                           f"{min_p:.3g} > α {alpha})")
    return Test(p, min_p, na, nb, note)


def paired_speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, n_resamples: int = N_PERM, seed: int = 0,
                        min_speakers: int = MIN_SPEAKERS, alpha: float = ALPHA) -> Test:
    """Two-sided sign-flip test of equal ``col`` for the speakers present in both ``a`` and ``b`` (the same
    speakers under two conditions): per speaker the mean over its segments in each, then
    ``scipy.stats.permutation_test(permutation_type="samples")`` on |mean per-speaker difference|."""
    from scipy.stats import permutation_test
    ma, mb = speaker_means(a, col), speaker_means(b, col)
    common = sorted(set(ma.index) & set(mb.index))
    if len(common) < min_speakers:
        return Test(np.nan, np.nan, len(common), len(common),
                    f"not testable (speakers in both < {min_speakers}: {len(common)})")
    x, y = ma[common].to_numpy(), mb[common].to_numpy()
    res = permutation_test((x, y), lambda u, v, axis=-1: np.abs(np.mean(u - v, axis=axis)),
                           permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                           alternative="greater", random_state=seed)
    total = 2 ** len(common)
    exact = total <= n_resamples
    min_p = min(1.0, 2.0 / total) if exact else 1.0 / (n_resamples + 1)
    note = f"exact over {total} sign flips" if exact else f"{n_resamples} random sign flips"
    if min_p > alpha:
        return Test(np.nan, min_p, len(common), len(common), f"not testable ({len(common)} speakers, {note}: "
                                                              f"smallest attainable p {min_p:.3g} > α {alpha})")
    return Test(float(res.pvalue), min_p, len(common), len(common), note)


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


def holm_families(df: pd.DataFrame, col: str, family_cols=("protocol",), attack_col: str | None = "attack"
                  ) -> np.ndarray:
    """Holm within each family (``FAMILY_RULE``): rows grouped by ``family_cols`` (the protocol), the
    reference configurations (``REFERENCES``) outside every family (NaN)."""
    out = np.full(len(df), np.nan)
    if not len(df):
        return out
    member = ~df[attack_col].isin(REFERENCES).to_numpy() if attack_col and attack_col in df else np.ones(len(df), bool)
    keys = [c for c in family_cols if c in df]
    groups = df.groupby(keys, sort=False).indices.values() if keys else [np.arange(len(df))]
    for idx in groups:
        idx = idx[member[idx]]
        out[idx] = holm(df[col].to_numpy(float)[idx])
    return out


def mean_std(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; NaN for one value) and count of the non-NaN values."""
    v = np.asarray([x for x in values if x == x], float)
    if v.size == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else np.nan, int(v.size)
