"""What a study design can decide, before it runs: the power of the speaker-level gender tests and the width of
the equivalence interval, for the folds, speakers, segments and seeds a plan commits to (issue 27).

``report.plan.sde_from_segments`` gives the normal-approximation smallest detectable effect from a pilot's
files. Here the power is simulated for the test the report will actually run (``stats.speaker_test``: the
female − male difference of speaker means, gender labels permuted within each fold, exact where the
relabellings are few), so a design whose permutations cannot reach α says so, and a design that can only just
reach it (EmoDB's 5 folds of 1 F + 1 M, one-sided: 1/32) gets its true, low power instead of a normal value.

The model of a speaker's mean (the measure averaged over its test segments and the k seeds of its fold):

    m_i = mu + delta * [female] + b_i + s_i + e_i,   b_i ~ N(0, sd_between^2)   (the speaker)
                                                      s_i ~ N(0, sd_seed^2 / k)  (speaker x training seed)
                                                      e_i ~ N(0, rate (1 - rate) / n_segments)

The fold's own model effect is shared by a fold's speakers and cancels in the within-fold comparison. The
pilot gives the variances: ``between_from_pilot`` subtracts the binomial part (and the speaker x seed part, v1
had one seed) from the observed variance of the pilot's speaker means; ``seed_sd_from_counts`` reads the SD
across seeds of each speaker's accuracy on the same segments (the models issue's ``speakers.csv``).

    python -m ser_attacks.report.power --pilot results/study/emodb --corpus emodb --n-folds 5 \\
        --segments 38 --seeds 3 --seed-counts recipes/speaker_independent/emodb/speakers.csv --alternative less
"""
from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from math import comb, prod
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.corpora import EMODB_MALE
from . import stats

ALTERNATIVES = stats.ALTERNATIVES
# the speakers of each corpus, named and gendered as ser_attacks.data.corpora parses their files (EmoDB's male
# speakers from there; EMOVO f1-3 / m1-3; RAVDESS odd actors male) — the design needs no audio
CORPUS_SPEAKERS = {
    "emodb": {f"emodb_{s}": ("male" if s in EMODB_MALE else "female")
              for s in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")},
    "emovo": {f"emovo_{g}{i}": ("female" if g == "f" else "male") for g in "fm" for i in (1, 2, 3)},
    "ravdess": {f"ravdess_{a:02d}": ("male" if a % 2 else "female") for a in range(1, 25)},
}


@dataclass(frozen=True)
class Design:
    """Per fold (stratum) the number of female and male test speakers."""
    folds: tuple[tuple[int, int], ...]

    @property
    def n_female(self) -> int:
        return sum(f for f, _ in self.folds)

    @property
    def n_male(self) -> int:
        return sum(m for _, m in self.folds)

    @property
    def relabellings(self) -> int:
        """Within-fold relabellings (a fold of one speaker has one: it cannot be permuted)."""
        return prod(comb(f + m, f) for f, m in self.folds)

    def min_p(self, alternative: str = "two-sided") -> float:
        """Smallest attainable p of the within-fold permutation test (exact enumeration)."""
        mirror = all(f == m for f, m in self.folds)          # swapping every fold gives the same |T|
        k = 2.0 if alternative == "two-sided" and mirror else 1.0
        return min(1.0, k / self.relabellings)


def design(corpus: str, n_folds: int | None = None, seed: int = 0) -> Design:
    """The v2 fold layout of a corpus, from the project's own fold code (``split.speaker_folds``)."""
    from ..split import speaker_folds
    if corpus not in CORPUS_SPEAKERS:
        raise ValueError(f"corpus {corpus!r}: known {sorted(CORPUS_SPEAKERS)}")
    spk = CORPUS_SPEAKERS[corpus]
    table = pd.DataFrame({"speaker": list(spk), "gender": list(spk.values()), "corpus": corpus})
    folds = speaker_folds(table, n_folds, seed, min_folds=2)
    return Design(tuple((sum(spk[s] == "female" for s in f), sum(spk[s] == "male" for s in f)) for f in folds))


def _labels(d: Design, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """Female labels of every within-fold relabelling (exact) or of ``n_max`` random ones; row 0 = observed."""
    offs = np.cumsum([0] + [f + m for f, m in d.folds])
    observed = np.concatenate([np.r_[np.ones(f, bool), np.zeros(m, bool)] for f, m in d.folds])
    if d.relabellings <= n_max:
        choices = [list(itertools.combinations(range(o, o + f + m), f)) for o, (f, m) in zip(offs, d.folds)]
        rows = np.zeros((d.relabellings, len(observed)), bool)
        for i, pick in enumerate(itertools.product(*choices)):
            for c in pick:
                rows[i, list(c)] = True
        return rows
    rows = np.zeros((n_max, len(observed)), bool)
    rows[0] = observed
    for o, (f, m) in zip(offs, d.folds):
        order = np.argsort(rng.random((n_max - 1, f + m)), axis=1)[:, :f]
        rows[np.repeat(np.arange(1, n_max), f), o + order.ravel()] = True
    return rows


def power(d: Design, delta: float, sd: float, alternative: str = "two-sided", alpha: float = stats.ALPHA,
          n_sim: int = 2000, n_perm: int = 4000, seed: int = 0) -> float:
    """Probability that the within-fold permutation test of female − male rejects at ``alpha`` when the true
    difference of speaker means is ``delta`` and each speaker mean has SD ``sd`` (Monte Carlo, seeded)."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative {alternative!r} not in {ALTERNATIVES}")
    if d.n_female == 0 or d.n_male == 0 or d.min_p(alternative) > alpha:
        return 0.0
    rng = np.random.default_rng(seed)
    labels = _labels(d, n_perm, rng)
    female = np.concatenate([np.r_[np.ones(f, bool), np.zeros(m, bool)] for f, m in d.folds])
    w = labels / d.n_female - ~labels / d.n_male                 # T of each relabelling = w @ values
    exact = d.relabellings <= n_perm
    if exact:
        obs = int(np.flatnonzero((labels == female).all(axis=1))[0])
    hits = 0
    for start in range(0, n_sim, 500):
        n = min(500, n_sim - start)
        values = rng.normal(0.0, sd, (n, len(female))) + delta * female
        t = values @ w.T                                          # (n, relabellings)
        t_obs = t[:, obs] if exact else t[:, 0]
        if alternative == "two-sided":
            t, t_obs = np.abs(t), np.abs(t_obs)
        elif alternative == "less":
            t, t_obs = -t, -t_obs
        ge = (t >= t_obs[:, None] - 1e-12).sum(axis=1)
        p = ge / t.shape[1]          # exact: every relabelling; random: row 0 is the observed one
        hits += int((p <= alpha).sum())
    return hits / n_sim


def smallest_detectable(d: Design, sd: float, alternative: str = "two-sided", alpha: float = stats.ALPHA,
                        target: float = 0.8, top: float = 1.0, seed: int = 0) -> float | str:
    """The smallest |delta| detected with probability ``target`` (bisection on ``power``; one simulation
    stream for every delta, so the power is monotone in delta); 'not testable' where the permutations cannot
    reach ``alpha``; '> top' where even ``top`` is not enough."""
    if d.n_female == 0 or d.n_male == 0 or d.min_p(alternative) > alpha:
        return "not testable"
    sign = -1.0 if alternative == "less" else 1.0
    if power(d, sign * top, sd, alternative, alpha, seed=seed) < target:
        return f"> {top:g}"
    lo, hi = 0.0, top
    for _ in range(14):
        mid = (lo + hi) / 2
        if power(d, sign * mid, sd, alternative, alpha, seed=seed) >= target:
            hi = mid
        else:
            lo = mid
    return round(hi, 3)


def equivalence_halfwidth(d: Design, sd: float, alpha: float = stats.ALPHA) -> float:
    """Expected half-width of the female − male 95 % interval as the report builds it (normal spread of the
    difference of two means of speaker means, widened by ``stats.small_sample_factor`` for the speakers):
    a 'negligible' claim needs it below the equivalence margin even when the true difference is 0."""
    from scipy.stats import norm
    n = d.n_female + d.n_male
    se = sd * np.sqrt(1 / d.n_female + 1 / d.n_male)
    return float(norm.ppf(1 - alpha / 2) * se * stats.small_sample_factor(n, alpha))


# ------------------------------------------------------------------------------------------- the pilot
def between_from_pilot(folder, seed_sd: float = 0.0) -> dict:
    """SD between speakers of a pilot's speaker means of clean accuracy (its distinct speaker_cv segments:
    ``plan._clean_segments``), net of the binomial part (rate (1 − rate) / n of each speaker) and of the speaker x
    seed part (``seed_sd``; the pilot had one model per fold): per corpus."""
    from .plan import _clean_segments
    out = {}
    for ds, sub in _clean_segments(Path(folder)).groupby("dataset"):
        spk = sub.groupby("speaker").clean_ok.agg(["mean", "size"])
        rate = float(sub.clean_ok.mean())
        observed = float(spk["mean"].var(ddof=1))
        binomial = float((rate * (1 - rate) / spk["size"]).mean())
        out[str(ds)] = {"speakers": len(spk), "segments_per_speaker": round(float(spk["size"].mean()), 1),
                        "rate": round(rate, 4), "sd_observed": round(observed ** 0.5, 4),
                        "sd_between": round(max(0.0, observed - binomial - seed_sd ** 2) ** 0.5, 4)}
    return out


def seed_sd_from_counts(path) -> float:
    """Root mean over speakers of the variance across seeds of the speaker's accuracy (same test segments,
    different training seeds), from a ``speakers.csv`` (fold, seed, speaker, n_correct, n)."""
    t = pd.read_csv(path)
    t = t.assign(acc=t.n_correct / t.n)
    var = t.groupby("speaker").acc.var(ddof=1).dropna()
    if var.empty:
        raise ValueError(f"{path}: no speaker was tested by two seeds")
    return float(var.mean() ** 0.5)


def projected_sd(sd_between: float, rate: float, segments: float, seed_sd: float, seeds: int) -> float:
    """SD of one speaker's mean in the planned design (module docstring)."""
    return float(np.sqrt(sd_between ** 2 + seed_sd ** 2 / seeds + rate * (1 - rate) / segments))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ser_attacks.report.power", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, choices=sorted(CORPUS_SPEAKERS))
    ap.add_argument("--n-folds", type=int, default=None, help="speaker folds (default: the corpus's)")
    ap.add_argument("--pilot", type=Path, help="a pilot export folder (results/<study>/<corpus>)")
    ap.add_argument("--sd-between", type=float, help="instead of --pilot: SD between speakers")
    ap.add_argument("--rate", type=float, help="instead of --pilot: the rate of the measure (e.g. accuracy)")
    ap.add_argument("--segments", type=float, required=True, help="test segments per speaker in the design")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-sd", type=float, help="SD across seeds of a speaker's accuracy")
    ap.add_argument("--seed-counts", type=Path, help="speakers.csv of recipes/speaker_independent (→ --seed-sd)")
    ap.add_argument("--alternative", choices=ALTERNATIVES, default="two-sided")
    ap.add_argument("--alpha", type=float, default=stats.ALPHA)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--margin", type=float, default=0.10, help="equivalence margin of a 'negligible' claim")
    ap.add_argument("--top", type=float, default=1.0, help="largest effect searched (1 for accuracies; dB, σ...)")
    a = ap.parse_args(argv)
    if (a.pilot is None) == (a.sd_between is None or a.rate is None):
        ap.error("give either --pilot or both --sd-between and --rate")
    if a.segments <= 0 or a.seeds < 1:
        ap.error("--segments must be > 0 and --seeds >= 1")
    if a.pilot is not None and not (a.pilot / "segments.csv.gz").is_file():
        ap.error(f"--pilot {a.pilot}: no segments.csv.gz there (an export folder: results/<study>/<corpus>)")
    if a.seed_counts is not None and not a.seed_counts.is_file():
        ap.error(f"--seed-counts {a.seed_counts}: no such file")
    seed_sd = a.seed_sd if a.seed_sd is not None else (seed_sd_from_counts(a.seed_counts) if a.seed_counts else 0.0)
    if a.pilot is not None:
        pilot = between_from_pilot(a.pilot, seed_sd=seed_sd).get(a.corpus)
        if pilot is None:
            ap.error(f"{a.pilot}: no speaker_cv segments of {a.corpus}")
        sd_between, rate = pilot["sd_between"], pilot["rate"]
    else:
        pilot, sd_between, rate = None, a.sd_between, a.rate
    d = design(a.corpus, a.n_folds)
    sd = projected_sd(sd_between, rate, a.segments, seed_sd, a.seeds)
    half = equivalence_halfwidth(d, sd, a.alpha)
    out = {"corpus": a.corpus, "folds": [list(f) for f in d.folds], "relabellings": d.relabellings,
           "min_p": round(d.min_p(a.alternative), 6), "alternative": a.alternative, "pilot": pilot,
           "seed_sd": round(seed_sd, 4), "seeds": a.seeds, "segments_per_speaker": a.segments,
           "sd_speaker_mean": round(sd, 4),
           "smallest_detectable_effect": smallest_detectable(d, sd, a.alternative, a.alpha, a.power, a.top),
           "equivalence_halfwidth": round(half, 3),
           "negligible_reachable": bool(half < a.margin)}
    import yaml
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False))


if __name__ == "__main__":
    main()
