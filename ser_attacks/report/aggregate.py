"""Runs → configurations: pooling folds, averaging seeds, choosing the best configuration, and the
speaker-level intervals and tests on a configuration's pooled segments.

Units of analysis:
- a *run*: one MLflow attack run;
- a *configuration*: runs whose flattened config is equal except the seed keys (``seed``, ``split.seed``,
  ``attack.seed``, ``attack.sample_seed``), the fold (``split.fold``) and run-only keys. Its metrics: per
  repetition (one value of the seeds) the folds are pooled (weighted by their segments; times summed), then
  mean ± sample std over repetitions. Its intervals and tests come from its segments pooled over all its
  runs, one row per distinct segment (repeated runs on a segment averaged: ``collect.pool``), and rest on
  speakers and, where a fold has several training seeds, on its seeds too (``stats``: the seed columns of
  ``collect.pool``);
- a *setting*: a dataset, plus any non-attack config that differs between its runs (e.g. the split
  mode), so that runs of different protocols are never mixed in one cell. Folds of ``split=speaker_cv``
  are one setting: together they test every speaker once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .collect import DEFENSE_TAGS, GROUPS, METRICS, Runs, Samples, model_labels, pool

TIME = ("attack_time_s", "time_per_sample_s")
SFX = {"all": "", "female": "_female", "male": "_male"}     # column suffix of a gender group


def _weights(runs: pd.DataFrame, m: str) -> np.ndarray:
    """Weights to pool metric ``m`` over folds: the fold's segments of that group (correctly classified
    ones for success_rate, changed ones for snr_db)."""
    base, sfx = next(((b, m[len(b):]) for b in sorted(METRICS, key=len, reverse=True) if m.startswith(b)), (m, ""))
    n = runs[f"n_samples{sfx}"].to_numpy(float) if f"n_samples{sfx}" in runs else np.ones(len(runs))
    if m == "model_test_acc" and "n_segments_test" in runs:
        n = runs.n_segments_test.to_numpy(float)
    if base == "success_rate" and f"clean_acc{sfx}" in runs:
        n = n * runs[f"clean_acc{sfx}"].to_numpy(float)
    if base == "snr_db" and f"changed{sfx}" in runs:
        n = n * runs[f"changed{sfx}"].to_numpy(float)
    return np.nan_to_num(n)


def pool_folds(runs: pd.DataFrame, m: str) -> float:
    """One repetition's value of metric ``m``: its folds pooled (one run without folds: its value)."""
    if m not in runs:
        return np.nan
    if len(runs) == 1:
        return float(runs[m].iloc[0])
    if m == "attack_time_s" or m.startswith("n_samples"):
        return float(runs[m].sum(min_count=1))
    if m == "time_per_sample_s":
        return float(runs.attack_time_s.sum() / runs.n_samples.sum())
    v, w = runs[m].to_numpy(float), _weights(runs, m)
    ok = np.isfinite(v) & (w > 0)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else np.nan


def speakers_known(t: pd.DataFrame) -> bool:
    return bool(len(t)) and bool(t.speaker_known.all())


def subset(t: pd.DataFrame, g: str) -> pd.DataFrame:
    """The pooled segments of gender group ``g`` (``all``: every segment)."""
    return t if g == "all" else t[t.gender == g]


ACC_COLS = (("clean_acc", "clean_ok"), ("adv_acc", "adv_ok"), ("robust_acc", "kept"))


def interval_columns(row: dict, t: pd.DataFrame, cols=ACC_COLS) -> None:
    """Speaker-level intervals of ``cols`` per gender group, with the speakers and segments behind them."""
    for g in GROUPS:
        tg = subset(t, g)
        row[f"n_speakers{SFX[g]}"] = tg.speaker.nunique() if speakers_known(tg) else np.nan
        row[f"n_segments{SFX[g]}"] = len(tg)
        for kind, col in cols:
            ci = stats.table_ci(tg, col)          # speakers, and each fold's seeds where it has several
            row[f"{kind}{SFX[g]}_lo"], row[f"{kind}{SFX[g]}_hi"] = ci[1], ci[2]


def robust_from_segments(row: dict, t: pd.DataFrame) -> None:
    """Robust accuracy (right before and after) of a configuration from its pooled segments (``kept``), mean and
    std over seeds as adv_acc's: the same for runs logged before the ``robust_acc`` metric and after it."""
    for g in GROUPS:
        tg = subset(t, g)
        if not len(tg):
            continue
        slots = [c for c in tg.columns if c.startswith("kept@")]
        row[f"robust_acc{SFX[g]}"] = float(tg.kept.mean())
        row[f"robust_acc{SFX[g]}_std"] = stats.mean_std([tg[c].mean() for c in slots])[1] if slots else np.nan


def configs(runs: Runs, samples: dict[str, Samples]) -> tuple[pd.DataFrame, dict]:
    """One row per configuration: metrics pooled over folds and averaged over seeds (± std over seeds),
    speaker-level intervals from its pooled segments."""
    df = runs.df
    rows, pooled = [], {}
    mnames = [f"{m}{SFX[g]}" for m in METRICS for g in GROUPS] + list(TIME)
    for i, (_, sub) in enumerate(df.groupby("group", sort=False)):
        first = sub.iloc[0]
        cid = f"c{i}"
        folds = sorted({f for f in sub.fold if f != ""}, key=lambda f: int(f))
        row = {"config_id": cid, "attack": first.attack, "setting": first.setting, "dataset": first.dataset,
               "language": first.language, "split": first.split, "config": first.config,
               "x_param": first.x_param, "x": first.x, "n_runs": len(sub), "n_reps": sub.rep.nunique(),
               "folds": ",".join(folds), "protocol_key": first.protocol_key,
               "seeds": ",".join(sorted(map(str, sub.seed.unique()))), "run_ids": ",".join(sub.run_id),
               "effects": ",".join(sorted(set(sub.attack_effect) - {""})), "params": first.params,
               **{t: first.get(t, "") for t in DEFENSE_TAGS}}
        reps = [r for _, r in sub.groupby("rep", sort=False)]
        for m in mnames:
            row[m], row[f"{m}_std"], _ = stats.mean_std([pool_folds(r, m) for r in reps])
        ran = sub[sub.run_id.isin(list(samples))]
        have = [samples[r] for r in ran.run_id]
        if have:
            pooled[cid] = t = pool(have, model_labels(ran))
            interval_columns(row, t)
            robust_from_segments(row, t)
        rows.append(row)
    out = pd.DataFrame(rows)
    for g in GROUPS:
        for c in [f"{k}{SFX[g]}_{b}" for k, _ in ACC_COLS for b in ("lo", "hi")] + \
                 [f"n_speakers{SFX[g]}", f"n_segments{SFX[g]}"]:
            if c not in out:
                out[c] = np.nan
    return out, pooled


def best_configs(cf: pd.DataFrame) -> pd.DataFrame:
    """Per attack and setting: lowest adversarial accuracy, ties broken by lowest mean perturbation (then by
    the shorter attack time)."""
    if cf.empty:
        return cf
    order = cf.sort_values(["attack", "setting", "adv_acc", "perturbation", "attack_time_s"], na_position="last",
                           kind="stable")
    return order.groupby(["attack", "setting"], sort=False).head(1).reset_index(drop=True)


def speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, what: str = "gender", strata: bool | None = None,
                 alternative: str = "two-sided") -> stats.Test:
    """``stats.speaker_test``, or not testable when the runs carry no speaker ids (logged before them). Gender
    comparisons (``what="gender"``) permute within folds (``strata``; the speakers of a fold share a model);
    ``alternative``: one-sided only where an analysis plan pre-registered it."""
    if len(a) and len(b) and not (speakers_known(a) and speakers_known(b)):
        return stats.Test(np.nan, np.nan, 0, 0, "not testable (runs without speaker ids in adversarial.npz)")
    return stats.speaker_test(a, b, col, what, strata=(what == "gender") if strata is None else strata,
                              alternative=alternative)


def protocol_of(setting: str) -> str:
    """"emodb (split=paper)" -> "(split=paper)"; "" for a setting without a protocol part."""
    i = setting.find(" (")
    return setting[i + 1:] if i >= 0 else ""


def add_test_columns(row: dict, test: stats.Test, prefix: str = "") -> None:
    """Store ``test`` in ``row`` as ``<prefix>p``, ``<prefix>min_p`` and ``<prefix>test`` (its text)."""
    row[f"{prefix}p"], row[f"{prefix}min_p"], row[f"{prefix}test"] = test.p, test.min_p, test.text()
