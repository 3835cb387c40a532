"""The study's three questions re-asked on the minimal perturbations (issue 25, "measures below saturation").

    python -m ser_attacks.report.min_norm_questions results/<study>/<corpus> [...] --out <file.md> [--plan <yaml>]
    python -m ser_attacks.report.min_norm_questions recipes/min_norm/segments_bench_n24.csv.gz --out <file.md>

Input: per-segment tables in the columns of an export's ``segments.csv.gz`` (``report.export``; a folder holding
one, or the file itself): one row per attacked segment and run, with ``min_linf`` / ``min_l2`` / ``min_snr_db``
for the minimum-norm attacks (``ser_attacks.min_norm``: FMN, DeepFool, C&W, Boundary) and ``adv_pred`` and the
budget ``attack.eps`` (or ``config`` ``eps=<ε>``) for the fixed-budget L∞ attacks (FGSM, BIM, PGD, noise).

**The measure** (``speaker_medians``): an attack's minimal L∞ / L2 counts only in the norm it minimises
(``min_norm.norm_of``: FMN's ``attack.norm``, C&W L∞: L∞, DeepFool / C&W L2 / Boundary: L2); the SNR of the audio
change compares them all on one scale. Per speaker, the median minimal perturbation of the segments the model
classified correctly (the ones an attack has to change; the others count 0 and are left out, as the success
rate leaves them out: ranking on them would rank clean accuracy). SNR: the quieter, the smaller; it enters
as −SNR so that "larger" means "a bigger perturbation" on every measure. **Censoring rule:** a segment the
attack never flipped (min = +inf, SNR = −inf) counts as larger than every flipped one; the speaker's median
is then exact as long as fewer than half of its correct segments are censored, and +inf ("censored") when at
least half are. Across speakers: the median of the speaker medians (+inf when at least half of them are),
with a 95 % bootstrap interval over speakers, widened for few speakers as every interval of the report
(``ser_attacks.min_norm``'s ``_ci``), none with fewer than ``stats.MIN_SPEAKERS`` speakers. For differences
and tests a speaker median is capped at the top of the measure's common axis (``cap``: 1.05 × the largest
finite minimal perturbation in the table, or the loudest SNR − 1 dB, as the curves' axes are): a censored
speaker then counts as "at least the largest perturbation seen", which can only shrink a difference.

**The questions**, speakers the unit, ``report.stats``' tests and the one Holm rule (``stats.FAMILY_RULE``:
one family = one question × one measure × one protocol (split), its members every corpus and attack) — except
the ranking, a question asked of each corpus:

1. *Ranking* (``ranking``): every pair of minimum-norm attacks of a corpus on the SAME correct segments:
   Δ = mean over speakers of (speaker median a − speaker median b) [cluster bootstrap over speakers], p from
   the sign-flip test over speakers (``stats.paired_speaker_test``), Holm over the pairs of that corpus and
   protocol (study v2's plan: "Holm over the attacks compared", as for the success-rate ranking of
   recipes/study/findings.py); the one rule's value, every corpus in one family, beside it (``p_holm_rule``).
   The smallest-perturbation attack is *supported* when it is below every other after Holm. Beside it
   (``budgets``) the minimum-norm attack's curve against fixed-budget runs on the same segments: success rate at
   ε (share of the correct segments with minimal L∞ ≤ ε) minus the fixed-budget attack's success at that ε: ≥ 0
   is what a minimal perturbation must give (issue 25's validation against BIM), as a paired difference with its
   interval.
2. *Gender* (``gender``): female − male of the speaker medians [bootstrap over speakers of each gender],
   labels permuted **within folds** (``stats.speaker_test(strata=True)``: the speakers of a fold share a
   model); *not testable* where the design's smallest attainable p exceeds α or a gender has fewer than
   ``stats.MIN_SPEAKERS`` speakers.
3. *Corpus* (``corpus``): **descriptive only** — each corpus's median minimal perturbation side by side; a
   language difference is not identifiable from one corpus per language (speakers, model, emotion set and
   recordings differ at once), so no test is made.

**Training seeds** (a file's ``seed`` column; the report's model of each run): a segment's runs of one model are
pooled (``tidy``); where a fold was attacked through several models, a speaker's median is taken per model and
averaged over them (the point estimate: the seed average), and every interval here draws each fold's seeds too,
shared by its speakers and by both genders (``stats.boot_draws``, as every interval of the report). With one
model per fold: exactly the speaker-only numbers.
"""
from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..min_norm import _ci, default_grid, norm_of, snr_grid
from . import plan as planmod
from . import stats
from .export import SEGMENTS_FILE, _read_segments
from .format import FEW

MEASURES = {"min_linf": "L∞ (σ)", "min_l2": "L2 (σ)", "min_snr_db": "SNR of the audio change (dB)"}
FIXED_BUDGET = ("fgsm", "bim", "pgd", "noise")       # L∞ attacks at a given budget attack.eps
N_BOOT = 1000


# ------------------------------------------------------------------------------------------------- input
def load(paths) -> pd.DataFrame:
    """Export folders (their ``segments.csv.gz``) or per-segment files → one table of segment rows."""
    parts = []
    for p in map(Path, paths):
        if p.is_dir():
            if not (p / SEGMENTS_FILE).exists():
                raise SystemExit(f"error: {p} holds no {SEGMENTS_FILE}")
            parts.append(_read_segments(p))
        elif p.is_file():
            parts.append(pd.read_csv(p, dtype={"speaker": str, "recording_id": str, "gender": str}))
        else:
            raise SystemExit(f"error: {p}: no such file or folder")
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def rows_from_runs(runs, samples: dict) -> pd.DataFrame:
    """The report's runs (``collect.Runs`` + per-run ``collect.Samples``) → the per-segment rows ``tidy`` reads:
    every minimum-norm run that logged minimal perturbations and every fixed-budget run, its report setting kept."""
    from .collect import model_labels
    parts = []
    models = dict(zip(runs.df.run_id, model_labels(runs.df)))
    for r in runs.df.itertuples():
        s = samples.get(r.run_id)
        minimal = s is not None and bool(s.extra) and any(k in s.extra for k in MEASURES)
        if s is None or not (minimal or r.attack in FIXED_BUDGET):
            continue
        t = s.table()
        n = len(t)
        parts.append(pd.DataFrame({
            "run_id": r.run_id, "setting": r.setting, "split": str(r.params.get("split.mode", "")),
            "attack": r.attack, "config": r.config, "attack.eps": r.params.get("attack.eps"),
            "attack.norm": r.params.get("attack.norm"), "seed": models[r.run_id], "fold": t.fold.to_numpy(),
            "speaker": t.speaker.astype(str),
            "gender": t.gender.to_numpy(), "recording_id": t.key.to_numpy(), "segment": 0,
            "test_index": np.zeros(n, int), "label": s.label, "clean_pred": s.clean_pred, "adv_pred": s.adv_pred,
            **{k: (s.extra or {}).get(k, np.full(n, np.nan)) for k in MEASURES}}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _config_value(config: str, key: str) -> str | None:
    """``<key>=<value>`` in a run's config text (its swept parameters), or None."""
    m = re.search(rf"(?:^|[\s,]){key}=([^\s,]+)", str(config))
    return m.group(1) if m else None


def _budget(row_eps, config: str) -> float:
    """A fixed-budget run's ε: its ``attack.eps`` or, where the file lacks it, ``eps=<ε>`` in its config."""
    try:
        v = float(row_eps)
        if v == v:
            return v
    except (TypeError, ValueError):
        pass
    v = _config_value(config, "eps")
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def tidy(seg: pd.DataFrame) -> pd.DataFrame:
    """One row per segment, trained model and attack configuration of a corpus and protocol (runs of one model on
    the same segment — repeats, attack seeds — pooled: the median of their minimal perturbations, the mean of
    ``flipped``; the model: the training ``seed`` of the segment's fold, "" where the file has none). Columns:
    setting, protocol, attack, config, model, budget (fixed-budget attacks; NaN else), fold, speaker, gender, key
    (the segment), correct, flipped (the run changed a correct prediction), and the measures' sizes ``min_linf``,
    ``min_l2``, ``min_snr_db`` (−SNR; NaN where not measured)."""
    if not len(seg):
        return pd.DataFrame()
    s = seg.copy()
    for c, default in (("split", ""), ("fold", -1), ("config", ""), ("segment", 0)):
        if c not in s:
            s[c] = default
    if "setting" not in s:
        s["setting"] = s.dataset.astype(str) + " (split=" + s.split.astype(str) + ")"
    s["protocol"] = "split=" + s.split.astype(str)
    s["key"] = (s.fold.astype(str) + "|" + s.test_index.astype(str) + "|" + s.recording_id.astype(str) + "|"
                + s.segment.astype(str))
    s["correct"] = s.clean_pred.to_numpy() == s.label.to_numpy()
    s["flipped"] = (s.correct & (s.adv_pred.to_numpy() != s.label.to_numpy())).astype(float)
    eps = s["attack.eps"] if "attack.eps" in s else pd.Series(np.nan, index=s.index)
    s["budget"] = [(_budget(e, c) if a in FIXED_BUDGET else np.nan) for a, e, c in zip(s.attack, eps, s.config)]
    norm_col = s["attack.norm"] if "attack.norm" in s else pd.Series(np.nan, index=s.index)
    norm = [norm_of(a, n if n == n else _config_value(c, "norm")) for a, n, c in zip(s.attack, norm_col, s.config)]
    for m in MEASURES:
        v = s[m].astype(float) if m in s else pd.Series(np.nan, index=s.index)
        if m != "min_snr_db":        # an attack's minimal L∞ / L2 only in the norm it minimises; SNR for all
            v = v.where([k == m[4:] for k in norm])
        s[m] = -v if m == "min_snr_db" else v
    s["model"] = s.seed.astype(str) if "seed" in s else ""
    keys = ["setting", "protocol", "attack", "config", "key", "model"]
    agg = {c: "first" for c in ("budget", "fold", "speaker", "gender", "correct")}
    agg.update({m: "median" for m in MEASURES}, flipped="mean")
    return s.groupby(keys, sort=True, dropna=False).agg(agg).reset_index()


# ---------------------------------------------------------------------------------------- the measure
def _slots(t: pd.DataFrame) -> pd.Series:
    """Each row's seed slot: the rank of its model among its fold's models (``collect.pool``'s rule)."""
    return t.groupby("fold").model.transform(lambda m: m.map({v: i for i, v in enumerate(sorted(set(m)))}))


def speaker_medians(t: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per speaker (one attack configuration's rows): its median ``measure`` over the correct segments, never
    flipped = +inf (censoring rule: module docstring), with the counts. Columns speaker, gender, fold,
    n_correct, n_censored, median. Where a fold was attacked through several trained models (``model``): the
    median per model (``median@j``, j = the model's rank within the fold) and ``median`` their mean (the seed
    average; the bootstrap draws the fold's seeds from them)."""
    c = t[t.correct & t[measure].notna()]
    cols = ["speaker", "gender", "fold", "n_correct", "n_censored", "median"]
    several = "model" in c and len(c) and c.groupby("fold").model.nunique().max() > 1
    if several:
        c = c.assign(slot=_slots(c).to_numpy())
    rows = []
    for s_, g in c.groupby(c.speaker.astype(str), sort=True):
        row = {"speaker": s_, "gender": g.gender.iloc[0], "fold": g.fold.iloc[0], "n_correct": len(g),
               "n_censored": int(np.isposinf(g[measure]).sum())}
        if several:
            per = {f"median@{int(j)}": float(np.median(x[measure])) for j, x in g.groupby("slot", sort=True)}
            row.update(per, median=float(np.mean(list(per.values()))))
        else:
            row["median"] = float(np.median(g[measure]))
        rows.append(row)
    out = pd.DataFrame(rows)
    if not len(out):
        return pd.DataFrame(columns=cols)
    slots = sorted((c_ for c_ in out if c_.startswith("median@")), key=lambda c_: int(c_.split("@")[1]))
    return out[cols + slots]


def _seed_values(med: pd.DataFrame, col: str, n_boot: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(speaker draws, per draw and speaker its ``col``): the seed average of the fold's drawn seeds where
    ``med`` has per-seed columns (``stats.boot_draws``), else ``col`` itself."""
    by = stats.seed_matrix(med, col)
    v = med[col].to_numpy(float)
    if by is None:
        pick, _ = stats.boot_draws(len(v), None, n_boot, rng)
        return pick, np.broadcast_to(v, (n_boot, len(v)))
    fold = med.fold.astype(str).to_numpy()
    slots = {f: [j for j in range(by.shape[1]) if (~np.isnan(by[fold == f, j])).any()] for f in sorted(set(fold))}
    pick, seeds = stats.boot_draws(len(v), {f: len(x) for f, x in slots.items()}, n_boot, rng)
    vals = np.broadcast_to(v, (n_boot, len(v))).copy()
    if seeds is None:
        return pick, vals
    with np.errstate(invalid="ignore"):
        for f, sl in slots.items():
            rows = np.flatnonzero(fold == f)
            x = by[np.ix_(rows, sl)][None]                       # (1, n_f, k); +inf (censored) kept
            c = seeds[f][:, None, :]                             # (n_boot, 1, k)
            have = ~np.isnan(x)
            num = np.where((c > 0) & have, c * np.where(have, x, 0.0), 0.0).sum(axis=2)
            den = np.where(have, c, 0.0).sum(axis=2)
            vals[:, rows] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return pick, vals


def across_speakers(med: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """The median of the speaker medians and its 95 % interval (bootstrap over speakers; NaN with fewer than
    ``stats.MIN_SPEAKERS`` speakers)."""
    v = med["median"].to_numpy(float)
    if not len(v):
        return np.nan, np.nan, np.nan
    point = float(np.median(v))
    if len(v) < stats.MIN_SPEAKERS:
        return point, np.nan, np.nan
    pick, vals = _seed_values(med, "median", n_boot, np.random.default_rng(seed))     # and each fold's seeds
    reps = np.median(np.take_along_axis(vals, pick, axis=1), axis=1)
    lo, hi = _ci(reps[:, None], len(v), lower=-np.inf)
    return point, float(lo[0]), float(hi[0])


def cap(t: pd.DataFrame, measure: str) -> float:
    """The top of ``measure``'s common axis over the table (the curves' axes: ``min_norm.default_grid`` /
    ``snr_grid``): speaker medians above it (censored ones) are capped there for differences and tests."""
    v = t.loc[t.correct, measure].to_numpy(float)
    if measure == "min_snr_db":
        return -float(snr_grid(-v)[-1])
    return float(default_grid(v)[-1])


def _capped(med: pd.DataFrame, top: float) -> pd.DataFrame:
    """``v``: the speaker median capped at ``top``; with per-seed medians, each capped (``v@j``) and ``v`` their
    mean."""
    slots = [c for c in med if c.startswith("median@")]
    if not slots:
        return med.assign(v=np.minimum(med["median"].to_numpy(float), top))
    capped = {f"v@{c.split('@')[1]}": np.minimum(med[c].to_numpy(float), top) for c in slots}
    with np.errstate(invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v = np.nanmean(np.column_stack(list(capped.values())), axis=1)
    return med.assign(v=v, **capped)


def _show(v: float, measure: str) -> float:
    """A size back in the measure's own sign (SNR dB: −size)."""
    return -v if measure == "min_snr_db" else v


def _configs(t: pd.DataFrame, measure: str) -> pd.DataFrame:
    return t[t[measure].notna() & t.budget.isna()]


# --------------------------------------------------------------------------------------------- ranking
def ranked_configs(names) -> list[tuple[str, str]]:
    """The (attack, config) pairs that the ranking compares: one per attack and norm. A ranking compares attacks
    (study v2's plan lists six: FMN L∞ and L2, DeepFool, C&W-L2, C&W-L∞, Boundary), so an attack's several
    configurations (DeepFool's max_iter 1, 5, 20) are neither compared with each other nor counted several times in
    Holm: the one with the most iterations (``max_iter``: the fullest search) stands for the attack, else the first
    in sorted order. The others stay in the summaries, marked not ranked."""
    groups: dict = {}
    for a, c in sorted(names):
        norm = re.search(r"norm=(\w+)", str(c))
        groups.setdefault((a, norm.group(1) if norm else None), []).append((a, c))

    def iters(ac) -> int:
        m = re.search(r"max_iter=(\d+)", str(ac[1]))
        return int(m.group(1)) if m else -1
    return sorted(max(v, key=iters) for v in groups.values())


def ranking(t: pd.DataFrame, measure: str, n_boot: int = N_BOOT) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summaries, pairs) of the minimum-norm attacks of each corpus on ``measure``. summaries: per setting and
    attack configuration the median of the speaker medians [CI], speakers, correct segments, censored segments.
    ``ranked``: whether the configuration stands for its attack in the pairs (``ranked_configs``).
    pairs: every pair a, b of ranked configurations on the correct segments both attacked: Δ = mean over speakers of
    (median a − median b), capped (``cap``), CI over speakers, sign-flip p; ``p_holm``: Holm over the pairs of the
    corpus and protocol (the attacks compared), ``p_holm_rule``: within the protocol, every corpus together
    (``stats.FAMILY_RULE``), ``p_holm_floor``: each pair's smallest reachable ``p_holm`` (``stats.holm_floor``)."""
    m = _configs(t, measure)
    top = cap(m, measure) if len(m) else np.nan
    sums, pairs = [], []
    for (setting, protocol), g in m.groupby(["setting", "protocol"], sort=True):
        names = sorted({(a, c) for a, c in zip(g.attack, g.config)})
        ranked = ranked_configs(names)
        for a, c in names:
            med = speaker_medians(g[(g.attack == a) & (g.config == c)], measure)
            mid, lo, hi = across_speakers(med, n_boot)
            sub = g[(g.attack == a) & (g.config == c) & g.correct]
            sums.append({"setting": setting, "protocol": protocol, "attack": a, "config": c, "median": mid,
                         "lo": lo, "hi": hi, "n_speakers": len(med), "n_correct": len(sub),
                         "n_censored": int(np.isposinf(sub[measure]).sum()), "ranked": (a, c) in ranked})
        for (a, ca), (b, cb) in itertools.combinations(ranked, 2):
            x = g[(g.attack == a) & (g.config == ca) & g.correct]
            y = g[(g.attack == b) & (g.config == cb) & g.correct]
            common = sorted(set(x.key) & set(y.key))
            mx = _capped(speaker_medians(x[x.key.isin(common)], measure), top)
            my = _capped(speaker_medians(y[y.key.isin(common)], measure), top)
            d = mx.set_index("speaker").v - my.set_index("speaker").v
            if len(d):
                vb = [c for c in my if c == "v" or c.startswith("v@")]
                dd = mx.set_index("speaker").join(my.set_index("speaker")[vb].rename(columns=lambda c: "v_b" + c[1:]),
                                                  how="inner")
                dd = stats.with_seeds(dd.assign(speaker=dd.index), "d", lambda p, q: p - q, "v", "v_b")
                reps = stats.cluster_boot(dd.index, dd.d.to_numpy(), None, n_boot, np.random.default_rng(0),
                                          dd.fold.to_numpy(), stats.seed_matrix(dd, "d"))
                lo, hi = stats._interval(reps, stats.ALPHA, len(d)) if len(d) >= stats.MIN_SPEAKERS else (np.nan,
                                                                                                           np.nan)
            else:
                lo = hi = np.nan
            test = stats.paired_speaker_test(mx, my, "v")
            pairs.append({"setting": setting, "protocol": protocol, "attack": a, "config": ca, "other": b,
                          "config_other": cb, "diff": float(d.mean()) if len(d) else np.nan, "lo": lo, "hi": hi,
                          "segments": len(common), "speakers": len(d), "p": test.p, "min_p": test.min_p,
                          "test": test.text()})
    pairs = pd.DataFrame(pairs, columns=["setting", "protocol", "attack", "config", "other", "config_other", "diff",
                                         "lo", "hi", "segments", "speakers", "p", "min_p", "test"])
    pairs["p_holm"] = stats.holm_families(pairs, "p", ("setting", "protocol"))
    pairs["p_holm_rule"] = stats.holm_families(pairs, "p", ("protocol",))
    # each pair's smallest reachable Holm p in the same family (stats.holm_floor): above α it cannot be shown
    pairs["p_holm_floor"] = stats.holm_families(pairs.assign(min_p=pairs.min_p.where(pairs.p.notna())), "min_p",
                                                ("setting", "protocol"), adjust=stats.holm_floor)
    return pd.DataFrame(sums), pairs


def smallest_verdict(sums: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """Which attack needs the smallest perturbation (one corpus): the one with the smallest median of speaker
    medians; *supported* when it is below every other after Holm, *contradicted* when another is below it after
    Holm, else *not shown* (or *not testable* when no pair is, or when Holm cannot reject any of its pairs whatever
    the data: ``p_holm_floor`` above α, e.g. EMOVO's 6 speakers)."""
    if "ranked" in sums:
        sums = sums[sums.ranked.astype(bool)]
    if len(sums) < 2:
        return "one minimum-norm attack: nothing to rank"
    best = sums.sort_values("median").iloc[0]
    mine = pairs[((pairs.attack == best.attack) & (pairs.config == best.config))
                 | ((pairs.other == best.attack) & (pairs.config_other == best.config))]
    # Δ as best − other
    sign = np.where((mine.attack == best.attack) & (mine.config == best.config), 1.0, -1.0)
    d = sign * mine["diff"].to_numpy(float)
    sig = mine.p_holm.to_numpy(float) < stats.ALPHA
    name = _name(best.attack, best.config)
    if (sig & (d > 0)).any():
        return f"{name} has the smallest median, but another attack is smaller after Holm: contradicted"
    if len(d) and (sig & (d < 0)).all():
        rule = mine.p_holm_rule.to_numpy(float) if "p_holm_rule" in mine else np.array([0.0])
        return f"{name} needs the smallest perturbation: supported (below every other attack after Holm)" + (
            "" if (rule < stats.ALPHA).all() else f"; not with every corpus in one Holm family (the report's one "
                                                 f"rule: p up to {np.nanmax(rule):.3g})")
    if mine.p.isna().all():
        why = str(mine.test.iloc[0])
        return f"{name} has the smallest median (descriptive); " + (
            why if why.startswith("not testable") else f"not testable ({why})")
    floor = mine.p_holm_floor.to_numpy(float) if "p_holm_floor" in mine else None
    if floor is not None and not (floor <= stats.ALPHA).any():
        return (f"{name} has the smallest median (descriptive); not testable (after Holm none of its {len(mine)} pairs "
                f"can go below α {stats.ALPHA} whatever the data: smallest reachable p {np.nanmin(floor):.3g})")
    return f"{name} has the smallest median; not shown (not below every other attack after Holm)"


def _per_segment(m: pd.DataFrame, col: str) -> pd.DataFrame:
    """Rows per segment and model → one row per segment: ``col`` averaged over the models, and per model
    (``col@j``) where a fold has several (the bootstrap draws them: ``stats.table_ci``)."""
    first = m.groupby("key", sort=True)[["speaker", "fold"]].first()
    out = first.assign(**{col: m.groupby("key", sort=True)[col].mean()})
    if m.groupby("fold").model.nunique().max() > 1:
        wide = m.assign(slot=_slots(m).to_numpy()).pivot_table(index="key", columns="slot", values=col,
                                                                aggfunc="mean")
        for j in wide.columns:
            out[f"{col}@{int(j)}"] = wide[j].reindex(out.index)
    return out.reset_index()


def budgets(t: pd.DataFrame, measure: str = "min_linf") -> pd.DataFrame:
    """Each minimum-norm attack's curve against each fixed-budget run on the same correct segments: success at
    ε (share with minimal ``measure`` ≤ ε) and the fixed-budget run's success, Δ = minimal − fixed [CI over
    speakers, exact bound where Δ is 0 on every segment], sign-flip p, Holm within the protocol, and
    ``fixed_only``: segments the fixed-budget attack flipped although their minimal perturbation is > ε."""
    rows = []
    mins, fixed = t[t[measure].notna() & t.budget.isna()], t[t.budget.notna()]
    for (setting, protocol), g in mins.groupby(["setting", "protocol"], sort=True):
        f_all = fixed[fixed.setting == setting]
        for (a, c), x in g.groupby(["attack", "config"], sort=True):
            for (b, eps), y in f_all.groupby(["attack", "budget"], sort=True):
                m = x[x.correct].merge(y[y.correct][["key", "model", "flipped"]], on=["key", "model"],
                                       suffixes=("", "_fixed"))
                if not len(m):
                    continue
                m = m.assign(s_min=(m[measure] <= eps).astype(float))
                m = m.assign(d=m.s_min - m.flipped_fixed)
                d, lo, hi = stats.table_ci(_per_segment(m, "d"), "d", diff=True)
                test = stats.paired_speaker_test(m, m.assign(s_min=m.flipped_fixed), "s_min")
                rows.append({"setting": setting, "protocol": protocol, "attack": a, "config": c, "fixed": b,
                             "eps": float(eps), "success_min": float(m.s_min.mean()),
                             "success_fixed": float(m.flipped_fixed.mean()), "diff": d, "lo": lo, "hi": hi,
                             "segments": len(m), "speakers": m.speaker.nunique(),
                             "fixed_only": int(((m.flipped_fixed > 0) & (m.s_min == 0)).sum()), "p": test.p,
                             "test": test.text()})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = stats.holm_families(out, "p", ("protocol",))
    return out


# ---------------------------------------------------------------------------------------------- gender
def gender(t: pd.DataFrame, measure: str, n_boot: int = N_BOOT, alternative=None) -> pd.DataFrame:
    """Female − male of the speaker medians (capped) per corpus and minimum-norm attack: the gap [CI: bootstrap
    over the speakers of each gender], labels permuted within folds; per gender the median of the speaker
    medians [CI]; Holm within the protocol, each attack once (``ranked_configs``: DeepFool's three max_iter are one
    attack). ``alternative(protocol)``: the test's alternative for that protocol (one-sided only where an analysis
    plan pre-registered it; default two-sided), named beside its p."""
    m = _configs(t, measure)
    top = cap(m, measure) if len(m) else np.nan
    rows = []
    ranked = {k: set(ranked_configs(set(zip(g.attack, g.config))))
              for k, g in m.groupby(["setting", "protocol"], sort=True)}
    for (setting, protocol, a, c), g in m.groupby(["setting", "protocol", "attack", "config"], sort=True):
        if (a, c) not in ranked[(setting, protocol)]:
            continue
        med = _capped(speaker_medians(g, measure), top)
        f, mm = med[med.gender == "female"], med[med.gender == "male"]
        gap, lo, hi = (stats.hier_gap_ci(f, mm, "v", n_boot, shared_seeds=True) if len(f) and len(mm)
                       else (np.nan,) * 3)
        if min(len(f), len(mm)) < stats.MIN_SPEAKERS:
            lo = hi = np.nan
        alt = alternative(protocol) if alternative is not None else "two-sided"
        test = stats.planned_side(stats.speaker_test(f, mm, "v", strata=True, alternative=alt), alt)
        row = {"setting": setting, "protocol": protocol, "attack": a, "config": c, "gap": gap, "lo": lo, "hi": hi,
               "n_female": len(f), "n_male": len(mm), "p": test.p, "test": test.text(), "alternative": alt}
        for name, part in (("female", f), ("male", mm)):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = across_speakers(part, n_boot)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = stats.holm_families(out, "p", ("protocol",))
    return out


# ---------------------------------------------------------------------------------------------- corpus
def corpus(sums: pd.DataFrame) -> pd.DataFrame:
    """Descriptive: per protocol and attack configuration, each corpus's median of speaker medians [CI] side by
    side (no test: a language difference is not identifiable from one corpus per language)."""
    if not len(sums):
        return pd.DataFrame()
    return sums[["protocol", "attack", "config", "setting", "median", "lo", "hi", "n_speakers"]].sort_values(
        ["protocol", "attack", "config", "setting"]).reset_index(drop=True)


# -------------------------------------------------------------------------------------------- markdown
def _num(v: float, measure: str) -> str:
    if v != v:
        return "–"
    v = _show(v, measure)
    return "∞" if v == np.inf else ("−∞" if v == -np.inf else f"{v:.3g}")


def _ival(v: float, lo: float, hi: float, measure: str, n: int) -> str:
    """``v [lo, hi]`` in the measure's own sign (an SNR interval flips), ``v †`` with too few speakers."""
    if n < stats.MIN_SPEAKERS or lo != lo:
        return f"{_num(v, measure)} {FEW}"
    a, b = (hi, lo) if measure == "min_snr_db" else (lo, hi)
    return f"{_num(v, measure)} [{_num(a, measure)}, {_num(b, measure)}]"


def _d(v: float, lo: float, hi: float, measure: str) -> str:
    """A difference of sizes in the measure's own sign (SNR: b − a in dB)."""
    if v != v:
        return "–"
    s = -1 if measure == "min_snr_db" else 1
    a, b = sorted((s * lo, s * hi)) if lo == lo else (np.nan, np.nan)
    return f"{s * v:+.3g}" + (f" [{a:.3g}, {b:.3g}]" if a == a else "")


def _name(attack: str, config: str) -> str:
    return attack + ("" if config in ("", "default") else f" {config}")


def _p(v: float) -> str:
    return "–" if v != v else ("<0.001" if v < 0.001 else f"{v:.3f}")


def section(seg: pd.DataFrame, plan=None, n_boot: int = N_BOOT, level: int = 2) -> list[str]:
    """Markdown lines: the three questions on every measure present (empty without minimal perturbations);
    ``level``: the section heading's level (its measures one below)."""
    h = "#" * level
    t = tidy(seg)
    if not len(t):
        return []
    measures = [m for m in MEASURES if t.loc[t.budget.isna() & t.correct, m].notna().any()]
    if not measures:
        return []

    def planned(question, measure, protocols=()):
        st = {planmod.status(plan, question, measure, p) for p in (protocols or [None])}
        return f" *({'/'.join(sorted(st))})*"

    def budget_planned(eps: float, protocol: str) -> str:
        c = plan.find("ranking", "success_at_budget", protocol) if plan is not None else None
        return planmod.PLANNED if c is not None and (not c.budgets or any(abs(eps - b) < 1e-9 for b in c.budgets)) \
            else planmod.EXPLORATORY
    prots = sorted(t.protocol.unique())
    md = [f"{h} The questions on the minimal perturbations", "",
          "Per speaker the median minimal perturbation of the segments the model classified correctly; a segment "
          "never flipped counts as larger than every flipped one (the speaker's median is ∞ once half of its "
          "segments are); then the median across speakers [95% bootstrap over speakers; "
          f"{FEW}: fewer than {stats.MIN_SPEAKERS} speakers, no interval; where a fold has several trained models "
          "(seeds), a speaker's value is the mean of its per-model medians and a segment counts once per model]. "
          "Differences and tests use the speaker "
          "medians capped at the top of the measure's axis (a censored speaker counts as the largest perturbation "
          "seen). p: sign-flip (pairs of attacks) or within-fold permutation (gender) over speakers; Holm over the "
          "pairs of a corpus (ranking: the attacks compared; every corpus in one family beside it) or within the "
          "protocol (gender). SNR: higher = quieter = smaller perturbation. "
          "`ser_attacks/report/min_norm_questions.py`.", ""]
    for measure in measures:
        label = MEASURES[measure]
        sums, pairs = ranking(t, measure, n_boot)
        md += [f"{h}# Minimal perturbation, {label}", "",
               f"**(1) Ranking: which attack needs the smallest perturbation**{planned('ranking', measure, prots)}", "",
               "| setting | attack | median [95% CI] | speakers | correct segments × models | never flipped |",
               "|---|---|---|---|---|---|"]
        md += [f"| {r.setting} | {_name(r.attack, r.config)}{'' if r.ranked else ' (not ranked: same attack)'} | "
               f"{_ival(r.median, r.lo, r.hi, measure, r.n_speakers)} | {r.n_speakers} | {r.n_correct} | "
               f"{r.n_censored} |" for r in sums.itertuples()]
        if len(pairs):
            md += ["", "| setting | a − b | Δ [95% CI] | segments | p (speakers) | p (Holm, the corpus's pairs) "
                   "| p (Holm, every corpus) |", "|---|---|---|---|---|---|---|"]
            md += [f"| {r.setting} | {_name(r.attack, r.config)} − {_name(r.other, r.config_other)} | "
                   f"{_d(r.diff, r.lo, r.hi, measure)} | {r.segments} | "
                   f"{r.test} | {_p(r.p_holm)} | {_p(r.p_holm_rule)} |" for r in pairs.itertuples()]
        # where the heading mixes planned and exploratory settings, each verdict says which it is
        mixed = len({planmod.status(plan, "ranking", measure, p) for p in prots}) > 1
        md += [""] + [f"- **{s}:**{planned('ranking', measure, [g.protocol.iloc[0]]) if mixed else ''} "
                      f"{smallest_verdict(g, pairs[pairs.setting == s])}."
                      for s, g in sums.groupby("setting", sort=True)] + [""]
        if measure == "min_linf":
            b = budgets(t, measure)
            if len(b):
                md += ["**The curve against fixed-budget runs on the same correct segments** (success rate at ε: "
                       "minimal L∞ ≤ ε vs the fixed-budget attack's; a minimal perturbation must give Δ ≥ 0; "
                       "*fixed only*: segments the fixed-budget attack flipped although their minimal perturbation "
                       "is larger than ε)", "",
                       "| setting | minimal | fixed | ε | success minimal / fixed | Δ [95% CI] | fixed only "
                       "| segments | p (speakers) | p (Holm) | plan |", "|---|---|---|---|---|---|---|---|---|---|---|"]
                md += [f"| {r.setting} | {r.attack} | {r.fixed} | {r.eps:g} | {r.success_min:.3f} / "
                       f"{r.success_fixed:.3f} | {r.diff:+.3f} "
                       + (f"[{r.lo:.2f}, {r.hi:.2f}]" if r.speakers >= stats.MIN_SPEAKERS else FEW)
                       + f" | {r.fixed_only} | {r.segments} | {r.test} | {_p(r.p_holm)} | "
                       f"{budget_planned(r.eps, r.protocol)} |" for r in b.itertuples()]
                md += ["", f"- **Minimal ≥ fixed budget at every ε:** "
                       f"{'yes' if (b.fixed_only == 0).all() else 'no'} ({int((b.fixed_only > 0).sum())} of "
                       f"{len(b)} budgets with a segment flipped by the fixed-budget attack only).", ""]
        gd = gender(t, measure, n_boot, lambda protocol, m=measure: planmod.alternative(plan, "gender", m, protocol))
        sense = ("positive = female perturbations quieter, female more vulnerable" if measure == "min_snr_db" else
                 "positive = female segments need a larger perturbation, male more vulnerable")
        md += [f"**(2) Gender: female vs male**{planned('gender', measure, prots)} (female − male of the speaker "
               f"medians; {sense})", "",
               "| setting | attack | female [95% CI] | male [95% CI] | female − male [95% CI] | p (speakers) "
               "| p (Holm) |", "|---|---|---|---|---|---|---|"]
        md += [f"| {r.setting} | {_name(r.attack, r.config)} | "
               f"{_ival(r.female, r.female_lo, r.female_hi, measure, r.n_female)} | "
               f"{_ival(r.male, r.male_lo, r.male_hi, measure, r.n_male)} | {_d(r.gap, r.lo, r.hi, measure)}"
               f"{'' if r.lo == r.lo else ' ' + FEW} | "
               f"{r.test} | {_p(r.p_holm)} |" for r in gd.itertuples()]
        testable = int(gd.p.notna().sum()) if len(gd) else 0
        sig = gd[gd.p_holm < stats.ALPHA] if len(gd) else gd
        md += ["", f"- **Gender gaps after Holm:** {len(sig)} of {testable} testable ({len(gd)} compared)"
               + (": " + "; ".join(f"{_name(r.attack, r.config)} on {r.setting} {_d(r.gap, np.nan, np.nan, measure)}"
                                   for r in sig.itertuples()) if len(sig) else "") + ".", ""]
        cp = corpus(sums)
        md += [f"**(3) Corpus (descriptive; language not identifiable)**{planned('corpus', measure, prots)}", ""]
        if cp.setting.nunique() < 2:
            md += ["One corpus: nothing to compare.", ""]
        else:
            md += ["Each corpus's median of speaker medians [95% CI]. Corpora differ in speakers, trained model, "
                   "emotion set and recordings at once: a difference here is a corpus difference, and a language "
                   "difference is **not identifiable** from one corpus per language; no test is made.", "",
                   "| protocol | attack | " + " | ".join(sorted(cp.setting.unique())) + " |",
                   "|---|---|" + "---|" * cp.setting.nunique()]
            for (pr, a, c), g in cp.groupby(["protocol", "attack", "config"], sort=True):
                cells = {r.setting: _ival(r.median, r.lo, r.hi, measure, r.n_speakers) for r in g.itertuples()}
                md.append(f"| {pr} | {_name(a, c)} | "
                          + " | ".join(cells.get(s, "–") for s in sorted(cp.setting.unique())) + " |")
            md += [""]
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ser_attacks.report.min_norm_questions",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="export folders (segments.csv.gz) or per-segment .csv(.gz) files")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file (default: stdout)")
    ap.add_argument("--plan", type=Path, default=None, help="analysis plan: results marked planned / exploratory")
    ap.add_argument("--n-boot", type=int, default=N_BOOT)
    a = ap.parse_args(argv)
    plan = planmod.load(a.plan) if a.plan else None
    md = section(load(a.inputs), plan, a.n_boot)
    if not md:
        print("error: no minimal perturbations (min_linf / min_l2 / min_snr_db) in these files", file=sys.stderr)
        return 2
    text = "\n".join(md) + "\n"
    if a.out:
        a.out.write_text(text)
        print(f"wrote {a.out}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
