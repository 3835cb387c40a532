"""The report's tables, each as numbers (CSV, tests) and as display text (Markdown/HTML).

:func:`build_tables` is the whole step: runs → configurations (``aggregate``) → the best configuration per
attack and setting → the paper's tables (here: best configuration, accuracy, perturbation, time, ranks and
every swept value; ``gaps``: the female/male, protocol and language comparisons), formatted by ``format``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregate import SFX, TIME, best_configs, configs, interval_columns, speaker_test
from .collect import GROUPS, Runs, Samples, fmt_value
from .format import (
    ATTACK_ORDER,
    CI_NOTE,
    FEW,
    MISSING,
    TEST_NOTE,
    Table,
    attack_sort_key,
    cell,
    f3,
    fci,
    fnum,
    fp,
    pert,
)
from .gaps import clean_table, gender_tables, language_table, language_tests, protocol_gap
from .paper import PAPER_ATTACKS, paper_wide
from .summary import repetitions

# The tables, plus the names other code imported from this module before it was split (they live in aggregate,
# format and gaps; new code imports them from there).
__all__ = ["Tables", "build_tables", "best_tables", "param_tables", "rank_tables", "paper_table",
           "ATTACK_ORDER", "CI_NOTE", "FEW", "MISSING", "SFX", "TEST_NOTE", "TIME", "Table", "attack_sort_key",
           "best_configs", "clean_table", "configs", "f3", "fci", "fnum", "fp", "gender_tables", "interval_columns",
           "language_tests", "protocol_gap", "speaker_test"]


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


def best_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    t4 = _pivot(best, attacks, settings,
                lambda r, _: r.config + repetitions(r))       # " (3 seeds × 2 folds)", as the headline table
    cols = [c for c in best.columns if c not in ("params",)]
    data = best[cols]
    t5 = _pivot(best, attacks, settings, lambda r, g: cell(r, "adv_acc", g), GROUPS)
    t5r = _pivot(best, attacks, settings, lambda r, g: cell(r, "robust_acc", g), GROUPS)
    t6 = _pivot(best, attacks, settings, lambda r, g: pert(r, g), GROUPS)
    def db_cell(r, g):
        db = r.get(f"perturbation_db{SFX[g]}", np.nan)
        return f"{fnum(db)} dB / {fnum(r[f'snr_db{SFX[g]}'])} dB" if db == db else MISSING

    t6db = _pivot(best, attacks, settings, db_cell, GROUPS)
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
        Table("table05r_best_robust_accuracy", "Robust accuracy of the best configuration: right before AND after "
              "the attack, all / female / male", data, t5r, "The paper's adversarial accuracy (Table 5) also counts "
              "segments the model got wrong that the attack moved into their true class; attacks that follow the "
              "model's own prediction (ART's DeepFool and Boundary) move many, so their Table 5 value can exceed "
              "this one by much. Robust accuracy never exceeds clean accuracy. " + CI_NOTE),
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
    """Paper Tables 23–43: accuracy, perturbation and time for every swept value, per attack: one row per
    configuration that ran on a setting (configurations another setting ran only are not rows of dashes)."""
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
                                 "clean acc": cell(r, "clean_acc"),
                                 **{f"adv acc {g}": cell(r, "adv_acc", g) for g in GROUPS},
                                 "robust acc": cell(r, "robust_acc"),
                                 "success rate": f3(r.success_rate),
                                 **{f"pert. {g}": fnum(r[f"perturbation{SFX[g]}"]) for g in GROUPS},
                                 "pert. dB": fnum(r.perturbation_db), "SNR dB": fnum(r.snr_db),
                                 "L2": fnum(r.l2), "L∞": fnum(r.linf),
                                 "time s": f"{r.attack_time_s:.3g}", "s/sample": f"{r.time_per_sample_s:.3g}"})
                # a configuration never run on this setting is no row (it was a row of dashes)
        out.append(Table(f"param_{a}", f"{a}: every swept value (paper Tables 23–43)", pd.DataFrame(rows),
                         pd.DataFrame(disp), "pert.: mean |δ| in model input units; pert. dB: the same in dB of "
                         "log-Mel; SNR dB: per-segment SNR of the perturbation, mean over changed segments. "
                         + CI_NOTE))
    return out


def rank_tables(best: pd.DataFrame, attacks, settings) -> list[Table]:
    """Paper Tables 45–46: per setting, rank attacks by best adversarial accuracy (1 = lowest accuracy,
    the most effective) and by its perturbation in dB (1 = smallest; model units when dB are missing)."""
    out = []
    pert_col = "perturbation_db" if "perturbation_db" in best and best.perturbation_db.notna().all() else "perturbation"
    for key, metric, what in (("table45_rank_accuracy", "adv_acc", "adversarial accuracy (1 = lowest = most "
                               "effective attack)"),
                              ("table46_rank_perturbation", pert_col, "mean perturbation of the best configuration"
                               + (" in dB" if pert_col == "perturbation_db" else "") + " (1 = smallest)")):
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


PAPER_NOTE = "\n".join([
    "Each cell is *ours / paper*. The paper's numbers: `ser_attacks/report/paper_values.csv`; their sources and the "
    "paper's contradictions (e.g. its female and male cells of C&W and BoundaryAttack on EmoDB look swapped): "
    f"`ser_attacks/report/paper_values.md`. {MISSING}: no value (not run here, or not in the paper).",
    "",
    "- **Expect differences.** The paper's protocol leaks (segments split after augmentation, scaler fit on all "
    "data, softmax fed to the attacks as logits) and its model is another instance; our `split=paper` setting is "
    "the closest to it.",
    "- **Perturbation: not comparable.** Ours is in `original_std` units (every band scaled by its σ, on every "
    "corpus); the paper used its own per-corpus normalization (e.g. a global max normalization on EmoDB) and gives "
    "no σ, dB or SNR that would convert it. The two columns are shown side by side, never as a ratio; for a "
    "physical unit see our dB / SNR columns (Table 6 in dB).",
    "- **Time**: the paper gives total seconds to attack its whole test set (837 / 987 / 1791 segments for EmoDB / "
    "EMOVO / RAVDESS, its Table 22) with its own ART code on an i9-9820X CPU and a TITAN V GPU; shown here divided "
    "by those counts.",
    "- **C&W**: the paper's single \"C&W\" row (Tables 5, 6, 44) is its L∞ variant; C&W-L2 comes from its "
    "Tables 36–38.",
    "- **Configuration**: ours is the best as in Table 4 above; the paper's is read from its per-value Tables 23–43 "
    "(Table 4's cells are empty in the text). Clean row: accuracy on the attacked segments before the attack."])
PAIR = "\u00a0/\u00a0"       # ours / paper in one cell; no-break spaces keep the pair on one line


def _our_config(r, paper_config: str) -> str:
    """Our configuration in the paper's terms: the value of each parameter the paper's configuration names
    (``eps=1.25`` → our ``attack.eps``), then our other swept parameters; else our ``config``."""
    keys = [kv.split("=", 1)[0].strip() for kv in paper_config.split(",") if "=" in kv]
    params = r.params if isinstance(r.params, dict) else {}
    named = [f"{k}={fmt_value(params[f'attack.{k}'])}" for k in keys if f"attack.{k}" in params]
    swept = [kv for kv in r.config.split(", ") if "=" in kv and kv.split("=", 1)[0] not in keys]
    return ", ".join(named + swept) or r.config


def paper_table(best: pd.DataFrame, clean: pd.DataFrame, dataset_of: dict, attacks, settings) -> Table:
    """"Beside the paper": per setting, the clean row and every attack (ours or the paper's), ours vs the paper's
    accuracy (all / female / male), mean perturbation, time per segment and best configuration."""
    paper = paper_wide().set_index(["dataset", "attack"])
    rows, disp = [], []
    for s in settings:
        d = dataset_of.get(s, s)
        here = set(best[best.setting == s].attack) & set(attacks)
        if d in set(paper.index.get_level_values(0)):
            here |= set(PAPER_ATTACKS)
        for a in ["clean", *sorted(here, key=attack_sort_key)]:
            p = paper.loc[(d, a)] if (d, a) in paper.index else pd.Series(dtype=object)
            row = {"setting": s, "dataset": d, "attack": a, "config_ours": "",
                   "config_paper": p.get("config", "") or ""}
            if a == "clean":
                c = clean[clean.setting == s]
                o = {f"acc{SFX[g]}": c[f"clean_acc{SFX[g]}"].iloc[0] if len(c) else np.nan for g in GROUPS}
            else:
                b = best[(best.attack == a) & (best.setting == s)]
                r = b.iloc[0] if len(b) else None
                o = {f"acc{SFX[g]}": r[f"adv_acc{SFX[g]}"] if r is not None else np.nan for g in GROUPS}
                o.update({f"perturbation{SFX[g]}": r[f"perturbation{SFX[g]}"] if r is not None else np.nan
                          for g in GROUPS})
                o["time_per_segment_s"] = r.time_per_sample_s if r is not None else np.nan
                row["config_ours"] = _our_config(r, row["config_paper"]) if r is not None else ""
            for k in ("acc", "acc_female", "acc_male", "perturbation", "perturbation_female", "perturbation_male",
                      "time_per_segment_s"):
                row[f"{k}_ours"], row[f"{k}_paper"] = o.get(k, np.nan), p.get(k, np.nan)
            row["time_s_paper"], row["paper_tables"] = p.get("time_s", np.nan), p.get("tables", "") or ""
            rows.append(row)
            def pair(k, fmt=f3):
                return f"{fmt(row[f'{k}_ours'])}{PAIR}{fmt(row[f'{k}_paper'])}"
            disp.append({"setting": s, "attack": a if a != "clean" else "clean (no attack)",
                         "config: ours": row["config_ours"] or MISSING, "config: paper": row["config_paper"] or MISSING,
                         **{f"acc {g}": pair(f"acc{SFX[g]}") for g in GROUPS},
                         "mean |δ| (not comparable)": pair("perturbation", fnum),
                         "s / segment": pair("time_per_segment_s", lambda v: MISSING if v != v else f"{v:.3g}")})
    return Table("paper_side_by_side", "Ours / paper: accuracy (all, female, male), mean perturbation, time per "
                 "segment and best configuration per attack", pd.DataFrame(rows), pd.DataFrame(disp), PAPER_NOTE)


def build_tables(runs: Runs, samples: dict[str, Samples], plan=None) -> Tables:
    """``plan``: an analysis plan (``report.plan.Plan``); a female − male comparison it pre-registers as
    one-sided is tested one-sided, everything else two-sided."""
    cf, pooled = configs(runs, samples)
    best = best_configs(cf)
    attacks = sorted(runs.df.attack.unique(), key=attack_sort_key)
    settings = sorted(runs.df.setting.unique())
    clean = clean_table(runs, samples, plan)
    items = [clean, *best_tables(best, attacks, settings),
             *rank_tables(best, attacks, settings), *gender_tables(best, pooled, attacks, settings, plan),
             paper_table(best, clean.data, dict(zip(runs.df.setting, runs.df.dataset)), attacks, settings)]
    gap = protocol_gap(cf, pooled)
    if gap is not None:
        items.append(gap)
    lt = language_tests(best, pooled)
    lang = language_table(lt)
    if lang is not None:
        items.append(lang)
    items += param_tables(cf, attacks, settings)
    return Tables(cf, best, items, lt, pooled)
