"""The report's opening: what was attacked, the headline table, and the flags a reader must see first.

Everything here is read from the same runs and tables as the detailed sections below it; nothing is
recomputed differently. Flags are plain statements about how far the numbers can be trusted (an attack
that changed nothing, a model near chance, few segments, one seed, an "attack" that raised accuracy).
"""
from __future__ import annotations

import ast
import re

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


def _what(runs, t=None) -> str:
    df = runs.df
    per_attack = []
    for a in sorted(df.attack.unique(), key=attack_sort_key):
        cfgs = sorted(set(df[df.attack == a].config))
        per_attack.append(f"{a} ({'; '.join(cfgs)})" if cfgs != ["default"] else a)
    data = ", ".join(f"{d} ({lang})" if lang and lang != d else d for d, lang in
                     df[["dataset", "language"]].drop_duplicates().itertuples(index=False))
    n = df.get("n_samples", pd.Series(dtype=float))
    nf, nm = df.get("n_samples_female", pd.Series(dtype=float)), df.get("n_samples_male", pd.Series(dtype=float))
    seg = (f"{n.median():.0f} attacked segments per run (median; {nf.median():.0f} from female and "
           f"{nm.median():.0f} from male speakers)" if n.notna().any() else "the runs' test segments")
    spk = speaker_counts(t) if t is not None else ""
    if spk:
        seg += f"; speakers tested: {spk}"
    models = ", ".join(sorted(df.model.unique()))
    return (f"**What was attacked:** model {models} on {data}; {len(df)} attack runs: "
            f"{', '.join(per_attack)}; {seg}.")


def speaker_counts(t) -> str:
    """``emodb 5 F + 5 M, ravdess 12 F + 12 M``: the speakers whose segments were attacked, per dataset (the
    most any of its configurations pooled: the folds of a cross-validation together test every speaker once)."""
    cf = t.configs
    if cf.empty or "n_speakers_female" not in cf:
        return ""
    out = []
    for d, sub in cf.groupby("dataset", sort=False):
        f, m = sub.n_speakers_female.max(), sub.n_speakers_male.max()
        if f == f and m == m:
            out.append(f"{d} {f:.0f} F + {m:.0f} M")
    return ", ".join(out)


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


def effect_list(runs: pd.DataFrame) -> str:
    """A nested Markdown list: one line per attack configuration, then where it ran (``setting: folds 0, 2``),
    each configuration once however many folds or seeds it ran on."""
    lines = []
    keyed = runs.assign(_a=[attack_sort_key(a) for a in runs.attack])
    for (_, attack, config), sub in keyed.groupby(["_a", "attack", "config"], sort=True):
        where = []
        for setting, g in sub.groupby("setting", sort=True):
            folds = sorted({str(f) for f in g.fold if str(f)}, key=lambda f: (len(f), f))
            where.append(setting + (f": fold{'s' * (len(folds) > 1)} {', '.join(folds)}" if folds else "")
                         + (f" ({len(g)} runs)" if len(g) > max(1, len(folds)) else ""))
        lines.append(f"\n  - {attack} `{config}` — " + "; ".join(where))
    return "".join(lines)


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
        out.append(f"{len(none)} run{'s' * (len(none) != 1)} had **no effect** (adversarial examples equal the "
                   "inputs or no prediction changed), by configuration:" + effect_list(none))
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
        out.append(f"Few attacked segments per gender (as few as {fewest[g]:.0f} segments from {g} speakers in a run): "
                   "95% CIs "
                   "are about ±0.15 or wider; read gender differences as leads, not findings.")
    out += mixed_models(df)
    if len(t.configs) and (t.configs.get("n_reps", t.configs.n_runs) <= 1).all():
        out.append("One seed per configuration: the numbers are single runs (no between-seed spread); "
                   "rerun with seed=0,1,2 to see how much they move.")
    return out


MATCHED_SNR_DB = 0.0    # the matched budget of the first screen: a perturbation no louder than the speech
BASELINES = ("noise",)  # not attacks: shown, never called the strongest or the weakest
NAMES = {"fgsm": "FGSM", "bim": "BIM", "autoattack": "AutoAttack", "deepfool": "DeepFool", "jsma": "JSMA",
         "cw_l2": "C&W-L2", "cw_linf": "C&W-L∞", "pixel": "Pixel", "boundary": "Boundary", "noise": "uniform noise",
         "fmn": "FMN"}


def _name(a: str) -> str:
    return NAMES.get(a, a)


def _and(items: list[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def primary_settings(cf: pd.DataFrame) -> list[str]:
    """The settings the first screen compares: the leakage-free ones (any split but ``paper``) where there are
    any, else all."""
    free = sorted(cf[cf.split != "paper"].setting.unique()) if "split" in cf else []
    return free or sorted(cf.setting.unique())


def _snr(r) -> float:
    """A configuration's perturbation SNR in dB (mean over the segments it changed); +inf when it changed
    nothing; NaN when the runs did not log it."""
    v = r.get("snr_db", np.nan)
    if v == v:
        return float(v)
    return np.inf if r.get("changed", np.nan) == 0 or r.get("perturbation", np.nan) == 0 else np.nan


def success_on_correct(r, pooled: dict | None = None) -> float:
    """A configuration's success rate on the segments the model classified correctly (the share of them the attack
    made wrong), from its per-segment data (``checklist.correct_pairs``, as recipes/study/findings.py ranks the
    attacks), else the runs' own ``success_rate`` metric (the same share, pooled), else NaN. Over all segments,
    DeepFool and untargeted Boundary also turn wrong predictions right, so adversarial accuracy would rank them
    by the clean accuracy (issue 25)."""
    from .checklist import correct_pairs
    m = correct_pairs(pooled, r, r) if pooled and "config_id" in r else None
    if m is not None:
        return float(m.flipped.mean()) if len(m) else np.nan
    v = r.get("success_rate", np.nan)
    return float(v) if v == v else np.nan


def matched_budget(cf: pd.DataFrame, snr_db: float = MATCHED_SNR_DB, pooled: dict | None = None) -> pd.DataFrame:
    """Per attack and setting, the strongest configuration among those within the budget: a perturbation SNR of
    at least ``snr_db``; strongest = the highest success rate on the correctly classified segments
    (``success_on_correct``), then the lowest adversarial accuracy, then the quieter one (without any success data:
    the lowest adversarial accuracy). An attack none of whose configurations is that quiet gets a row without
    ``config`` and with its quietest SNR (``quietest_snr_db``)."""
    rows = []
    for (a, s), sub in cf.groupby(["attack", "setting"], sort=False):
        snr = np.array([_snr(r) for _, r in sub.iterrows()])
        within = (snr >= snr_db) | (np.isnan(snr) & (snr_db == -np.inf))     # -inf: no budget (no SNR logged)
        ok = sub[within].assign(_snr=snr[within])
        ok = ok.assign(_success=[success_on_correct(r, pooled) for _, r in ok.iterrows()])
        row = {"attack": a, "setting": s, "clean_acc": sub.clean_acc.mean(),
               "quietest_snr_db": np.nanmax(snr) if np.isfinite(snr).any() or np.isinf(snr).any() else np.nan}
        if len(ok):
            r = ok.assign(_rank=-ok._success.fillna(-1.0)).sort_values(
                ["_rank", "adv_acc", "_snr"], ascending=[True, True, False]).iloc[0]
            row.update(config=r.config, adv_acc=r.adv_acc, adv_acc_lo=r.get("adv_acc_lo", np.nan),
                       adv_acc_hi=r.get("adv_acc_hi", np.nan), clean_acc=r.clean_acc, snr_db=r._snr,
                       success=r._success)
        else:
            row.update(config=None, adv_acc=np.nan, adv_acc_lo=np.nan, adv_acc_hi=np.nan, snr_db=np.nan,
                       success=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(t, snr_db: float = MATCHED_SNR_DB) -> tuple[pd.DataFrame, pd.DataFrame]:
    """RobustBench-style: one row per attack, strongest first — ranked on the success rate on the correctly
    classified segments (``success_on_correct``; by adversarial accuracy only where no run has success data) —,
    one column per leakage-free setting, each cell the success rate and beside it the adversarial accuracy of the
    attack's strongest configuration within the SNR budget, then the means over the settings; the first row is
    the clean accuracy. Returns (numbers, display)."""
    cf = t.configs
    if cf.empty:
        return pd.DataFrame(), pd.DataFrame()
    settings = primary_settings(cf)
    mb = matched_budget(cf[cf.setting.isin(settings)], snr_db, getattr(t, "samples", None))
    by_success = mb.success.notna().any()
    clean = {s: mb[mb.setting == s].clean_acc.mean() for s in settings}
    rows, disp = [], []
    for a, sub in mb.groupby("attack", sort=False):
        vals = sub.set_index("setting")
        mean = vals.adv_acc.mean() if vals.adv_acc.notna().any() else np.nan
        success = vals.success.mean() if vals.success.notna().any() else np.nan
        rows.append({"attack": a, "mean_success": success, "mean_adv_acc": mean,
                     "n_settings": int(vals.adv_acc.notna().sum()),
                     **{s: vals.adv_acc.get(s, np.nan) for s in settings}})
        cells = {}
        for s in settings:
            if s not in vals.index:
                cells[s] = MISSING
                continue
            r = vals.loc[s]
            if r.config is None or r.config != r.config:
                q = r.quietest_snr_db
                cells[s] = "over budget" + (f" (quietest {q:.1f} dB)" if q == q else " (no SNR logged)")
            else:
                snr = "" if r.snr_db != r.snr_db else ", changed nothing" if np.isinf(r.snr_db) \
                    else f", {r.snr_db:.1f} dB"
                cells[s] = (f"{f3(r.success)} / " if by_success else "") + f"{f3(r.adv_acc)} ({r.config}{snr})"
        n = int(vals.adv_acc.notna().sum())
        of = f" ({n} of {len(settings)})" if 0 < n < len(settings) else ""
        disp.append({"attack": _name(a) + (" (baseline)" if a in BASELINES else ""), **cells,
                     "mean adv acc": (f"{f3(success)} / " if by_success else "") + f3(mean) + of})
    data = pd.DataFrame(rows)
    if by_success:        # the strongest: the highest success on the correct segments (adversarial accuracy beside)
        order = sorted(range(len(data)), key=lambda i: (data.mean_success[i] != data.mean_success[i],
                                                        -np.nan_to_num(data.mean_success[i]),
                                                        np.nan_to_num(data.mean_adv_acc[i]),
                                                        attack_sort_key(data.attack[i])))
    else:
        order = sorted(range(len(data)), key=lambda i: (data.mean_adv_acc[i] != data.mean_adv_acc[i],
                                                        np.nan_to_num(data.mean_adv_acc[i]),
                                                        attack_sort_key(data.attack[i])))
    data, disp = data.iloc[order].reset_index(drop=True), pd.DataFrame(disp).iloc[order].reset_index(drop=True)
    pre = "— / " if by_success else ""
    head = {"attack": "clean (no attack)", **{s: pre + f3(clean[s]) for s in settings},
            "mean adv acc": pre + f3(np.nanmean(list(clean.values())))}
    disp = pd.concat([pd.DataFrame([head]), disp], ignore_index=True)
    if len(settings) > 1:
        disp = disp.rename(columns={"mean adv acc": f"mean over {len(settings)}"})
    else:                 # one setting: its column already is the mean
        disp = disp.drop(columns=["mean adv acc"])
    if by_success:
        disp = disp.rename(columns={c: f"{c}: success / adv acc" for c in disp.columns if c != "attack"})
    return (data.assign(clean_acc=[np.nanmean(list(clean.values()))] * len(data), by_success=by_success), disp)


def budget(t, snr_db: float = MATCHED_SNR_DB) -> float:
    """The SNR budget the first screen can apply: ``snr_db``, or -inf (any budget) when no run logged an SNR."""
    cf = t.configs
    return snr_db if "snr_db" in cf and cf.snr_db.notna().any() else -np.inf


def _strongest(lb: pd.DataFrame, snr_db: float, n_settings: int) -> str | None:
    by_success = bool(lb.get("by_success", pd.Series([False])).iloc[0]) if len(lb) else False
    col = "mean_success" if by_success else "mean_adv_acc"
    att = lb[~lb.attack.isin(BASELINES) & lb[col].notna()]
    if att.empty:
        return None
    sign = -1 if by_success else 1                     # strongest: the highest success / the lowest accuracy
    top, bottom = (sign * att[col]).min() * sign, (sign * att[col]).max() * sign
    best = [_name(a) for a in att[(sign * att[col]) <= sign * top + 5e-4].attack]
    worst = [_name(a) for a in att[(sign * att[col]) >= sign * bottom - 5e-4].attack]
    over = [_name(a) for a in lb[lb.mean_adv_acc.isna()].attack]
    where = f"averaged over {n_settings} leakage-free settings" if n_settings > 1 else "on its setting"
    at = (f"At a matched budget (perturbation SNR ≥ {snr_db:g} dB, i.e. no louder than the speech)"
          if snr_db > -np.inf else "At its best configuration (no run logged an SNR, so no matched budget)")
    lead = att[att.attack.map(_name).isin(best)]
    what = (f"success rate {top:.3f} on the correctly classified segments {where}, adversarial accuracy "
            f"{lead.mean_adv_acc.mean():.3f} from clean {lb.clean_acc.iloc[0]:.3f}" if by_success else
            f"adversarial accuracy {top:.3f} {where}, from clean {lb.clean_acc.iloc[0]:.3f}")
    s = f"{at} the strongest attack{'s are' if len(best) > 1 else ' is'} {_and(best)} ({what})"
    if abs(bottom - top) > 5e-4:
        s += f"; the weakest {'are' if len(worst) > 1 else 'is'} {_and(worst)} ({bottom:.3f})"
    if over:
        s += f"; {_and(over)} ha{'ve' if len(over) > 1 else 's'} no configuration that quiet"
    return s + "."


def _gender(t) -> str | None:
    from . import stats
    from .significance import clean_gender_holm
    a = stats.ALPHA
    parts, sig = [], []
    try:
        t3 = t["table03_clean_accuracy"].data
    except KeyError:
        t3 = None
    if t3 is not None and len(t3) and "p" in t3:
        adj = clean_gender_holm(t3)
        sig += [f"clean accuracy on {r.setting} ({r.gap:+.3f})" for r, h in zip(t3.itertuples(), adj) if h < a]
        parts.append(f"clean accuracy ({int(t3.p.notna().sum())} of {len(t3)} settings testable)")
    try:
        t47 = t["table47_gender_accuracy"].data
    except KeyError:
        t47 = None
    if t47 is not None and len(t47) and "p_holm" in t47:
        sig += [f"{_name(r.attack)} on {r.setting} ({r.gap:+.3f})" for r in t47[t47.p_holm < a].itertuples()]
        parts.append(f"adversarial accuracy ({int(t47.p.notna().sum())} of {len(t47)} best configurations "
                     "testable)")
    if not parts:
        return None
    if sig:
        return "Gender: the female − male gap is significant after Holm for " + _and(sig) + "."
    n_tested = sum(int(d.p.notna().sum()) for d in (t3, t47) if d is not None and len(d) and "p" in d)
    if not n_tested:
        return ("Gender: not testable on clean or adversarial accuracy (too few speakers per gender, or too few "
                "relabellings within folds for a two-sided p below α); the minimal-perturbation test, one-sided where "
                "a plan says so, is under \"Measures below saturation\".")
    return "Gender: no female − male gap is significant after Holm, in " + _and(parts) + "."


def _language(t) -> str | None:
    from . import stats
    lt = t.tests
    if lt is None or lt.empty:
        return None
    a = stats.ALPHA
    clean, adv = lt[lt.attack == "clean"], lt[lt.attack != "clean"]
    def pair(r) -> str:      # same protocol on both sides: the datasets name the pair
        return f"{r.a.split(' (')[0]} − {r.b.split(' (')[0]}" + (f" ({r.a.split(' (')[1]}" if " (" in r.a else "")
    hits = [f"clean accuracy {pair(r)}: {r.clean_diff:+.3f}" for r in clean.itertuples()
            if getattr(r, "clean_p_holm", np.nan) < a]
    hits += [f"{_name(r.attack)} {pair(r)}: {r.diff:+.3f}" for r in adv.itertuples() if r.p_holm < a]
    n = len(clean) + len(adv)
    head = ("Language: not identifiable (one corpus per language: speakers, model, emotion set and recording "
            "differ at once). Between the corpora, descriptively: ")
    if hits:
        return head + f"{len(hits)} of {n} comparisons (same protocol) differ after Holm: {_and(hits)}."
    return head + (f"no difference is significant after Holm ({len(clean)} clean and {len(adv)} attack comparisons "
                   "under the same protocol).")


def _protocol(t) -> str | None:
    from . import stats
    from .significance import protocol_holm
    try:
        d = t["protocol_gap"].data
    except KeyError:
        return None
    if d.empty:
        return None
    clean, adj_c, adj_a = protocol_holm(d)
    sig = [f"clean accuracy on {r.dataset}" for r, h in zip(clean.itertuples(), adj_c) if h < stats.ALPHA]
    sig += [f"{_name(r.attack)} {r.config} on {r.dataset}" for r, h in zip(d.itertuples(), adj_a)
            if h < stats.ALPHA]
    lo, hi = clean.clean_acc_diff.min(), clean.clean_acc_diff.max()
    rng = f"{lo:+.3f}" if abs(hi - lo) < 5e-4 else f"{lo:+.3f} to {hi:+.3f}"
    s = (f"Protocol: the leaky split=paper changes clean accuracy by {rng} against split={d.leakage_free.iloc[0]} "
         f"({len(clean)} corp{'us' if len(clean) == 1 else 'ora'}); ")
    return s + ("significant after Holm for " + _and(sig) + "." if sig else
                f"none of the {len(clean) + int(np.isfinite(adj_a).sum())} protocol comparisons is significant after "
                "Holm (families: clean accuracy; adversarial accuracy).")


def _checklist(cl, runs, t) -> str | None:
    parts = []
    if cl is not None and len(cl):
        n = cl.verdict.value_counts()
        s = (f"Checklist: {n.get('PASS', 0)} PASS, {n.get('FLAG', 0)} FLAG"
             + (f", {n['undecided']} undecided (interval straddles the rule)" if n.get("undecided", 0) else "")
             + f", {n.get('n/a', 0)} n/a")
        fl = cl[cl.verdict == "FLAG"]
        if len(fl):
            by = fl.groupby(["attack", "check"], sort=False).size()
            s += " — " + "; ".join(f"{_name(a)}: {c}" + (f" ×{k}" if k > 1 else "") for (a, c), k in by.items())
        parts.append(s)
    k = _n_classes(runs)
    if k and "clean_acc" in t.best:
        near = [f"{s} (clean {sub.clean_acc.mean():.3f}, chance {1 / k:.2f})" for s, sub in t.best.groupby("setting")
                if sub.clean_acc.mean() < 1 / k + 0.15]
        if near:
            say = "these numbers say" if len(near) > 1 else "its numbers say"
            parts.append(f"the model is near chance on {_and(near)}, so {say} little about robustness")
    return ("; ".join(parts) + ".") if parts else None


def takeaway(runs, t, cl=None, snr_db: float = MATCHED_SNR_DB) -> str:
    """Three to five sentences generated from the verdicts: the strongest attack at the matched budget, whether
    gender, language and the protocol matter (Holm-corrected tests over speakers), what the checklist flags."""
    snr_db = budget(t, snr_db)
    lb, _ = leaderboard(t, snr_db)
    sentences = [_strongest(lb, snr_db, len(primary_settings(t.configs))) if len(lb) else None,
                 _gender(t), _language(t), _protocol(t), _checklist(cl, runs, t)]
    # one sentence per line (Markdown hard breaks), the minus sign as a minus
    return " \\\n".join(re.sub(r"(?<![\w=])-(?=\d)", "−", s) for s in sentences if s)


def summary_lines(runs, t, figure: str | None = None, cl=None, snr_db: float = MATCHED_SNR_DB) -> list[str]:
    """Markdown: the first screen — the takeaway, then the attacks at a matched budget (the table of contents
    follows in the HTML) — and the *Overview* section after it (what was attacked, the flags, Figure 5, the
    best configuration per attack and setting). ``figure``: a path (relative to the report) for Figure 5."""
    from .render import md_table
    lines = ["## Summary", "", "**Takeaway.** " + takeaway(runs, t, cl, snr_db), ""]
    snr_db = budget(t, snr_db)
    _, board = leaderboard(t, snr_db)
    if len(board):
        settings = primary_settings(t.configs)
        strongest = ("the highest success rate on the segments the model classified correctly (ranked on it; "
                     "each cell: success rate / adversarial accuracy over all segments)"
                     if "success" in " ".join(board.columns) else "the lowest adversarial accuracy")
        lines += [(f"**Attacks at a matched budget: perturbation SNR ≥ {snr_db:g} dB** (per attack and setting, the "
                   f"configuration with {strongest} among those whose mean perturbation is at "
                   f"least {snr_db:g} dB below the signal; " if snr_db > -np.inf else
                   f"**Attacks at their best configuration** (the configuration with {strongest}; no run logged an "
                   "SNR, so no matched budget; ")
                  + "first row: clean accuracy on the same segments; "
                  + ("leakage-free settings only" if any("paper" not in s for s in settings)
                     and (t.configs.split == "paper").any() else "all settings")
                  + "; click a column to sort):", "", md_table(board).rstrip("\n"), ""]
    lines += ["## Overview", "", _what(runs, t), ""]
    fl = flags(runs, t)
    lines += ["**Flags:**", ""] + ([f"- {f}" for f in fl] if fl else ["- none: every run changed predictions, the "
                                                                       "model is clearly above chance, and the samples "
                                                                       "and seeds are not flagged as small."])
    if figure:
        lines += ["", f"![Figure 5: adversarial accuracy of the best configuration per attack (any budget): all, "
                  f"female "
                  f"and male speakers (95% CI); ticks = clean accuracy of each group, a bar at 0 drawn as a "
                  f"thick line]({figure})"]
    head = headline(t)
    if len(head):
        lines += ["", "### Best configuration per attack and setting, any budget (headline)", "",
                  "Lowest adversarial accuracy at any budget (clean = accuracy on the same segments before the "
                  "attack); compare the SNR of these configurations in *Best configuration per attack* below.", "",
                  md_table(head).rstrip("\n")]
    return lines
