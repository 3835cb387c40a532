"""Tables that compare groups of speakers, with intervals and permutation tests over speakers: female vs
male (clean accuracy, paper Table 3; the best configurations, Tables 47–48), split=paper vs split=recording
(the protocol gap) and dataset vs dataset (language tests)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import plan as planmod
from . import stats
from .aggregate import (
    SFX,
    add_test_columns,
    interval_columns,
    pool_folds,
    protocol_of,
    speaker_test,
    speakers_known,
    subset,
)
from .collect import GROUPS, Runs, Samples, model_labels, pool
from .format import CI_NOTE, MISSING, TEST_NOTE, Table, attack_sort_key, cell, f3, fci, fnum, fp


def _clean_repetitions(sub: pd.DataFrame, pooled_by_run: dict[str, Samples]) -> pd.DataFrame:
    """One row per trained-model repetition (training and split seeds) of a setting, its folds pooled: the
    clean accuracy per gender group on the segments its runs attacked (each segment once), and the training
    runs' test accuracy. Without per-sample artifacts, a repetition's value is its runs' ``clean_acc``."""
    reps = []
    for _, rs in sub.groupby([p.get("seed", "") + "|" + p.get("split.seed", "") for p in sub.params], sort=False):
        have = [pooled_by_run[r] for r in rs.run_id if r in pooled_by_run]
        if have:
            t = pool(have)
            v = {"n": len(t), **{f"clean_acc{SFX[g]}": subset(t, g).clean_ok.mean() if len(subset(t, g))
                                 else np.nan for g in GROUPS}}
        else:
            per_fold = rs.drop_duplicates("fold")
            v = {"n": per_fold.n_samples.sum() if "n_samples" in per_fold else np.nan,
                 **{f"clean_acc{SFX[g]}": pool_folds(per_fold, f"clean_acc{SFX[g]}") for g in GROUPS}}
        v["model_test_acc"] = pool_folds(rs.drop_duplicates("fold"), "model_test_acc")
        reps.append(v)
    return pd.DataFrame(reps)


def gender_alternative(plan, measure: str, setting: str) -> str:
    """The female − male alternative an analysis plan pre-registered for ``measure`` under ``setting``'s
    protocol ("two-sided" without a plan or where it lists none: everything exploratory stays two-sided)."""
    return planmod.alternative(plan, "gender", measure, protocol_of(setting))


def _gender_test(f: pd.DataFrame, m: pd.DataFrame, col: str, alternative: str) -> stats.Test:
    """The female − male test over speakers, one-sided where planned (labelled so beside its p)."""
    return stats.planned_side(speaker_test(f, m, col, alternative=alternative), alternative)


def _clean_row(s: str, sub: pd.DataFrame, pooled_by_run: dict[str, Samples], plan=None) -> dict:
    """The numbers of one setting's row of the clean-accuracy table."""
    model_id = sub.model_run_id.where(sub.model_run_id != "", sub.model_key)
    M = _clean_repetitions(sub, pooled_by_run)
    row = {"setting": s, "language": sub.language.iloc[0], "n_models": model_id.nunique(),
           "n_sample_sets": len(M), "n_samples": float(M.n.mean())}
    row["model_test_acc"], row["model_test_acc_std"], _ = stats.mean_std(M.model_test_acc)
    for g in GROUPS:
        c = f"clean_acc{SFX[g]}"
        row[c], row[f"{c}_std"], _ = stats.mean_std(M[c])
    ran = sub[sub.run_id.isin(list(pooled_by_run))]
    have = [pooled_by_run[r] for r in ran.run_id]
    T = pool(have, model_labels(ran)) if have else None
    row["alternative"] = gender_alternative(plan, "clean_acc", s)
    if T is not None:
        interval_columns(row, T, (("clean_acc", "clean_ok"),))
        f, m = subset(T, "female"), subset(T, "male")
        # the two genders of a fold are attacked through the same models: their seeds drawn once per fold
        row["gap"], row["gap_lo"], row["gap_hi"] = stats.hier_gap_ci(f, m, "clean_ok", shared_seeds=True)
        add_test_columns(row, _gender_test(f, m, "clean_ok", row["alternative"]))
    else:
        for g in GROUPS:
            row[f"clean_acc{SFX[g]}_lo"] = row[f"clean_acc{SFX[g]}_hi"] = row[f"n_speakers{SFX[g]}"] = np.nan
        row.update(gap=np.nan, gap_lo=np.nan, gap_hi=np.nan, p=np.nan, min_p=np.nan, test=MISSING)
    return row


def clean_table(runs: Runs, pooled_by_run: dict[str, Samples], plan=None) -> Table:
    """Paper Table 3: clean accuracy per dataset (setting) and gender.

    Per repetition (one trained model per fold): the clean accuracy on the segments its runs attacked (each
    segment once; folds pooled). Then mean ± std over repetitions; intervals and the female − male test from
    all of the setting's segments (repeated runs averaged per segment). Without per-sample artifacts, a
    repetition's value is its runs' ``clean_acc`` metric.
    """
    df = runs.df
    rows, disp = [], []
    for s in sorted(df.setting.unique()):
        row = _clean_row(s, df[df.setting == s], pooled_by_run, plan)
        rows.append(row)
        n = row["n_sample_sets"]
        spk = "/".join(MISSING if row[f"n_speakers{SFX[g]}"] != row[f"n_speakers{SFX[g]}"]
                       else f"{row[f'n_speakers{SFX[g]}']:.0f}" for g in ("female", "male"))
        disp.append({"setting": s, "language": row["language"],
                     "full test split (training)": fci(row["model_test_acc"], std=row["model_test_acc_std"], n=n),
                     "attacked segments": f"{row['n_samples']:.0f}" + (f" × {n} models (seeds)" if n > 1 else ""),
                     "speakers F/M": spk,
                     **{g: cell({**row, "n_runs": n, "n_reps": n}, "clean_acc", g) for g in GROUPS},
                     "female − male [95% CI]": fci(row["gap"], row["gap_lo"], row["gap_hi"]),
                     "p (speakers)": row["test"]})
    return Table("table03_clean_accuracy", "Clean accuracy per dataset and gender (paper Table 3)",
                 pd.DataFrame(rows), pd.DataFrame(disp),
                 "Clean accuracy on the attacked test segments (each segment once; folds of a cross-validation "
                 "pooled); *full test split* is the training runs' `test_acc` (all test segments, folds pooled). "
                 "With several seeds: mean ± std over seeds. " + CI_NOTE + " " + TEST_NOTE)


def _gender_gaps(best: pd.DataFrame, pooled: dict, plan=None) -> pd.DataFrame:
    """Per best configuration: female and male numbers, the gap's interval and its test over speakers
    (Holm-corrected over the rows), in attack order."""
    rows = []
    for _, r in best.iterrows():
        T = pooled.get(r.config_id)
        row = {"attack": r.attack, "setting": r.setting, "config": r.config, "n_runs": r.n_runs,
               "adv_acc_female": r.adv_acc_female, "adv_acc_male": r.adv_acc_male,
               "perturbation_female": r.perturbation_female, "perturbation_male": r.perturbation_male,
               "perturbation_db_female": r.get("perturbation_db_female", np.nan),
               "perturbation_db_male": r.get("perturbation_db_male", np.nan)}
        row["alternative"] = gender_alternative(plan, "adv_acc", r.setting)
        row["success_alternative"] = gender_alternative(plan, "success_rate", r.setting)
        if T is not None:
            f, m = subset(T, "female"), subset(T, "male")
            row["gap"], row["gap_lo"], row["gap_hi"] = stats.hier_gap_ci(f, m, "adv_ok", shared_seeds=True)
            add_test_columns(row, _gender_test(f, m, "adv_ok", row["alternative"]))
            row["n_female"], row["n_male"] = len(f), len(m)
            row["n_speakers_female"], row["n_speakers_male"] = f.speaker.nunique(), m.speaker.nunique()
            # success rate on the segments of each gender the model got right: a clean-accuracy gap between
            # genders carries into adversarial accuracy, not into this
            cf, cm = _on_correct(f), _on_correct(m)
            row.update(success_female=cf.flipped.mean() if len(cf) else np.nan,
                       success_male=cm.flipped.mean() if len(cm) else np.nan)
            _pair_test(cf, cm, "flipped", row, "success_", "gender", row["success_alternative"])
        else:
            row.update(gap=r.adv_acc_female - r.adv_acc_male, gap_lo=np.nan, gap_hi=np.nan, p=np.nan, min_p=np.nan,
                       test=MISSING, success_female=np.nan, success_male=np.nan, success_diff=np.nan,
                       success_lo=np.nan, success_hi=np.nan, success_p=np.nan, success_min_p=np.nan,
                       success_test=MISSING)
        rows.append(row)
    data = pd.DataFrame(rows)
    if data.empty:
        return data
    data["protocol"] = data.setting.map(protocol_of)
    data["p_holm"] = stats.holm_families(data, "p")              # one family per protocol and measure
    data["success_p_holm"] = stats.holm_families(data, "success_p")
    data["attack_order"] = [attack_sort_key(a) for a in data.attack]
    return data.sort_values(["attack_order", "setting"]).drop(columns="attack_order").reset_index(drop=True)


def _gender_perturbation_display(data: pd.DataFrame, best: pd.DataFrame, attacks, settings) -> pd.DataFrame:
    """Attack rows x (setting: gender) perturbation cells, plus per-gender rank sums by adversarial accuracy."""
    prow = []
    for a in attacks:
        r = {"attack": a}
        for s in settings:
            hit = data[(data.attack == a) & (data.setting == s)]
            for g in ("female", "male"):
                r[f"{s}: {g}"] = (f"{fnum(hit[f'perturbation_{g}'].iloc[0])} "
                                  f"({fnum(hit[f'perturbation_db_{g}'].iloc[0])} dB)" if len(hit) else MISSING)
        prow.append(r)
    # per-gender rank sums (the paper ranks attacks separately for female and male speakers)
    for g in ("female", "male"):
        piv = best.pivot_table(index="attack", columns="setting", values=f"adv_acc_{g}", aggfunc="first")
        ranks = piv.reindex(index=attacks, columns=settings).rank(axis=0, method="min")
        sums = ranks.sum(axis=1, min_count=1)
        for r in prow:
            v = sums.get(r["attack"], np.nan)
            r[f"rank sum {g} (accuracy)"] = MISSING if v != v else f"{v:.0f}"
    return pd.DataFrame(prow)


def gender_tables(best: pd.DataFrame, pooled: dict, attacks, settings, plan=None) -> list[Table]:
    """Female vs male for the best configuration of each attack (paper Tables 47–48), tested over speakers
    (one-sided where ``plan`` pre-registered it)."""
    data = _gender_gaps(best, pooled, plan)
    if data.empty:
        return []
    disp = pd.DataFrame({
        "attack": data.attack, "setting": data.setting, "config": data.config,
        "adv acc female": data.adv_acc_female.map(f3), "adv acc male": data.adv_acc_male.map(f3),
        "female − male [95% CI]": [fci(g, lo, hi) for g, lo, hi in zip(data.gap, data.gap_lo, data.gap_hi)],
        "p (speakers)": data.test, "p (Holm)": data.p_holm.map(fp),
        "significant (α=0.05, Holm)": ["yes" if p < stats.ALPHA else ("no" if p == p else "not testable")
                                        for p in data.p_holm],
        "success female / male": [f"{f3(a)} / {f3(b)}" for a, b in zip(data.success_female, data.success_male)],
        "success female − male [95% CI]": [fci(g, lo, hi) for g, lo, hi in
                                           zip(data.success_diff, data.success_lo, data.success_hi)],
        "p success (Holm)": data.success_p_holm.map(fp)})
    t47 = Table("table47_gender_accuracy", "Female vs male adversarial accuracy of the best configuration "
                "(paper Tables 47–48, with tests over speakers)", data, disp,
                "Gap CI: cluster bootstrap over speakers of females and males independently. "
                + TEST_NOTE + " Holm within each protocol (one family per measure; noise and AutoAttack, the "
                "checklist's references, outside it). *Success*: the share of the "
                "segments the model classified correctly that the attack made wrong, per gender (a gender gap in "
                "clean accuracy carries into adversarial accuracy, not into the success rate); its gap has its own "
                "CI, test and Holm correction.")
    t48 = Table("table48_gender_perturbation", "Female vs male perturbation of the best configuration (model units, "
                "dB in parentheses), and per-gender rank sums by adversarial accuracy", data,
                _gender_perturbation_display(data, best, attacks, settings))
    return [t47, t48]


def protocol_gap(cf: pd.DataFrame, pooled: dict) -> Table | None:
    """Where a configuration ran with both split=paper and a leakage-free split: the difference. The leakage-free
    side is split=speaker_cv (its folds pooled) where present, else split=recording; the ``*_recording`` columns
    hold it and ``leakage_free`` names it."""
    free = "speaker_cv" if "speaker_cv" in set(cf.split) else "recording"
    if not {"paper", free} <= set(cf.split):
        return None

    rows = []
    for _, sub in cf.groupby("protocol_key", sort=False):
        pa, re = sub[sub.split == "paper"], sub[sub.split == free]
        if not len(pa) or not len(re):
            continue
        a, b = pa.iloc[0], re.iloc[0]
        Ta, Tb = pooled.get(a.config_id), pooled.get(b.config_id)
        row = {"dataset": a.dataset, "attack": a.attack, "config": a.config, "runs_paper": a.n_runs,
               "runs_recording": b.n_runs, "leakage_free": free,
               "segments_paper": len(Ta) if Ta is not None else np.nan,
               "segments_recording": len(Tb) if Tb is not None else np.nan}
        for kind in ("clean_acc", "adv_acc"):
            row[f"{kind}_paper"], row[f"{kind}_recording"] = a[kind], b[kind]
            row[f"{kind}_diff"] = a[kind] - b[kind]
            if Ta is not None and Tb is not None:
                ok = "clean_ok" if kind == "clean_acc" else "adv_ok"
                _, row[f"{kind}_diff_lo"], row[f"{kind}_diff_hi"] = stats.hier_gap_ci(Ta, Tb, ok)
                test = (stats.paired_speaker_test(Ta, Tb, ok) if speakers_known(Ta) and speakers_known(Tb) else
                        stats.Test(np.nan, np.nan, 0, 0, "not testable (runs without speaker ids)"))
                add_test_columns(row, test, f"{kind}_")
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
        f"runs paper / {free}": [f"{x} / {y}" for x, y in zip(data.runs_paper, data.runs_recording)],
        **{f"{lbl} paper": data[f"{k}_paper"].map(f3) for k, lbl in (("clean_acc", "clean"), ("adv_acc", "adv"))},
        **{f"{lbl} {free}": data[f"{k}_recording"].map(f3) for k, lbl in (("clean_acc", "clean"),
                                                                           ("adv_acc", "adv"))},
        f"Δ clean (paper − {free}) [CI]": [fci(*v) for v in zip(data.clean_acc_diff, data.clean_acc_diff_lo,
                                                                data.clean_acc_diff_hi)],
        "p clean": data.clean_acc_test,
        "Δ adv [CI]": [fci(*v) for v in zip(data.adv_acc_diff, data.adv_acc_diff_lo, data.adv_acc_diff_hi)],
        "p adv": data.adv_acc_test})
    disp = disp[["dataset", "attack", "config", f"runs paper / {free}", "clean paper", f"clean {free}",
                 f"Δ clean (paper − {free}) [CI]", "p clean", "adv paper", f"adv {free}", "Δ adv [CI]", "p adv"]]
    return Table("protocol_gap", f"Protocol gap: split=paper (segment-level, leaky) vs split={free}", data, disp,
                 "Same configuration (all other keys equal, seeds aggregated) under both split modes. The test sets "
                 "differ but hold the same speakers: CI from independent speaker bootstraps of the two test sets; "
                 "p: sign-flip permutation test on |mean per-speaker difference| (speakers in both); Holm within clean "
                 "accuracy and within adversarial accuracy (the Significance section).")


def _pair_test(Tx: pd.DataFrame, Ty: pd.DataFrame, col: str, row: dict, prefix: str, what: str = "dataset",
               alternative: str = "two-sided") -> None:
    """Difference of ``col`` between two groups of speakers (corpora, genders): CI by speaker (and seed)
    bootstrap, a fold's seeds shared by both genders, p by permuting speakers."""
    row[f"{prefix}diff"], row[f"{prefix}lo"], row[f"{prefix}hi"] = stats.hier_gap_ci(Tx, Ty, col,
                                                                                     shared_seeds=what == "gender")
    test = _gender_test(Tx, Ty, col, alternative) if what == "gender" else speaker_test(Tx, Ty, col, what)
    add_test_columns(row, test, prefix)


def _on_correct(t: pd.DataFrame) -> pd.DataFrame:
    """The segments the model got right before the attack (under at least half of its seeds), with ``flipped``
    = the share of those seeds' runs the attack changed; per seed (``flipped@j``) NaN where that seed's model got
    it wrong."""
    t = t[t.clean_ok >= 0.5]
    return stats.with_seeds(t, "flipped", lambda k, c: 1.0 - k / c.where(c > 0), "kept", "clean_ok")


def language_tests(best: pd.DataFrame, pooled: dict) -> pd.DataFrame:
    """Pairwise differences between settings (datasets/languages) under the same protocol, per attack's best
    configuration: adversarial accuracy (``diff``, ``lo``, ``hi``, ``p``, ``p_holm``), and the success rate on
    the segments each model classified correctly (``success_*``: how easily the attack moves what the model
    gets right, which does not fall with clean accuracy as adversarial accuracy does); each with a CI that
    resamples speakers then recordings and a permutation test over speakers (each dataset's speakers are its
    own). One row per attack and pair, plus a ``clean`` row per pair (clean accuracy, on the segments of the
    pair's first attack: every attack of a fold sees the same segments). Holm within each family (clean;
    adversarial accuracy; success rate) and protocol."""
    rows = []
    for a, sub in best.groupby("attack"):
        sub = sub.reset_index(drop=True)
        for i in range(len(sub)):
            for j in range(i + 1, len(sub)):
                x, y = sub.iloc[i], sub.iloc[j]
                # datasets (languages) compared under the same protocol only
                protocol = x.setting[len(x.dataset):]                 # "emodb (split=paper)" -> " (split=paper)"
                if x.dataset == y.dataset or protocol != y.setting[len(y.dataset):]:
                    continue
                Tx, Ty = pooled.get(x.config_id), pooled.get(y.config_id)
                if Tx is None or Ty is None:
                    continue
                row = {"attack": a, "a": x.setting, "b": y.setting, "protocol": protocol, "adv_acc_a": Tx.adv_ok.mean(),
                       "adv_acc_b": Ty.adv_ok.mean(), "clean_acc_a": Tx.clean_ok.mean(),
                       "clean_acc_b": Ty.clean_ok.mean()}
                _pair_test(Tx, Ty, "adv_ok", row, "")
                Cx, Cy = _on_correct(Tx), _on_correct(Ty)
                row.update(n_correct_a=len(Cx), n_correct_b=len(Cy),
                           success_a=Cx.flipped.mean() if len(Cx) else np.nan,
                           success_b=Cy.flipped.mean() if len(Cy) else np.nan)
                _pair_test(Cx, Cy, "flipped", row, "success_")
                rows.append(row)
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    df["p_holm"] = stats.holm_families(df, "p")
    df["success_p_holm"] = stats.holm_families(df, "success_p")
    clean = []
    for (a_, b_), pair in df.groupby(["a", "b"], sort=False):
        r = pair.iloc[0]
        x = best[(best.attack == r.attack) & (best.setting == a_)].iloc[0]
        y = best[(best.attack == r.attack) & (best.setting == b_)].iloc[0]
        row = {"attack": "clean", "a": a_, "b": b_, "protocol": r.protocol, "clean_acc_a": r.clean_acc_a,
               "clean_acc_b": r.clean_acc_b}
        _pair_test(pooled[x.config_id], pooled[y.config_id], "clean_ok", row, "clean_")
        clean.append(row)
    clean = pd.DataFrame(clean)
    clean["clean_p_holm"] = stats.holm_families(clean, "clean_p")
    return pd.concat([clean, df], ignore_index=True).drop(columns="protocol")


def language_table(lt: pd.DataFrame) -> Table | None:
    """"Between languages": ``language_tests`` as a table, clean accuracy first, then each attack."""
    if lt.empty:
        return None
    lt = lt.assign(order=[-1 if a == "clean" else attack_sort_key(a)[0] for a in lt.attack])
    lt = lt.sort_values(["a", "b", "order"], kind="stable").drop(columns="order").reset_index(drop=True)
    disp = []
    for r in lt.itertuples():
        pair = f"{r.a} − {r.b}"
        if r.attack == "clean":
            disp.append({"corpora (a − b)": pair, "attack": "clean (no attack)",
                         "accuracy a / b": f"{f3(r.clean_acc_a)} / {f3(r.clean_acc_b)}",
                         "a − b [95% CI]": fci(r.clean_diff, r.clean_lo, r.clean_hi),
                         "p (speakers)": r.clean_test, "p (Holm)": fp(r.clean_p_holm),
                         "success rate a / b": "", "success a − b [95% CI]": "", "p success (speakers)": "",
                         "p success (Holm)": ""})
            continue
        disp.append({"corpora (a − b)": pair, "attack": r.attack,
                     "accuracy a / b": f"{f3(r.adv_acc_a)} / {f3(r.adv_acc_b)}",
                     "a − b [95% CI]": fci(r.diff, r.lo, r.hi), "p (speakers)": r.test, "p (Holm)": fp(r.p_holm),
                     "success rate a / b": f"{f3(r.success_a)} / {f3(r.success_b)} (of {r.n_correct_a:.0f} / "
                                           f"{r.n_correct_b:.0f})",
                     "success a − b [95% CI]": fci(r.success_diff, r.success_lo, r.success_hi),
                     "p success (speakers)": r.success_test, "p success (Holm)": fp(r.success_p_holm)})
    return Table("language_gaps", "Between languages: clean accuracy, and per attack the adversarial accuracy and "
                 "the success rate on correctly classified segments of its best configuration, corpus a − corpus b "
                 "(same protocol)", lt, pd.DataFrame(disp),
                 "Success rate = share of the segments classified correctly before the attack that the attack "
                 "misclassifies (of n such segments per corpus): unlike adversarial accuracy it does not fall "
                 "with clean accuracy, so it compares how easily the attacks move two models that differ in "
                 "clean accuracy. " + CI_NOTE + " p: two-sided permutation test over speakers (the corpus labels "
                 "of the speakers permuted), with the speakers per corpus and the smallest p that design can "
                 "give. Holm within clean accuracy, adversarial accuracy and success rate separately, and within "
                 "each protocol (references left out). **Descriptive:** the corpora differ in speakers, model, "
                 "emotion set and recording conditions at once, so a *language* difference is not identifiable "
                 "from one corpus per language; a p here concerns these two corpora as run.")
