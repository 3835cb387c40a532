"""The report's tables, each as numbers (CSV, tests) and as display text (Markdown/HTML).

Units of analysis:
- a *run*: one MLflow attack run;
- a *configuration*: runs whose flattened config is equal except the seed keys (``seed``, ``split.seed``,
  ``attack.seed``, ``attack.sample_seed``), the fold (``split.fold``) and run-only keys. Its metrics: per
  repetition (one value of the seeds) the folds are pooled (weighted by their segments; times summed), then
  mean ± sample std over repetitions. Its intervals and tests come from its segments pooled over all its
  runs, one row per distinct segment (repeated runs on a segment averaged: ``collect.pool``), and rest on
  speakers (``stats``);
- a *setting*: a dataset, plus any non-attack config that differs between its runs (e.g. the split
  mode), so that runs of different protocols are never mixed in one cell. Folds of ``split=speaker_cv``
  are one setting: together they test every speaker once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats
from .collect import GROUPS, METRICS, Runs, Samples, pool

MISSING = "—"
TIME = ("attack_time_s", "time_per_sample_s")
SFX = {"all": "", "female": "_female", "male": "_male"}
ATTACK_ORDER = ("fgsm", "bim", "autoattack", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary", "noise")
FEW = "†"          # marks an interval over fewer than stats.MIN_SPEAKERS speakers


@dataclass
class Table:
    key: str           # file name of the CSV
    title: str
    data: pd.DataFrame      # numbers
    display: pd.DataFrame   # text
    note: str = ""


@dataclass
class Tables:
    configs: pd.DataFrame
    best: pd.DataFrame
    items: list = field(default_factory=list)
    tests: pd.DataFrame | None = None
    samples: dict = field(default_factory=dict)    # config id -> pooled Samples

    def __getitem__(self, key: str) -> Table:
        for t in self.items:
            if t.key == key:
                return t
        raise KeyError(key)


# ------------------------------------------------------------------------------------ format
def f3(v) -> str:
    return MISSING if v is None or v != v else f"{v:.3f}"


def fnum(v) -> str:
    if v is None or v != v:
        return MISSING
    return f"{v:.4g}"


def fci(m, lo=np.nan, hi=np.nan, std=np.nan, n=1) -> str:
    if m is None or m != m:
        return MISSING
    s = f"{m:.3f}"
    if n > 1 and std == std:
        s += f" ± {std:.3f}"
    if lo == lo and hi == hi:
        s += f" [{lo:.2f}, {hi:.2f}]"
    return s


def fp(p) -> str:
    if p is None or p != p:
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def attack_sort_key(a: str):
    return (ATTACK_ORDER.index(a) if a in ATTACK_ORDER else len(ATTACK_ORDER), a)


def _attacks(df) -> list[str]:
    return sorted(df.attack.unique(), key=attack_sort_key)


def _settings(df) -> list[str]:
    return sorted(df.setting.unique())


# ------------------------------------------------------------------------------- configurations
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


def _pool_folds(runs: pd.DataFrame, m: str) -> float:
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


def _speakers_known(t: pd.DataFrame) -> bool:
    return bool(len(t)) and bool(t.speaker_known.all())


def _subset(t: pd.DataFrame, g: str) -> pd.DataFrame:
    return t if g == "all" else t[t.gender == g]


def interval_columns(row: dict, t: pd.DataFrame, cols=(("clean_acc", "clean_ok"), ("adv_acc", "adv_ok"))) -> None:
    """Speaker-level intervals of ``cols`` per gender group, with the speakers and segments behind them."""
    for g in GROUPS:
        tg = _subset(t, g)
        row[f"n_speakers{SFX[g]}"] = tg.speaker.nunique() if _speakers_known(tg) else np.nan
        row[f"n_segments{SFX[g]}"] = len(tg)
        for kind, col in cols:
            _, row[f"{kind}{SFX[g]}_lo"], row[f"{kind}{SFX[g]}_hi"] = stats.hier_ci(tg.speaker, tg.recording_id,
                                                                                   tg[col])


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
               "effects": ",".join(sorted(set(sub.attack_effect) - {""})), "params": first.params}
        reps = [r for _, r in sub.groupby("rep", sort=False)]
        for m in mnames:
            row[m], row[f"{m}_std"], _ = stats.mean_std([_pool_folds(r, m) for r in reps])
        have = [samples[r] for r in sub.run_id if r in samples]
        if have:
            pooled[cid] = t = pool(have)
            interval_columns(row, t)
        rows.append(row)
    out = pd.DataFrame(rows)
    for g in GROUPS:
        for c in [f"{k}{SFX[g]}_{b}" for k in ("clean_acc", "adv_acc") for b in ("lo", "hi")] + \
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


def _cell(row, kind, g="all"):
    c = f"{kind}{SFX[g]}"
    s = fci(row[c], row.get(f"{c}_lo", np.nan), row.get(f"{c}_hi", np.nan), row.get(f"{c}_std", np.nan),
            row.get("n_reps", row["n_runs"]))
    n_spk = row.get(f"n_speakers{SFX[g]}", np.nan)
    return s + (FEW if s != MISSING and n_spk == n_spk and n_spk < stats.MIN_SPEAKERS else "")


def _pivot(best: pd.DataFrame, attacks, settings, fn, cols_per_setting=("",)) -> pd.DataFrame:
    """attack rows x (setting[, sub]) columns of display text; missing cells '—'."""
    rows = []
    for a in attacks:
        r = {"attack": a}
        for s in settings:
            hit = best[(best.attack == a) & (best.setting == s)]
            for sub in cols_per_setting:
                name = f"{s}: {sub}" if sub else s
                r[name] = fn(hit.iloc[0], sub) if len(hit) else MISSING
        rows.append(r)
    return pd.DataFrame(rows)


def speaker_test(a: pd.DataFrame, b: pd.DataFrame, col: str, what: str = "gender") -> stats.Test:
    """``stats.speaker_test``, or not testable when the runs carry no speaker ids (logged before them)."""
    if len(a) and len(b) and not (_speakers_known(a) and _speakers_known(b)):
        return stats.Test(np.nan, np.nan, 0, 0, "not testable (runs without speaker ids in adversarial.npz)")
    return stats.speaker_test(a, b, col, what)


def _test_columns(row: dict, test: stats.Test, prefix: str = "") -> None:
    row[f"{prefix}p"], row[f"{prefix}min_p"], row[f"{prefix}test"] = test.p, test.min_p, test.text()


CI_NOTE = ("95% CI: two-stage bootstrap over speakers, then recordings within speaker (2,000 draws); "
           f"{FEW} = fewer than {stats.MIN_SPEAKERS} speakers in that group, so the interval covers other "
           "recordings of these speakers, not other speakers.")
TEST_NOTE = (f"p: two-sided permutation test over speakers (gender labels of speakers permuted; exact when there "
             f"are at most {stats.N_PERM} relabellings), with the speakers per group and the smallest p that "
             f"design can give; fewer than {stats.MIN_SPEAKERS} speakers in a group: not testable.")


# ---------------------------------------------------------------------------------------- tables
def clean_table(runs: Runs, pooled_by_run: dict[str, Samples]) -> Table:
    """Paper Table 3: clean accuracy per dataset (setting) and gender.

    Per repetition (one trained model per fold): the clean accuracy on the segments its runs attacked (each
    segment once; folds pooled). Then mean ± std over repetitions; intervals and the female − male test from
    all of the setting's segments (repeated runs averaged per segment). Without per-sample artifacts, a
    repetition's value is its runs' ``clean_acc`` metric.
    """
    df = runs.df
    rows, disp = [], []
    for s in _settings(df):
        sub = df[df.setting == s]
        model_id = sub.model_run_id.where(sub.model_run_id != "", sub.model_key)
        reps = []     # one per trained-model repetition (training and split seeds); its folds pooled
        for _, rs in sub.groupby([p.get("seed", "") + "|" + p.get("split.seed", "") for p in sub.params], sort=False):
            have = [pooled_by_run[r] for r in rs.run_id if r in pooled_by_run]
            if have:
                t = pool(have)
                v = {"n": len(t), **{f"clean_acc{SFX[g]}": _subset(t, g).clean_ok.mean() if len(_subset(t, g))
                                     else np.nan for g in GROUPS}}
            else:
                per_fold = rs.drop_duplicates("fold")
                v = {"n": per_fold.n_samples.sum() if "n_samples" in per_fold else np.nan,
                     **{f"clean_acc{SFX[g]}": _pool_folds(per_fold, f"clean_acc{SFX[g]}") for g in GROUPS}}
            v["model_test_acc"] = _pool_folds(rs.drop_duplicates("fold"), "model_test_acc")
            reps.append(v)
        M = pd.DataFrame(reps)
        row = {"setting": s, "language": sub.language.iloc[0], "n_models": model_id.nunique(),
               "n_sample_sets": len(M), "n_samples": float(M.n.mean())}
        row["model_test_acc"], row["model_test_acc_std"], _ = stats.mean_std(M.model_test_acc)
        for g in GROUPS:
            c = f"clean_acc{SFX[g]}"
            row[c], row[f"{c}_std"], _ = stats.mean_std(M[c])
        have = [pooled_by_run[r] for r in sub.run_id if r in pooled_by_run]
        T = pool(have) if have else None
        if T is not None:
            interval_columns(row, T, (("clean_acc", "clean_ok"),))
            f, m = _subset(T, "female"), _subset(T, "male")
            row["gap"], row["gap_lo"], row["gap_hi"] = stats.hier_gap_ci(f, m, "clean_ok")
            _test_columns(row, speaker_test(f, m, "clean_ok"))
        else:
            for g in GROUPS:
                row[f"clean_acc{SFX[g]}_lo"] = row[f"clean_acc{SFX[g]}_hi"] = row[f"n_speakers{SFX[g]}"] = np.nan
            row.update(gap=np.nan, gap_lo=np.nan, gap_hi=np.nan, p=np.nan, min_p=np.nan, test=MISSING)
        rows.append(row)
        n = row["n_sample_sets"]
        spk = "/".join(MISSING if row[f"n_speakers{SFX[g]}"] != row[f"n_speakers{SFX[g]}"]
                       else f"{row[f'n_speakers{SFX[g]}']:.0f}" for g in ("female", "male"))
        disp.append({"setting": s, "language": row["language"],
                     "full test split (training)": fci(row["model_test_acc"], std=row["model_test_acc_std"], n=n),
                     "attacked segments": f"{row['n_samples']:.0f}" + (f" x {n} repetitions" if n > 1 else ""),
                     "speakers F/M": spk,
                     **{g: _cell({**row, "n_runs": n, "n_reps": n}, "clean_acc", g) for g in GROUPS},
                     "female − male [95% CI]": fci(row["gap"], row["gap_lo"], row["gap_hi"]),
                     "p (speakers)": row["test"]})
    return Table("table03_clean_accuracy", "Clean accuracy per dataset and gender (paper Table 3)",
                 pd.DataFrame(rows), pd.DataFrame(disp),
                 "Clean accuracy on the attacked test segments (each segment once; folds of a cross-validation "
                 "pooled); *full test split* is the training runs' `test_acc` (all test segments, folds pooled). "
                 "With several seeds: mean ± std over seeds. " + CI_NOTE + " " + TEST_NOTE)


def _pert(r, g: str, unit: str = "") -> str:
    c = f"perturbation{unit}{SFX[g]}"
    return fnum(r[c]) + (f" ± {fnum(r[f'{c}_std'])}" if r.get("n_reps", r.n_runs) > 1 and r[f"{c}_std"] == r[f"{c}_std"]
                         else "")


def best_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    t4 = _pivot(best, attacks, settings,
                lambda r, _: r.config + (f" ({r.n_reps} seeds)" if r.n_reps > 1 else "")
                + (f" ({len(r.folds.split(','))} folds)" if r.folds else ""))
    cols = [c for c in best.columns if c not in ("params",)]
    data = best[cols]
    t5 = _pivot(best, attacks, settings, lambda r, g: _cell(r, "adv_acc", g), GROUPS)
    t6 = _pivot(best, attacks, settings, lambda r, g: _pert(r, g), GROUPS)
    t6db = _pivot(best, attacks, settings,
                  lambda r, g: (f"{fnum(r[f'perturbation_db{SFX[g]}'])} dB / {fnum(r[f'snr_db{SFX[g]}'])} dB"
                                if r.get(f"perturbation_db{SFX[g]}", np.nan)
                                == r.get(f"perturbation_db{SFX[g]}", np.nan)
                                else MISSING), GROUPS)
    t44 = _pivot(best, attacks, settings,
                 lambda r, _: f"{r.attack_time_s:.3g} s ({r.time_per_sample_s:.3g} s/sample)"
                 if r.attack_time_s == r.attack_time_s else MISSING)
    crit = "lowest adversarial accuracy, ties broken by the lowest mean perturbation"
    return [
        Table("table04_best_config", f"Best configuration per attack and dataset ({crit}; paper Table 4)", data,
              t4, "Configurations are seed-aggregated (mean over runs that differ only by the seed) and pool the "
              "folds of a cross-validation."),
        Table("table05_best_accuracy", "Adversarial accuracy of the best configuration, all / female / male "
              "(paper Table 5)", data, t5, "mean [95% CI]; ± std over seeds where a configuration ran with several "
              "seeds. " + CI_NOTE),
        Table("table06_best_perturbation", "Mean perturbation |x_adv − x| of the best configuration, all / "
              "female / male, in model input units (paper Table 6)", data, t6,
              "Normalized log-Mel units (per-band standard deviations for the `_std` normalizations): they differ "
              "per band and dataset, so compare across datasets in dB (next table)."),
        Table("table06db_best_perturbation_db", "Perturbation of the best configuration in physical units: mean "
              "|δ| in dB of log-Mel / SNR in dB, all / female / male", data, t6db,
              "δ in dB = δ × the band's σ of the normalizer (`perturbation_db`, mean over all cells); SNR = "
              "10·log10(Σ P / Σ (√P′ − √P)²) per segment, P the original and P′ the perturbed Mel power (higher = "
              "quieter), averaged over the segments the attack changed (`snr_db`)."),
        Table("table44_best_time", "Attack time of the best configuration (paper Table 44)", data, t44,
              "Wall time of `attack.generate` for all attacked segments (folds summed), and per segment."),
    ]


def param_tables(cf: pd.DataFrame, attacks, settings) -> list[Table]:
    """Paper Tables 23–43: accuracy, perturbation and time for every swept value, per attack."""
    out = []
    for a in attacks:
        sub = cf[cf.attack == a]
        cfgs = sub.drop_duplicates("config").sort_values(["x", "config"])[["config", "x"]]
        rows, disp = [], []
        for s in settings:
            for _, c in cfgs.iterrows():
                hit = sub[(sub.setting == s) & (sub.config == c.config)]
                if len(hit):
                    r = hit.iloc[0]
                    rows.append({k: v for k, v in r.items() if k != "params"})
                    disp.append({"setting": s, "config": c.config, "seeds": str(r.n_reps),
                                 "folds": str(len(r.folds.split(","))) if r.folds else MISSING,
                                 "clean acc": _cell(r, "clean_acc"),
                                 **{f"adv acc {g}": _cell(r, "adv_acc", g) for g in GROUPS},
                                 "success rate": f3(r.success_rate),
                                 **{f"pert. {g}": fnum(r[f"perturbation{SFX[g]}"]) for g in GROUPS},
                                 "pert. dB": fnum(r.perturbation_db), "SNR dB": fnum(r.snr_db),
                                 "L2": fnum(r.l2), "L∞": fnum(r.linf),
                                 "time s": f"{r.attack_time_s:.3g}", "s/sample": f"{r.time_per_sample_s:.3g}"})
                else:
                    rows.append({"attack": a, "setting": s, "config": c.config})
                    disp.append({"setting": s, "config": c.config, "seeds": "0", "folds": MISSING,
                                 "clean acc": MISSING, **{f"adv acc {g}": MISSING for g in GROUPS},
                                 "success rate": MISSING, **{f"pert. {g}": MISSING for g in GROUPS},
                                 "pert. dB": MISSING, "SNR dB": MISSING, "L2": MISSING, "L∞": MISSING,
                                 "time s": MISSING, "s/sample": MISSING})
        out.append(Table(f"param_{a}", f"{a}: every swept value (paper Tables 23–43)", pd.DataFrame(rows),
                         pd.DataFrame(disp), "pert.: mean |δ| in model input units; pert. dB: the same in dB of "
                         "log-Mel; SNR dB: per-segment SNR of the perturbation, mean over changed segments. "
                         + CI_NOTE))
    return out


def rank_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    """Paper Tables 45–46: per setting, rank attacks by best adversarial accuracy (1 = lowest accuracy,
    the most effective) and by its perturbation in dB (1 = smallest; model units when dB are missing)."""
    out = []
    pert = "perturbation_db" if "perturbation_db" in best and best.perturbation_db.notna().all() else "perturbation"
    for key, metric, what in (("table45_rank_accuracy", "adv_acc", "adversarial accuracy (1 = lowest = most "
                               "effective attack)"),
                              ("table46_rank_perturbation", pert, "mean perturbation of the best configuration"
                               + (" in dB" if pert == "perturbation_db" else "") + " (1 = smallest)")):
        piv = best.pivot_table(index="attack", columns="setting", values=metric, aggfunc="first")
        piv = piv.reindex(index=attacks, columns=settings)
        ranks = piv.rank(axis=0, method="min", ascending=True)
        data = ranks.copy()
        data["rank_sum"] = ranks.sum(axis=1, min_count=1)
        data["n_settings"] = ranks.notna().sum(axis=1)
        data = data.reset_index()
        disp = data.copy()
        for c in settings + ["rank_sum"]:
            disp[c] = [MISSING if v != v else f"{v:.0f}" for v in data[c]]
        disp["n_settings"] = data["n_settings"].astype(str)
        out.append(Table(key, f"Rank score by {what} (paper Table {key[5:7]})", data, disp,
                         "Rank within each dataset among the attacks run there (ties share the lower rank); "
                         "rank sum = sum over datasets (lower = better attack). An attack missing in a dataset "
                         "has no rank there, so compare sums only between rows with the same n_settings."))
    return out


def gender_tables(best: pd.DataFrame, pooled: dict, attacks, settings) -> list[Table]:
    """Female vs male for the best configuration of each attack (paper Tables 47–48), tested over speakers."""
    rows = []
    for _, r in best.iterrows():
        T = pooled.get(r.config_id)
        row = {"attack": r.attack, "setting": r.setting, "config": r.config, "n_runs": r.n_runs,
               "adv_acc_female": r.adv_acc_female, "adv_acc_male": r.adv_acc_male,
               "perturbation_female": r.perturbation_female, "perturbation_male": r.perturbation_male,
               "perturbation_db_female": r.get("perturbation_db_female", np.nan),
               "perturbation_db_male": r.get("perturbation_db_male", np.nan)}
        if T is not None:
            f, m = _subset(T, "female"), _subset(T, "male")
            row["gap"], row["gap_lo"], row["gap_hi"] = stats.hier_gap_ci(f, m, "adv_ok")
            _test_columns(row, speaker_test(f, m, "adv_ok"))
            row["n_female"], row["n_male"] = len(f), len(m)
        else:
            row.update(gap=r.adv_acc_female - r.adv_acc_male, gap_lo=np.nan, gap_hi=np.nan, p=np.nan, min_p=np.nan,
                       test=MISSING)
        rows.append(row)
    data = pd.DataFrame(rows)
    if data.empty:
        return []
    data["p_holm"] = stats.holm(data.p.to_numpy())
    data["attack_order"] = [attack_sort_key(a) for a in data.attack]
    data = data.sort_values(["attack_order", "setting"]).drop(columns="attack_order").reset_index(drop=True)
    disp = pd.DataFrame({
        "attack": data.attack, "setting": data.setting, "config": data.config,
        "adv acc female": data.adv_acc_female.map(f3), "adv acc male": data.adv_acc_male.map(f3),
        "female − male [95% CI]": [fci(g, lo, hi) for g, lo, hi in zip(data.gap, data.gap_lo, data.gap_hi)],
        "p (speakers)": data.test, "p (Holm)": data.p_holm.map(fp),
        "significant (α=0.05, Holm)": ["yes" if p < stats.ALPHA else ("no" if p == p else "not testable")
                                        for p in data.p_holm]})
    t47 = Table("table47_gender_accuracy", "Female vs male adversarial accuracy of the best configuration "
                "(paper Tables 47–48, with tests over speakers)", data, disp,
                "Gap CI: two-stage bootstrap (speakers, then recordings) of females and males independently. "
                + TEST_NOTE + " Holm correction over the testable rows of this table.")
    prow = []
    for a in attacks:
        r = {"attack": a}
        for s in settings:
            hit = data[(data.attack == a) & (data.setting == s)]
            for g in ("female", "male"):
                r[f"{s}: {g}"] = (f"{fnum(hit[f'perturbation_{g}'].iloc[0])} "
                                  f"({fnum(hit[f'perturbation_db_{g}'].iloc[0])} dB)"
                                  if len(hit) else MISSING)
        prow.append(r)
    # per-gender rank sums (the paper ranks attacks separately for female and male speakers)
    for g in ("female", "male"):
        piv = best.pivot_table(index="attack", columns="setting", values=f"adv_acc_{g}", aggfunc="first")
        ranks = piv.reindex(index=attacks, columns=settings).rank(axis=0, method="min")
        sums = ranks.sum(axis=1, min_count=1)
        for r in prow:
            v = sums.get(r["attack"], np.nan)
            r[f"rank sum {g} (accuracy)"] = MISSING if v != v else f"{v:.0f}"
    t48 = Table("table48_gender_perturbation", "Female vs male perturbation of the best configuration (model units, "
                "dB in parentheses), and per-gender rank sums by adversarial accuracy", data, pd.DataFrame(prow))
    return [t47, t48]


def protocol_gap(cf: pd.DataFrame, pooled: dict) -> Table | None:
    """Where a configuration ran with both split=paper and split=recording: the difference."""
    if not {"paper", "recording"} <= set(cf.split):
        return None

    rows = []
    for _, sub in cf.groupby("protocol_key", sort=False):
        pa, re = sub[sub.split == "paper"], sub[sub.split == "recording"]
        if not len(pa) or not len(re):
            continue
        a, b = pa.iloc[0], re.iloc[0]
        row = {"dataset": a.dataset, "attack": a.attack, "config": a.config, "runs_paper": a.n_runs,
               "runs_recording": b.n_runs}
        for kind in ("clean_acc", "adv_acc"):
            row[f"{kind}_paper"], row[f"{kind}_recording"] = a[kind], b[kind]
            row[f"{kind}_diff"] = a[kind] - b[kind]
            Ta, Tb = pooled.get(a.config_id), pooled.get(b.config_id)
            if Ta is not None and Tb is not None:
                ok = "clean_ok" if kind == "clean_acc" else "adv_ok"
                _, row[f"{kind}_diff_lo"], row[f"{kind}_diff_hi"] = stats.hier_gap_ci(Ta, Tb, ok)
                test = (stats.paired_speaker_test(Ta, Tb, ok) if _speakers_known(Ta) and _speakers_known(Tb) else
                        stats.Test(np.nan, np.nan, 0, 0, "not testable (runs without speaker ids)"))
                _test_columns(row, test, f"{kind}_")
            else:
                row[f"{kind}_diff_lo"] = row[f"{kind}_diff_hi"] = row[f"{kind}_p"] = np.nan
                row[f"{kind}_test"] = MISSING
        rows.append(row)
    if not rows:
        return None
    data = pd.DataFrame(rows)
    data["attack_order"] = [attack_sort_key(a) for a in data.attack]
    data = data.sort_values(["dataset", "attack_order", "config"]).drop(columns="attack_order").reset_index(drop=True)
    disp = pd.DataFrame({
        "dataset": data.dataset, "attack": data.attack, "config": data.config,
        "runs paper / recording": [f"{x} / {y}" for x, y in zip(data.runs_paper, data.runs_recording)],
        **{f"{lbl} paper": data[f"{k}_paper"].map(f3) for k, lbl in (("clean_acc", "clean"), ("adv_acc", "adv"))},
        **{f"{lbl} recording": data[f"{k}_recording"].map(f3) for k, lbl in (("clean_acc", "clean"),
                                                                              ("adv_acc", "adv"))},
        "Δ clean (paper − recording) [CI]": [fci(*v) for v in zip(data.clean_acc_diff, data.clean_acc_diff_lo,
                                                                  data.clean_acc_diff_hi)],
        "p clean": data.clean_acc_test,
        "Δ adv [CI]": [fci(*v) for v in zip(data.adv_acc_diff, data.adv_acc_diff_lo, data.adv_acc_diff_hi)],
        "p adv": data.adv_acc_test})
    disp = disp[["dataset", "attack", "config", "runs paper / recording", "clean paper", "clean recording",
                 "Δ clean (paper − recording) [CI]", "p clean", "adv paper", "adv recording", "Δ adv [CI]", "p adv"]]
    return Table("protocol_gap", "Protocol gap: split=paper (segment-level, leaky) vs split=recording", data, disp,
                 "Same configuration (all other keys equal, seeds aggregated) under both split modes. The test sets "
                 "differ but hold the same speakers: CI from independent two-stage bootstraps of the two test sets; "
                 "p: sign-flip permutation test on the per-speaker differences (speakers in both).")


def language_tests(best: pd.DataFrame, pooled: dict) -> pd.DataFrame:
    """Pairwise differences between settings (datasets/languages) of the best config's adversarial
    accuracy, per attack: permutation tests over speakers (each dataset's speakers are its own)."""
    rows = []
    for a, sub in best.groupby("attack"):
        sub = sub.reset_index(drop=True)
        for i in range(len(sub)):
            for j in range(i + 1, len(sub)):
                x, y = sub.iloc[i], sub.iloc[j]
                # datasets (languages) compared under the same protocol only
                if x.dataset == y.dataset or x.setting[len(x.dataset):] != y.setting[len(y.dataset):]:
                    continue
                Tx, Ty = pooled.get(x.config_id), pooled.get(y.config_id)
                if Tx is None or Ty is None:
                    continue
                g, lo, hi = stats.hier_gap_ci(Tx, Ty, "adv_ok")
                row = {"attack": a, "a": x.setting, "b": y.setting, "diff": g, "lo": lo, "hi": hi}
                _test_columns(row, speaker_test(Tx, Ty, "adv_ok", "dataset"))
                rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df["p_holm"] = stats.holm(df.p.to_numpy())
    return df


def build_tables(runs: Runs, samples: dict[str, Samples]) -> Tables:
    cf, pooled = configs(runs, samples)
    best = best_configs(cf)
    attacks, settings = _attacks(runs.df), _settings(runs.df)
    items = [clean_table(runs, samples), *best_tables(best, attacks, settings),
             *rank_tables(best, attacks, settings), *gender_tables(best, pooled, attacks, settings)]
    gap = protocol_gap(cf, pooled)
    if gap is not None:
        items.append(gap)
    items += param_tables(cf, attacks, settings)
    t = Tables(cf, best, items, language_tests(best, pooled), pooled)
    return t
