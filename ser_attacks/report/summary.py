"""The report's opening: what was attacked, the headline table, and the flags a reader must see first.

Everything here is read from the same runs and tables as the detailed sections below it; nothing is
recomputed differently. Flags are plain statements about how far the numbers can be trusted (an attack
that changed nothing, a model near chance, few segments, one seed, an "attack" that raised accuracy).
"""
from __future__ import annotations

import ast

import numpy as np
import pandas as pd

from ..identity import shapes_model
from .format import MISSING, attack_sort_key, f3, fci, fnum

SMALL_N = 30          # attacked segments per gender below which a CI is ±0.15 or wider


def repetitions(r) -> str:
    """`` (3 seeds)``, `` (3 folds)``, `` (2 seeds × 3 folds)`` or ``""``: what a configuration's row pools."""
    seeds = int(r.get("n_reps", r.n_runs))
    folds = len([f for f in str(r.get("folds", "") or "").split(",") if f])
    parts = [f"{seeds} seeds"] * (seeds > 1) + [f"{folds} folds"] * (folds > 1)
    return f" ({' × '.join(parts)})" if parts else ""


def _n_classes(runs) -> int | None:
    sizes = set()
    for p in runs.df.params:
        try:
            sizes.add(len(ast.literal_eval(p.get("dataset.emotions", ""))))
        except (ValueError, SyntaxError, TypeError):
            continue
    return sizes.pop() if len(sizes) == 1 else None


def _what(runs) -> str:
    df = runs.df
    per_attack = []
    for a in sorted(df.attack.unique(), key=attack_sort_key):
        cfgs = sorted(set(df[df.attack == a].config))
        per_attack.append(f"{a} ({'; '.join(cfgs)})" if cfgs != ["default"] else a)
    data = ", ".join(f"{d} ({lang})" if lang and lang != d else d for d, lang in
                     df[["dataset", "language"]].drop_duplicates().itertuples(index=False))
    n = df.get("n_samples", pd.Series(dtype=float))
    nf, nm = df.get("n_samples_female", pd.Series(dtype=float)), df.get("n_samples_male", pd.Series(dtype=float))
    seg = (f"{n.median():.0f} test segments per run ({nf.median():.0f} of female, {nm.median():.0f} of male "
           f"speakers)" if n.notna().any() else "the runs' test segments")
    models = ", ".join(sorted(df.model.unique()))
    return (f"**What was attacked:** model {models} on {data}; {len(df)} attack runs: "
            f"{', '.join(per_attack)}; {seg}.")


def headline(t) -> pd.DataFrame:
    """One row per attack and setting: its best configuration's numbers, all / female / male."""
    best = t.best
    if best.empty:
        return pd.DataFrame()
    many = best.setting.nunique() > 1
    rows = []
    for _, r in best.sort_values(["attack", "setting"], key=lambda c: c.map(attack_sort_key)
                                 if c.name == "attack" else c).iterrows():
        row = {"attack": r.attack}
        if many:
            row["setting"] = r.setting
        row["best config"] = r.config + repetitions(r)
        row["clean acc"] = f3(r.get("clean_acc", np.nan))
        row["adv acc: all [95% CI]"] = fci(r.adv_acc, r.get("adv_acc_lo", np.nan), r.get("adv_acc_hi", np.nan))
        row["female"] = f3(r.get("adv_acc_female", np.nan))
        row["male"] = f3(r.get("adv_acc_male", np.nan))
        row["mean |δ|"] = fnum(r.get("perturbation", np.nan))
        tps = r.get("time_per_sample_s", np.nan)
        row["s / segment"] = MISSING if tps != tps else f"{tps:.3g}"
        rows.append(row)
    return pd.DataFrame(rows)


def mixed_models(df: pd.DataFrame) -> list[str]:
    """Runs that should share one trained model (equal model-shaping parameters: dataset, features, augment,
    split with its fold, normalization, model, train, and the seed) but were served by several training runs
    (tag ``model_run_id``): e.g. a model retrained when a sweep resumed after its cache entry was lost. Their
    numbers come from different models, so they are named."""
    if "model_run_id" not in df or not (df.model_run_id != "").any():
        return []
    d = df[df.model_run_id != ""]
    out = []
    for _, g in d.groupby(d.params.map(lambda p: tuple(sorted((k, v) for k, v in p.items() if shapes_model(k)))),
                          sort=False):
        ids = list(dict.fromkeys(g.model_run_id))
        if len(ids) > 1:
            r = g.iloc[0]
            where = r.setting + (f" fold {r.fold}" if r.fold else "") + f" seed {r.seed}"
            out.append(f"**Mixed models:** on {where}, the runs come from {len(ids)} trained models (training runs "
                       + ", ".join(f"`{i[:8]}` ({int((g.model_run_id == i).sum())} runs)" for i in ids)
                       + ") instead of one; rerun the older runs (force=true) so one model serves them all.")
    return out


def flags(runs, t) -> list[str]:
    df, best = runs.df, t.best
    out = []
    none = df[df.attack_effect == "none"]
    if len(none):
        out.append(f"{len(none)} run(s) had **no effect** (adversarial examples equal the inputs or no prediction "
                   "changed): " + ", ".join(f"{r.attack} {r.config}" for r in none.itertuples()) + ".")
    k = _n_classes(runs)
    if k and "clean_acc" in best:
        chance = 1.0 / k
        for s, sub in best.groupby("setting"):
            clean = float(sub.clean_acc.mean())
            if clean < chance + 0.15:
                out.append(f"On {s} the model's clean accuracy ({clean:.3f}) is close to chance ({chance:.2f}, "
                           f"{k} classes): adversarial accuracies on it say little about robustness.")
    if {"clean_acc", "adv_acc"} <= set(best.columns):
        up = best[best.adv_acc > best.clean_acc]
        if len(up):
            out.append("Adversarial accuracy above clean accuracy (the attack helped the model) for "
                       + ", ".join(f"{r.attack} {r.config} on {r.setting}" for r in up.itertuples()) + ".")
    fewest = {g: df[f"n_samples_{g}"].min() for g in ("female", "male")
              if f"n_samples_{g}" in df and df[f"n_samples_{g}"].notna().any()}
    if fewest and min(fewest.values()) < SMALL_N:
        g = min(fewest, key=fewest.get)
        out.append(f"Few attacked segments per gender (as few as {fewest[g]:.0f} of {g} speakers in a run): 95% CIs "
                   "are about ±0.15 or wider; read gender differences as leads, not findings.")
    out += mixed_models(df)
    if len(t.configs) and (t.configs.get("n_reps", t.configs.n_runs) <= 1).all():
        out.append("One seed per configuration: the numbers are single runs (no between-seed spread); "
                   "rerun with seed=0,1,2 to see how much they move.")
    return out


def summary_lines(runs, t, figure: str | None = None) -> list[str]:
    """Markdown: the opening section of the report. ``figure``: a path (relative to the report) shown under
    the table."""
    from .render import md_table
    lines = ["## Summary", "", _what(runs), ""]
    head = headline(t)
    if len(head):
        lines += ["**Headline: the best configuration per attack** (lowest adversarial accuracy; clean = accuracy "
                  "on the same segments before the attack):", "", md_table(head).rstrip("\n"), ""]
    if figure:
        lines += [f"![Adversarial accuracy of the best configuration per attack: all, female and male speakers "
                  f"(95% CI); black ticks = clean accuracy]({figure})", ""]
    fl = flags(runs, t)
    lines += ["**Flags:**", ""] + ([f"- {f}" for f in fl] if fl else ["- none: every run changed predictions, the "
                                                                       "model is clearly above chance, and the samples "
                                                                       "and seeds are not flagged as small."])
    return lines
