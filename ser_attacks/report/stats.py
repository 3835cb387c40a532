"""Speaker-level statistics: cluster bootstrap intervals over speakers and training seeds, exact bounds at 0 and 1,
permutation tests over speakers (within folds where speakers of a fold share a model; one-sided only where an
analysis plan pre-registered it), Holm families.

The data of a configuration are its attacked test segments, one row each after pooling (``collect.pool``:
repeated runs on the same segment are averaged, never counted twice; with several training seeds the row is the
seed average and keeps each seed's value beside it, ``col@j``). Segments of one recording and recordings of one
speaker are not independent, gender belongs to the speaker, the speakers of one ``speaker_cv`` fold share its
trained models, and training is random (a fold's seeds give different models), so:

* every interval is a **cluster bootstrap over speakers and training seeds**, all drawn by ONE primitive,
  ``boot_draws``: per draw, speakers are drawn with replacement (clusters) and, where a fold was attacked through
  several models, that fold's k seeds are drawn with replacement (k of k), shared by all its speakers; a
  speaker's totals (sum of the measure, number of segments) are the mean over its fold's drawn seeds, and the
  statistic sum(num) / sum(den) is recomputed from the drawn speakers' totals (95 % percentile interval, 2,000
  draws, its spread widened for few speakers by ``small_sample_factor``: sqrt(G/(G-1)) t_{G-1}/z, 1.56 for 6
  speakers, so that EMOVO's 6 speakers still cover a known truth at about the nominal rate:
  tests/test_report_stats.py). With one seed per fold nothing more is drawn: exactly the speaker-only bootstrap
  (same rng stream; tests/test_report_seeds.py). With three seeds and a large seed effect the speaker-only
  bootstrap of the seed averages covers a known truth in 69 % (24 speakers in 6 folds) / 86 % (10 in 5) of
  simulated studies, the seed draws in 96 % / 98 % (tests/test_report_seeds.py). A female − male gap draws a
  fold's seeds once for both genders (``hier_gap_ci(shared_seeds=True)``: the same models); corpora and protocols
  have different models, drawn apart. With equal segments per speaker the statistic is the mean of the speaker
  means. The former two-stage draw (speakers, then recordings within them) counted within-speaker variance twice:
  its SD exceeded even the independent-segment binomial SD (``tests/test_report_stats.py``).
* where every segment has the same outcome (all 0 or all 1: a percentile bootstrap is degenerate there) the
  interval is the **exact** Clopper-Pearson bound on the segments (``exact_bound``: 0 of 50 → ≤ 0.071), and
  tables print ``≤ x`` / ``≥ x``; a paired difference that is 0 on every segment gets ±(that bound).
* group comparisons permute **speakers** on the statistic |T|, T = mean over one group's speakers of the
  speaker means − the same over the other group (``speaker_test``): the speaker is the unit, and |T| makes
  the test two-sided without doubling a one-sided p of a skewed, discrete null. A speaker's mean is its seed
  average: the tests are **conditional on the trained models** (the seeds' spread is in the intervals, not in
  the p). Unstratified comparisons use ``scipy.stats.permutation_test`` (``alternative="greater"`` on |T|); with
  ``strata`` (gender: the fold, whose speakers share a model, each fold 1 F + 1 M on EmoDB / EMOVO, 2 + 2 on
  RAVDESS) labels are permuted only within a stratum, enumerated exactly when there are at most ``N_PERM``
  relabellings. The smallest attainable p is reported beside every p; when it exceeds ``ALPHA`` (EmoDB 5 folds of
  1 + 1: 2/32 = 1/16; EMOVO 3 folds: 2/8 = 1/4) the comparison is **not testable** and no p is given.
* **one-sided** (``alternative="greater"`` / ``"less"`` of T = first group − second): only for a comparison an
  analysis plan pre-registered so (``report.plan``); p counts T >= t_obs (greater) or T <= t_obs (less), and its
  smallest attainable p is 1 / relabellings (EmoDB's 5 folds: 1/32 = 0.031, testable; EMOVO's 3: 1/8, not).
  The report labels it beside the p ("one-sided, planned: female − male < 0"); everything else stays two-sided.
* comparisons of the same speakers under two conditions (protocol gap, paired attacks) flip the signs of the
  per-speaker differences on |mean| (``paired_speaker_test``; one-sided on the mean where planned).
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
SEED_SEP = "@"          # a pooled table's per-seed columns: f"{col}@{j}", j = the seed's rank within its fold


def _speaker_totals(speaker, num, den=None) -> tuple[np.ndarray, np.ndarray]:
    """Per speaker (sorted): the sum of ``num`` and of ``den`` (default: its number of segments)."""
    num = np.asarray(num, float)
    df = pd.DataFrame({"s": np.asarray(speaker).astype(str), "num": num,
                       "den": np.ones(num.size) if den is None else np.asarray(den, float)})
    g = df.groupby("s", sort=True)[["num", "den"]].sum()
    return g.num.to_numpy(), g.den.to_numpy()


def seed_cols(t: pd.DataFrame, col: str) -> list[str]:
    """The per-seed columns of ``col`` in a pooled table (``col@0``, ``col@1``, ...; ``collect.pool``)."""
    cols, j = [], 0
    while f"{col}{SEED_SEP}{j}" in t:
        cols.append(f"{col}{SEED_SEP}{j}")
        j += 1
    return cols


def seed_matrix(t: pd.DataFrame, col: str) -> np.ndarray | None:
    """(n segments, K seed slots) of ``col`` under each training seed of the segment's fold (the columns
    ``col@j`` that ``collect.pool`` writes where a fold has several seeds; NaN where that seed did not attack the
    segment); None where the table has none (one seed per fold: the speaker-only bootstrap)."""
    cols = seed_cols(t, col)
    return t[cols].to_numpy(float) if len(cols) > 1 else None


def with_seeds(t: pd.DataFrame, name: str, fn, *cols: str) -> pd.DataFrame:
    """``t`` with ``name`` = fn(t[cols]...) and, where ``t`` has per-seed columns of every one of ``cols``, the
    same per seed slot (``name@j`` = fn(t[col@j]...)): a derived measure (a paired difference, the success on
    correct segments) keeps its seed spread for the bootstrap."""
    out = {name: fn(*(t[c] for c in cols))}
    j = 0
    while all(f"{c}{SEED_SEP}{j}" in t for c in cols):
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{name}{SEED_SEP}{j}"] = fn(*(t[f"{c}{SEED_SEP}{j}"] for c in cols))
        j += 1
    return t.assign(**out)


def partner(t: pd.DataFrame, col: str, suffix: str = "_b") -> pd.DataFrame:
    """``key``, ``col`` and its per-seed columns of ``t``, renamed ``<col><suffix>`` (``<col><suffix>@j``): the
    other side of a paired comparison, to merge on ``key`` (slot j of a fold is the same model on both sides)."""
    cols = seed_cols(t, col)
    return t[["key", col, *cols]].rename(columns={col: col + suffix, **{c: col + suffix + c[len(col):]
                                                                        for c in cols}})


@dataclass
class _SeedDesign:
    """Per-segment data of one bootstrap site in the crossed design speakers x training seeds: the speakers
    (sorted), each segment's speaker index, and per fold the seed slots that attacked its segments (a fold's
    seeds are shared by all its speakers)."""
    speakers: np.ndarray
    spk_idx: np.ndarray
    fold: np.ndarray
    num_by: np.ndarray          # (n, K), NaN where a seed did not attack the segment
    den_by: np.ndarray          # (n, K)
    slots: dict                 # fold -> list of seed slots present in that fold

    def seeds_per_fold(self) -> dict:
        return {f: len(s) for f, s in self.slots.items()}


def _design(speaker, fold, num_by, den_by=None) -> _SeedDesign | None:
    """The seed design of per-segment, per-seed values; None when no fold has more than one seed."""
    if num_by is None:
        return None
    num_by = np.asarray(num_by, float)
    if num_by.ndim != 2 or num_by.shape[1] < 2:
        return None
    den_by = np.where(np.isfinite(num_by), 1.0, np.nan) if den_by is None else np.asarray(den_by, float)
    spk = np.asarray(speaker).astype(str)
    fold = np.full(len(spk), "") if fold is None else np.asarray(fold).astype(str)
    avail = np.isfinite(num_by) & np.isfinite(den_by)
    slots = {f: [j for j in range(num_by.shape[1]) if avail[fold == f, j].any()] for f in sorted(set(fold))}
    if all(len(s) <= 1 for s in slots.values()):
        return None
    speakers, idx = np.unique(spk, return_inverse=True)
    return _SeedDesign(speakers, idx, fold, num_by, den_by, slots)


def draw_seeds(seeds_per_fold: dict | None, n_boot: int, rng) -> dict | None:
    """Per fold (sorted), its k seeds drawn with replacement (k of k) in each of ``n_boot`` draws, as counts
    (n_boot, k); None (and nothing drawn from ``rng``) when every fold has one seed."""
    if not seeds_per_fold or all(k <= 1 for k in seeds_per_fold.values()):
        return None
    out = {}
    for f in sorted(seeds_per_fold, key=str):
        k = int(seeds_per_fold[f])
        idx = rng.integers(0, k, size=(n_boot, k))
        out[f] = np.stack([(idx == j).sum(axis=1) for j in range(k)], axis=1).astype(float)
    return out


def boot_draws(n_speakers: int, seeds_per_fold: dict | None = None, n_boot: int = N_BOOT, rng=None
               ) -> tuple[np.ndarray, dict | None]:
    """THE resampling primitive of every bootstrap in the report: (speaker draws (n_boot, G): indices into the
    sorted speakers, drawn with replacement as clusters; seed draws: ``draw_seeds``, per fold its seeds drawn
    k of k, shared by all the fold's speakers). The speakers are drawn first, so with one seed per fold it is
    exactly the former speaker-only draw (same rng stream, nothing more drawn)."""
    rng = np.random.default_rng(0) if rng is None else rng
    pick = rng.integers(0, n_speakers, size=(n_boot, n_speakers))
    return pick, draw_seeds(seeds_per_fold, n_boot, rng)


def _seed_totals(d: _SeedDesign, seeds: dict, n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """Per draw and speaker (n_boot, G): the totals of num and den, each segment's value the mean over the
    drawn seeds of its fold (with their multiplicity; seeds that did not attack it left out)."""
    g = len(d.speakers)
    s_num, s_den = np.zeros((n_boot, g)), np.zeros((n_boot, g))
    for f, slots in d.slots.items():
        rows = np.flatnonzero(d.fold == f)
        if not len(slots) or not len(rows):
            continue
        c = seeds[f] if f in seeds else np.ones((n_boot, len(slots)))
        v, w = d.num_by[np.ix_(rows, slots)], d.den_by[np.ix_(rows, slots)]
        a = np.isfinite(v) & np.isfinite(w)
        n_w = c @ a.T.astype(float)                                   # (n_boot, n_f): drawn seeds present
        with np.errstate(invalid="ignore", divide="ignore"):
            num = np.where(n_w > 0, (c @ np.where(a, v, 0.0).T) / n_w, 0.0)
            den = np.where(n_w > 0, (c @ np.where(a, w, 0.0).T) / n_w, 0.0)
        ind = np.zeros((len(rows), g))
        ind[np.arange(len(rows)), d.spk_idx[rows]] = 1.0
        s_num += num @ ind
        s_den += den @ ind
    return s_num, s_den


def _reps(speaker, num, den, n_boot: int, rng, design: _SeedDesign | None, pick=None, seeds=None) -> np.ndarray:
    """Replicates of sum(num) / sum(den) for one set of segments: speakers ``pick``ed (drawn here when None),
    seeds per fold (``seeds``; drawn here after the speakers when None and ``design`` has several)."""
    if design is None:
        s_num, s_den = _speaker_totals(speaker, num, den)
        if pick is None:
            pick, _ = boot_draws(len(s_num), None, n_boot, rng)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s_num[pick].sum(axis=1) / s_den[pick].sum(axis=1)
    if pick is None:
        pick, seeds = boot_draws(len(design.speakers), design.seeds_per_fold(), n_boot, rng)
    s_num, s_den = _seed_totals(design, seeds or {}, n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.take_along_axis(s_num, pick, axis=1).sum(axis=1)
                / np.take_along_axis(s_den, pick, axis=1).sum(axis=1))


def cluster_boot(speaker, num, den=None, n_boot: int = N_BOOT, rng=None, fold=None, num_by=None,
                 den_by=None) -> np.ndarray:
    """``n_boot`` bootstrap replicates of sum(num) / sum(den) (default den = 1 per segment: the mean): speakers
    drawn with replacement as clusters, each with its totals; with ``num_by`` (n, K: the per-seed values of
    ``seed_matrix``) and a fold with several seeds, also each fold's seeds drawn k of k, a speaker's totals the
    mean over the drawn seeds (``boot_draws``)."""
    rng = np.random.default_rng(0) if rng is None else rng
    return _reps(speaker, num, den, n_boot, rng, _design(speaker, fold, num_by, den_by))


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
            seed: int = 0, diff: bool = False, fold=None, num_by=None, den_by=None) -> tuple[float, float, float]:
    """sum(num) / sum(den) (the mean of ``num`` by default) and its (1 - alpha) cluster-bootstrap interval over
    speakers (``recording`` is accepted for the callers and not resampled), with each fold's training seeds
    drawn too where ``num_by`` (``seed_matrix``) holds several per fold (``cluster_boot``); an exact bound where
    every segment has the same outcome 0 or 1 (``diff``: ``num`` is a paired difference, 0 everywhere →
    ±bound); NaNs without data. ``num`` / ``den``: the per-segment seed averages (the point estimate)."""
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
    reps = cluster_boot(speaker, num, d, n_boot, np.random.default_rng(seed), fold, num_by, den_by)
    n_spk = len(set(np.asarray(speaker).astype(str)[d > 0]))
    proportion = bool(np.all(num >= 0) and np.all(num <= d))         # a share: its interval stays in [0, 1]
    lim = (-1.0, 1.0) if diff and np.all(np.abs(num) <= d) else (0.0, 1.0) if proportion else (-np.inf, np.inf)
    return (est, *_interval(reps, alpha, n_spk, lim))


def _fold_of(t: pd.DataFrame):
    return t.fold.to_numpy() if "fold" in t else None


def table_ci(t: pd.DataFrame, col: str, den: str | None = None, **kw) -> tuple[float, float, float]:
    """``hier_ci`` of a pooled table's ``col`` (over ``den``), its per-seed columns and folds included: the
    interval carries the training seeds' spread where a fold has several (``collect.pool``)."""
    return hier_ci(t.speaker, t.recording_id if "recording_id" in t else None, t[col],
                   None if den is None else t[den], fold=_fold_of(t), num_by=seed_matrix(t, col),
                   den_by=None if den is None else seed_matrix(t, den), **kw)


def paired_ci(m: pd.DataFrame, col: str, suffix: str = "_b", **kw) -> tuple[float, float, float]:
    """``table_ci`` of the per-segment difference ``col`` − ``col<suffix>`` of a paired table (``partner``
    merged on ``key``), per seed slot too (``diff=True``: exact bound where it is 0 everywhere)."""
    d = with_seeds(m, "_paired_d", lambda x, y: x - y, col, col + suffix)
    return table_ci(d, "_paired_d", diff=True, **kw)


def hier_gap_ci(a: pd.DataFrame, b: pd.DataFrame, col: str, n_boot: int = N_BOOT, alpha: float = ALPHA,
                seed: int = 0, shared_seeds: bool = False) -> tuple[float, float, float]:
    """mean(a[col]) - mean(b[col]) for two independent sets of speakers' segments (column speaker), each
    resampled by speaker; where the tables carry per-seed columns (``seed_matrix``) each fold's seeds are drawn
    too: independently for a and b (different models: corpora, protocols) or, with ``shared_seeds``, once per
    fold for both (female and male speakers of one fold attacked through the same models). Where both are
    constant at the same 0 or 1, ±the exact bound of the smaller set."""
    if not len(a) or not len(b):
        return np.nan, np.nan, np.nan
    est = float(a[col].mean() - b[col].mean())
    va, vb = a[col].to_numpy(float), b[col].to_numpy(float)
    if np.ptp(va) < 1e-12 and np.ptp(vb) < 1e-12 and abs(va[0] - vb[0]) < 1e-12 and va[0] in (0.0, 1.0):
        bound = exact_bound(min(len(va), len(vb)), alpha)
        return est, -bound, bound
    rng = np.random.default_rng(seed)
    da = _design(a.speaker, _fold_of(a), seed_matrix(a, col))
    db = _design(b.speaker, _fold_of(b), seed_matrix(b, col))
    if shared_seeds and (da is not None or db is not None):
        n_a, n_b = a.speaker.astype(str).nunique(), b.speaker.astype(str).nunique()
        pick_a, _ = boot_draws(n_a, None, n_boot, rng)
        pick_b, _ = boot_draws(n_b, None, n_boot, rng)
        union = {}
        for d in (da, db):
            for f, sl in (d.slots.items() if d is not None else ()):
                union[f] = sorted(set(union.get(f, [])) | set(sl))
        drawn = draw_seeds({f: len(u) for f, u in union.items()}, n_boot, rng) or {}

        def mine(d):            # the shared draws, columns in this design's slots of each fold
            return None if d is None else {f: drawn[f][:, [union[f].index(j) for j in sl]]
                                           for f, sl in d.slots.items() if f in drawn}
        ra = _reps(a.speaker, va, None, n_boot, rng, da, pick_a, mine(da))
        rb = _reps(b.speaker, vb, None, n_boot, rng, db, pick_b, mine(db))
    else:
        ra = _reps(a.speaker, va, None, n_boot, rng, da)
        rb = _reps(b.speaker, vb, None, n_boot, rng, db)
    n_spk = min(a.speaker.nunique(), b.speaker.nunique())          # the smaller group sets the small-sample factor
    return (est, *_interval(ra - rb, alpha, n_spk, (-1.0, 1.0) if max(np.abs(va).max(), np.abs(vb).max()) <= 1
                            else (-np.inf, np.inf)))


# ------------------------------------------------------------------------------------------------ tests
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass
class Test:
    """A permutation test over speakers: ``p`` (NaN when not testable), the smallest p the design can reach,
    the speakers per group and a note ("not testable (...)" / "exact" / "9999 random relabellings"); ``side``:
    how a one-sided test is labelled beside its p ("" for two-sided)."""
    p: float
    min_p: float
    n_a: int
    n_b: int
    note: str
    side: str = ""

    @property
    def testable(self) -> bool:
        return self.p == self.p

    def text(self) -> str:
        """p as the report prints it."""
        if not self.testable:
            return self.note
        p = "<0.001" if self.p < 0.001 else f"{self.p:.3f}"
        return f"{p} ({self.n_a} vs {self.n_b} speakers, min p {self.min_p:.3g}{'; ' + self.side if self.side else ''})"


def side_text(alternative: str, a: str = "a", b: str = "b", planned: bool = False) -> str:
    """'one-sided: a − b > 0' (``planned``: 'one-sided, planned: a − b > 0'); '' for two-sided."""
    if alternative == "two-sided":
        return ""
    return f"one-sided{', planned' if planned else ''}: {a} − {b} {'>' if alternative == 'greater' else '<'} 0"


def planned_side(test: Test, alternative: str, a: str = "female", b: str = "male") -> Test:
    """``test`` labelled as a pre-registered one-sided test of ``a`` − ``b`` ('one-sided, planned: female − male
    > 0' beside its p, in place of the generic 'a − b'); a two-sided test is returned as it is."""
    if alternative != "two-sided":
        test.side = side_text(alternative, a, b, planned=True)
        test.note = test.note.replace(side_text(alternative), test.side)
    return test


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative {alternative!r} not in {ALTERNATIVES}")


def speaker_means(t: pd.DataFrame, col: str) -> pd.Series:
    """The mean of ``col`` over each speaker's segments (index: speaker)."""
    return t.groupby(t.speaker.astype(str), sort=True)[col].mean()


def _speaker_strata(t: pd.DataFrame) -> pd.Series:
    """The fold of each speaker (one model per fold); '' where unknown."""
    if "fold" not in t:
        return pd.Series("", index=sorted(t.speaker.astype(str).unique()))
    return t.groupby(t.speaker.astype(str), sort=True).fold.first().astype(str)


def _signed_t(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """mean of the labelled speakers − mean of the others for each row of ``labels`` (bool, n_perm x n)."""
    la = labels.astype(float)
    return la @ values / la.sum(axis=1) - (1 - la) @ values / (1 - la).sum(axis=1)


def _abs_t(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """|mean of the labelled speakers − mean of the others| for each row of ``labels`` (bool, n_perm x n)."""
    return np.abs(_signed_t(values, labels))


def _count(t: np.ndarray, t_obs: float, alternative: str) -> int:
    """Relabellings at least as extreme as the observed: |T| >= |t| (two-sided: ``t``, ``t_obs`` are |T|),
    T >= t (greater), T <= t (less)."""
    if alternative == "less":
        return int(np.sum(t <= t_obs + 1e-12))
    return int(np.sum(t >= t_obs - 1e-12))


def _stratified(values: np.ndarray, in_a: np.ndarray, strata: np.ndarray, n_resamples: int,
                seed: int, alternative: str = "two-sided") -> tuple[float, float, int, bool]:
    """p of |T| (two-sided) or of T (``greater``: T >= t_obs; ``less``: T <= t_obs) with the group labels
    permuted within each stratum: (p, smallest attainable p, relabellings, exact). One-sided, the smallest
    attainable p is 1 / relabellings (two-sided, 2 / relabellings when swapping every stratum mirrors |T|)."""
    _check_alternative(alternative)
    stat = _abs_t if alternative == "two-sided" else _signed_t
    blocks = [np.flatnonzero(strata == s) for s in pd.unique(strata)]
    ks = [int(in_a[b].sum()) for b in blocks]
    total = prod(comb(len(b), k) for b, k in zip(blocks, ks))
    t_obs = stat(values, in_a[None, :])[0]
    if total <= n_resamples:
        choices = [list(itertools.combinations(b, k)) for b, k in zip(blocks, ks)]
        labels = np.zeros((total, len(values)), bool)
        for i, pick in enumerate(itertools.product(*choices)):
            for c in pick:
                labels[i, list(c)] = True
        p = _count(stat(values, labels), t_obs, alternative) / total
        mirror = all(2 * k == len(b) for b, k in zip(blocks, ks))    # swapping every stratum gives the same |T|
        two = 2.0 if mirror and alternative == "two-sided" else 1.0
        return float(p), min(1.0, two / total), total, True
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_resamples, len(values)), bool)
    for b, k in zip(blocks, ks):
        order = np.argsort(rng.random((n_resamples, len(b))), axis=1)[:, :k]
        rows = np.repeat(np.arange(n_resamples), k)
        labels[rows, b[order.ravel()]] = True
    p = float((_count(stat(values, labels), t_obs, alternative) + 1) / (n_resamples + 1))
    return p, 1.0 / (n_resamples + 1), total, False


def speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, what: str = "gender", n_resamples: int = N_PERM,
                 seed: int = 0, min_speakers: int = MIN_SPEAKERS, strata: bool = False,
                 alpha: float = ALPHA, alternative: str = "two-sided") -> Test:
    """Test of equal ``col`` between two groups of speakers (segments of ``a`` vs ``b``; each table has a
    ``speaker`` column, and a ``fold`` column with ``strata``). T = mean of group a's speaker means − mean of
    group b's; two-sided on |T| (default), or one-sided as pre-registered in an analysis plan
    (``alternative="greater"``: p counts T >= t_obs; ``"less"``: T <= t_obs). Labels permuted over all speakers
    (``scipy.stats.permutation_test``, exact when C(n_a + n_b, n_a) <= ``n_resamples``) or, with ``strata``,
    within each fold (its speakers share a model). Not testable with fewer than ``min_speakers`` per group or
    when the smallest attainable p exceeds ``alpha`` (one-sided it is half the two-sided one in a mirrored
    design: EmoDB's 5 folds of 1 F + 1 M, 1/32 instead of 2/32). The speaker means are the seed averages of
    ``collect.pool``: a permutation test is conditional on the trained models (their seed spread is in the
    intervals, not here)."""
    from scipy.stats import permutation_test
    _check_alternative(alternative)
    side = side_text(alternative)
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
        p, min_p, total, exact = _stratified(values, in_a, st, n_resamples, seed, alternative)
        where = f"within {n_strata} fold{'s' if n_strata > 1 else ''}" if n_strata > 1 else "over all speakers"
        note = f"exact over {total} relabellings {where}" if exact else f"{n_resamples} random relabellings {where}"
    else:
        total = comb(na + nb, na)
        if alternative == "two-sided":
            res = permutation_test((values[:na], values[na:]),
                                   lambda x, y, axis=-1: np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis)),
                                   permutation_type="independent", vectorized=True, n_resamples=n_resamples,
                                   alternative="greater", random_state=seed)
        else:
            res = permutation_test((values[:na], values[na:]),
                                   lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                   permutation_type="independent", vectorized=True, n_resamples=n_resamples,
                                   alternative=alternative, random_state=seed)
        exact = total <= n_resamples
        p = float(res.pvalue)
        two = 2.0 if na == nb and alternative == "two-sided" else 1.0
        min_p = min(1.0, two / total) if exact else 1.0 / (n_resamples + 1)
        note = f"exact over {total} relabellings" if exact else f"{n_resamples} random relabellings"
    if side:
        note += f", {side}"
    if min_p > alpha:
        return Test(np.nan, min_p, na, nb, f"not testable ({na} vs {nb} speakers, {note}: smallest attainable p "
                                           f"{min_p:.3g} > α {alpha})", side)
    return Test(p, min_p, na, nb, note, side)


def paired_speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, n_resamples: int = N_PERM, seed: int = 0,
                        min_speakers: int = MIN_SPEAKERS, alpha: float = ALPHA,
                        alternative: str = "two-sided") -> Test:
    """Sign-flip test of equal ``col`` for the speakers present in both ``a`` and ``b`` (the same speakers
    under two conditions): per speaker the mean over its segments in each, then
    ``scipy.stats.permutation_test(permutation_type="samples")`` on |mean per-speaker difference| (two-sided),
    or on the mean difference a − b one-sided (``greater`` / ``less``; smallest attainable p 1 / 2^n instead of
    2 / 2^n). Conditional on the trained models, as ``speaker_test``."""
    from scipy.stats import permutation_test
    _check_alternative(alternative)
    side = side_text(alternative)
    ma, mb = speaker_means(a, col), speaker_means(b, col)
    common = sorted(set(ma.index) & set(mb.index))
    if len(common) < min_speakers:
        return Test(np.nan, np.nan, len(common), len(common),
                    f"not testable (speakers in both < {min_speakers}: {len(common)})")
    x, y = ma[common].to_numpy(), mb[common].to_numpy()
    if alternative == "two-sided":
        res = permutation_test((x, y), lambda u, v, axis=-1: np.abs(np.mean(u - v, axis=axis)),
                               permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                               alternative="greater", random_state=seed)
    else:
        res = permutation_test((x, y), lambda u, v, axis=-1: np.mean(u - v, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                               alternative=alternative, random_state=seed)
    total = 2 ** len(common)
    exact = total <= n_resamples
    min_p = min(1.0, (2.0 if alternative == "two-sided" else 1.0) / total) if exact else 1.0 / (n_resamples + 1)
    note = f"exact over {total} sign flips" if exact else f"{n_resamples} random sign flips"
    if side:
        note += f", {side}"
    if min_p > alpha:
        return Test(np.nan, min_p, len(common), len(common), f"not testable ({len(common)} speakers, {note}: "
                                                              f"smallest attainable p {min_p:.3g} > α {alpha})", side)
    return Test(float(res.pvalue), min_p, len(common), len(common), note, side)


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


def holm_floor(min_p) -> np.ndarray:
    """Per test, the smallest Holm-adjusted p it can reach whatever the data, from each test's smallest attainable
    p (NaN: no test, not counted, as in ``holm``). At best every test that can have a smaller p comes first, so a
    test's floor is its smallest p times (m − the tests with a smaller smallest p). Above ``ALPHA`` the test cannot
    be rejected in its family: six speakers' sign flips (2 / 64) over 7 comparisons, 0.219 each; beside tests of
    24 speakers the same 0.219 (they come first, and the 7 remain)."""
    m = np.asarray(min_p, float)
    out = np.full(m.shape, np.nan)
    ok = ~np.isnan(m)
    k = ok.sum()
    for i in np.flatnonzero(ok):
        out[i] = min(1.0, m[i] * (k - (m[ok] < m[i]).sum()))
    return out


def holm_families(df: pd.DataFrame, col: str, family_cols=("protocol",), attack_col: str | None = "attack",
                  adjust=holm) -> np.ndarray:
    """Holm within each family (``FAMILY_RULE``): rows grouped by ``family_cols`` (the protocol), the
    reference configurations (``REFERENCES``) outside every family (NaN). ``adjust=holm_floor`` on a column of
    smallest attainable p gives each test's floor in the same families."""
    out = np.full(len(df), np.nan)
    if not len(df):
        return out
    member = ~df[attack_col].isin(REFERENCES).to_numpy() if attack_col and attack_col in df else np.ones(len(df), bool)
    keys = [c for c in family_cols if c in df]
    groups = df.groupby(keys, sort=False).indices.values() if keys else [np.arange(len(df))]
    for idx in groups:
        idx = idx[member[idx]]
        out[idx] = adjust(df[col].to_numpy(float)[idx])
    return out


def mean_std(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1; NaN for one value) and count of the non-NaN values."""
    v = np.asarray([x for x in values if x == x], float)
    if v.size == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else np.nan, int(v.size)
