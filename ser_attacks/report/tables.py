"""The report's tables, each as numbers (CSV, tests) and as display text (Markdown/HTML).

Units of analysis:
- a *run*: one MLflow attack run;
- a *configuration*: runs whose flattened config is equal except the seed keys (``seed``,
  ``split.seed``) and run-only keys; its metrics are the mean (± sample std) over those runs, and its
  confidence intervals come from the pooled per-sample data of those runs;
- a *setting*: a dataset, plus any non-attack config that differs between its runs (e.g. the split
  mode), so that runs of different protocols are never mixed in one cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats
from .collect import GROUPS, METRICS, Runs, Samples

MISSING = "—"
TIME = ("attack_time_s", "time_per_sample_s")
SFX = {"all": "", "female": "_female", "male": "_male"}
ATTACK_ORDER = ("fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary")


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
def configs(runs: Runs, samples: dict[str, Samples]) -> tuple[pd.DataFrame, dict]:
    """One row per configuration (seed-aggregated): metric means, stds, pooled-sample CIs."""
    df = runs.df
    rows, pooled = [], {}
    mnames = [f"{m}{SFX[g]}" for m in METRICS for g in GROUPS] + list(TIME)
    for i, (_, sub) in enumerate(df.groupby("group", sort=False)):
        first = sub.iloc[0]
        cid = f"c{i}"
        row = {"config_id": cid, "attack": first.attack, "setting": first.setting, "dataset": first.dataset,
               "language": first.language, "split": first.split, "config": first.config,
               "x_param": first.x_param, "x": first.x, "n_runs": len(sub), "protocol_key": first.protocol_key,
               "seeds": ",".join(sorted(map(str, sub.seed))), "run_ids": ",".join(sub.run_id),
               "params": first.params}
        for m in mnames:
            if m in sub:
                mean, std, _ = stats.mean_std(sub[m])
                row[m], row[f"{m}_std"] = mean, std
            else:
                row[m], row[f"{m}_std"] = np.nan, np.nan
        have = [samples[r] for r in sub.run_id if r in samples]
        if have:
            s = Samples.concat(have)
            pooled[cid] = s
            for g in GROUPS:
                sg = s.subset(g)
                for kind, ok in (("clean_acc", sg.clean_ok), ("adv_acc", sg.adv_ok)):
                    _, lo, hi = stats.bootstrap_ci(ok, seed=0)
                    row[f"{kind}{SFX[g]}_lo"], row[f"{kind}{SFX[g]}_hi"] = lo, hi
        rows.append(row)
    out = pd.DataFrame(rows)
    for g in GROUPS:
        for kind in ("clean_acc", "adv_acc"):
            for b in ("lo", "hi"):
                c = f"{kind}{SFX[g]}_{b}"
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
    return fci(row[c], row.get(f"{c}_lo", np.nan), row.get(f"{c}_hi", np.nan), row.get(f"{c}_std", np.nan),
               row["n_runs"])


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


# ---------------------------------------------------------------------------------------- tables
def clean_table(runs: Runs, pooled_by_run: dict[str, Samples]) -> Table:
    """Paper Table 3: clean accuracy per dataset (setting) and gender.

    Per trained model (one per seed): the clean accuracy on the union of the test segments its runs
    attacked (deduplicated by test index; when every run attacked the same segments this is each run's
    ``clean_acc``). Then mean ± std over models; CI from the models' pooled segments. Without per-sample
    artifacts, a model's value is its first run's ``clean_acc`` metric.
    """
    df = runs.df
    rows, disp = [], []
    for s in _settings(df):
        sub = df[df.setting == s]
        model_id = sub.model_run_id.where(sub.model_run_id != "", sub.model_key)
        models, pooled = [], []
        for _, ms in sub.groupby(model_id, sort=False):
            have = [pooled_by_run[r] for r in ms.run_id if r in pooled_by_run]
            v = {"model_test_acc": ms.model_test_acc.iloc[0] if "model_test_acc" in ms else np.nan}
            if have:
                S = Samples.concat(have)
                S = S.take(np.unique(S.test_index, return_index=True)[1])
                pooled.append(S)
                v["n"] = len(S.label)
                for g in GROUPS:
                    ok = S.subset(g).clean_ok
                    v[f"clean_acc{SFX[g]}"] = float(ok.mean()) if ok.size else np.nan
            else:
                r0 = ms.iloc[0]
                v["n"] = r0.get("n_samples", np.nan)
                for g in GROUPS:
                    v[f"clean_acc{SFX[g]}"] = r0.get(f"clean_acc{SFX[g]}", np.nan)
            models.append(v)
        M = pd.DataFrame(models)
        row = {"setting": s, "language": sub.language.iloc[0], "n_models": len(M), "n_sample_sets": len(M),
               "n_samples": float(M.n.mean())}
        row["model_test_acc"], row["model_test_acc_std"], _ = stats.mean_std(M.model_test_acc)
        S = Samples.concat(pooled) if pooled else None
        for g in GROUPS:
            c = f"clean_acc{SFX[g]}"
            row[c], row[f"{c}_std"], _ = stats.mean_std(M[c])
            row[f"{c}_lo"] = row[f"{c}_hi"] = np.nan
            if S is not None:
                _, row[f"{c}_lo"], row[f"{c}_hi"] = stats.bootstrap_ci(S.subset(g).clean_ok)
        if S is not None:
            f, m = S.subset("female").clean_ok, S.subset("male").clean_ok
            row["gap"], row["gap_lo"], row["gap_hi"] = stats.gap_ci(f, m)
            row["p"] = stats.permutation_test(f, m)
        else:
            row["gap"] = row["gap_lo"] = row["gap_hi"] = row["p"] = np.nan
        rows.append(row)
        n = row["n_sample_sets"]
        disp.append({"setting": s, "language": row["language"],
                     "full test split (training)": fci(row["model_test_acc"], std=row["model_test_acc_std"],
                                                       n=row["n_models"]),
                     "attacked segments": f"{row['n_samples']:.0f}" + (f" x {n} models" if n > 1 else ""),
                     **{g: fci(row[f"clean_acc{SFX[g]}"], row[f"clean_acc{SFX[g]}_lo"], row[f"clean_acc{SFX[g]}_hi"],
                               row[f"clean_acc{SFX[g]}_std"], n) for g in GROUPS},
                     "female − male [95% CI]": fci(row["gap"], row["gap_lo"], row["gap_hi"]),
                     "p (permutation)": fp(row["p"])})
    return Table("table03_clean_accuracy", "Clean accuracy per dataset and gender (paper Table 3)",
                 pd.DataFrame(rows), pd.DataFrame(disp),
                 "Clean accuracy on the attacked test segments (the runs' `clean_acc`, per gender; per model the union "
                 "of the segments its runs attacked), with 95% "
                 "bootstrap CIs over segments; *full test split* is the training run's `test_acc` (all test "
                 "segments). With several seeds: mean ± std over seeds.")


def best_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    t4 = _pivot(best, attacks, settings,
                lambda r, _: r.config + (f" ({r.n_runs} seeds)" if r.n_runs > 1 else ""))
    cols = [c for c in best.columns if c not in ("params",)]
    data = best[cols]
    t5 = _pivot(best, attacks, settings, lambda r, g: _cell(r, "adv_acc", g), GROUPS)
    t6 = _pivot(best, attacks, settings,
                lambda r, g: fnum(r[f"perturbation{SFX[g]}"]) + (f" ± {fnum(r[f'perturbation{SFX[g]}_std'])}"
                                                                  if r.n_runs > 1 else ""), GROUPS)
    t44 = _pivot(best, attacks, settings,
                 lambda r, _: f"{r.attack_time_s:.3g} s ({r.time_per_sample_s:.3g} s/sample)"
                 if r.attack_time_s == r.attack_time_s else MISSING)
    crit = "lowest adversarial accuracy, ties broken by the lowest mean perturbation"
    return [
        Table("table04_best_config", f"Best configuration per attack and dataset ({crit}; paper Table 4)", data,
              t4, "Configurations are seed-aggregated (mean over runs that differ only by the seed)."),
        Table("table05_best_accuracy", "Adversarial accuracy of the best configuration, all / female / male "
              "(paper Table 5)", data, t5, "mean [95% bootstrap CI over attacked segments]; ± std over seeds "
              "where a configuration ran with several seeds."),
        Table("table06_best_perturbation", "Mean perturbation |x_adv − x| of the best configuration, all / "
              "female / male (paper Table 6)", data, t6),
        Table("table44_best_time", "Attack time of the best configuration (paper Table 44)", data, t44,
              "Wall time of `attack.generate` for all attacked segments, and per segment."),
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
                    disp.append({"setting": s, "config": c.config, "seeds": str(r.n_runs),
                                 "clean acc": _cell(r, "clean_acc"),
                                 **{f"adv acc {g}": _cell(r, "adv_acc", g) for g in GROUPS},
                                 "success rate": f3(r.success_rate),
                                 **{f"pert. {g}": fnum(r[f"perturbation{SFX[g]}"]) for g in GROUPS},
                                 "L2": fnum(r.l2), "L∞": fnum(r.linf),
                                 "time s": f"{r.attack_time_s:.3g}", "s/sample": f"{r.time_per_sample_s:.3g}"})
                else:
                    rows.append({"attack": a, "setting": s, "config": c.config})
                    disp.append({"setting": s, "config": c.config, "seeds": "0", "clean acc": MISSING,
                                 **{f"adv acc {g}": MISSING for g in GROUPS}, "success rate": MISSING,
                                 **{f"pert. {g}": MISSING for g in GROUPS}, "L2": MISSING, "L∞": MISSING,
                                 "time s": MISSING, "s/sample": MISSING})
        out.append(Table(f"param_{a}", f"{a}: every swept value (paper Tables 23–43)", pd.DataFrame(rows),
                         pd.DataFrame(disp)))
    return out


def rank_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    """Paper Tables 45–46: per setting, rank attacks by best adversarial accuracy (1 = lowest accuracy,
    the most effective) and by its perturbation (1 = smallest); sum the ranks over settings."""
    out = []
    for key, metric, what in (("table45_rank_accuracy", "adv_acc", "adversarial accuracy (1 = lowest = most "
                               "effective attack)"),
                              ("table46_rank_perturbation", "perturbation", "mean perturbation of the best "
                               "configuration (1 = smallest)")):
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
    """Female vs male for the best configuration of each attack (paper Tables 47–48), with tests."""
    rows = []
    for _, r in best.iterrows():
        S = pooled.get(r.config_id)
        row = {"attack": r.attack, "setting": r.setting, "config": r.config, "n_runs": r.n_runs,
               "adv_acc_female": r.adv_acc_female, "adv_acc_male": r.adv_acc_male,
               "perturbation_female": r.perturbation_female, "perturbation_male": r.perturbation_male}
        if S is not None:
            f, m = S.subset("female").adv_ok, S.subset("male").adv_ok
            row["gap"], row["gap_lo"], row["gap_hi"] = stats.gap_ci(f, m)
            row["p"] = stats.permutation_test(f, m)
            row["n_female"], row["n_male"] = len(f), len(m)
        else:
            row.update(gap=r.adv_acc_female - r.adv_acc_male, gap_lo=np.nan, gap_hi=np.nan, p=np.nan)
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
        "p": data.p.map(fp), "p (Holm)": data.p_holm.map(fp),
        "significant (α=0.05, Holm)": ["yes" if p < stats.ALPHA else ("no" if p == p else MISSING)
                                        for p in data.p_holm]})
    t47 = Table("table47_gender_accuracy", "Female vs male adversarial accuracy of the best configuration "
                "(paper Tables 47–48, with tests)", data, disp,
                "Gap CI: bootstrap resampling females and males independently; p: two-sided two-sample "
                "permutation test (gender labels shuffled, 5000 permutations); Holm correction over all rows "
                "of this table.")
    prow = []
    for a in attacks:
        r = {"attack": a}
        for s in settings:
            hit = data[(data.attack == a) & (data.setting == s)]
            r[f"{s}: female"] = fnum(hit.perturbation_female.iloc[0]) if len(hit) else MISSING
            r[f"{s}: male"] = fnum(hit.perturbation_male.iloc[0]) if len(hit) else MISSING
        prow.append(r)
    # per-gender rank sums (the paper ranks attacks separately for female and male speakers)
    for g in ("female", "male"):
        piv = best.pivot_table(index="attack", columns="setting", values=f"adv_acc_{g}", aggfunc="first")
        ranks = piv.reindex(index=attacks, columns=settings).rank(axis=0, method="min")
        sums = ranks.sum(axis=1, min_count=1)
        for r in prow:
            v = sums.get(r["attack"], np.nan)
            r[f"rank sum {g} (accuracy)"] = MISSING if v != v else f"{v:.0f}"
    t48 = Table("table48_gender_perturbation", "Female vs male perturbation of the best configuration, and "
                "per-gender rank sums by adversarial accuracy", data, pd.DataFrame(prow))
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
            Sa, Sb = pooled.get(a.config_id), pooled.get(b.config_id)
            if Sa is not None and Sb is not None:
                ok = "clean_ok" if kind == "clean_acc" else "adv_ok"
                _, row[f"{kind}_diff_lo"], row[f"{kind}_diff_hi"] = stats.gap_ci(getattr(Sa, ok), getattr(Sb, ok))
                row[f"{kind}_p"] = stats.permutation_test(getattr(Sa, ok), getattr(Sb, ok))
            else:
                row[f"{kind}_diff_lo"] = row[f"{kind}_diff_hi"] = row[f"{kind}_p"] = np.nan
        rows.append(row)
    if not rows:
        return None
    data = pd.DataFrame(rows)
    data["attack_order"] = [attack_sort_key(a) for a in data.attack]
    data = data.sort_values(["dataset", "attack_order", "config"]).drop(columns="attack_order").reset_index(drop=True)
    disp = pd.DataFrame({
        "dataset": data.dataset, "attack": data.attack, "config": data.config,
        "seeds paper / recording": [f"{x} / {y}" for x, y in zip(data.runs_paper, data.runs_recording)],
        **{f"{lbl} paper": data[f"{k}_paper"].map(f3) for k, lbl in (("clean_acc", "clean"), ("adv_acc", "adv"))},
        **{f"{lbl} recording": data[f"{k}_recording"].map(f3) for k, lbl in (("clean_acc", "clean"),
                                                                              ("adv_acc", "adv"))},
        "Δ clean (paper − recording) [CI]": [fci(*v) for v in zip(data.clean_acc_diff, data.clean_acc_diff_lo,
                                                                  data.clean_acc_diff_hi)],
        "p clean": data.clean_acc_p.map(fp),
        "Δ adv [CI]": [fci(*v) for v in zip(data.adv_acc_diff, data.adv_acc_diff_lo, data.adv_acc_diff_hi)],
        "p adv": data.adv_acc_p.map(fp)})
    disp = disp[["dataset", "attack", "config", "seeds paper / recording", "clean paper", "clean recording",
                 "Δ clean (paper − recording) [CI]", "p clean", "adv paper", "adv recording", "Δ adv [CI]", "p adv"]]
    return Table("protocol_gap", "Protocol gap: split=paper (segment-level, leaky) vs split=recording", data, disp,
                 "Same configuration (all other keys equal, seeds aggregated) under both split modes. The test sets "
                 "differ, so the test is a two-sample permutation test on per-segment correctness.")


def language_tests(best: pd.DataFrame, pooled: dict) -> pd.DataFrame:
    """Pairwise differences between settings (datasets/languages) of the best config's adversarial
    accuracy, per attack: two-sample permutation tests."""
    rows = []
    for a, sub in best.groupby("attack"):
        sub = sub.reset_index(drop=True)
        for i in range(len(sub)):
            for j in range(i + 1, len(sub)):
                x, y = sub.iloc[i], sub.iloc[j]
                # datasets (languages) compared under the same protocol only
                if x.dataset == y.dataset or x.setting[len(x.dataset):] != y.setting[len(y.dataset):]:
                    continue
                Sx, Sy = pooled.get(x.config_id), pooled.get(y.config_id)
                if Sx is None or Sy is None:
                    continue
                g, lo, hi = stats.gap_ci(Sx.adv_ok, Sy.adv_ok)
                rows.append({"attack": a, "a": x.setting, "b": y.setting, "diff": g, "lo": lo, "hi": hi,
                             "p": stats.permutation_test(Sx.adv_ok, Sy.adv_ok)})
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
