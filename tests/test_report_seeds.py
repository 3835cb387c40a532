"""Several training seeds per fold (issue 26 item 4, study v2) and pre-registered one-sided tests.

The bootstrap of the crossed design speakers x training seeds (``stats.boot_draws``: speakers drawn as clusters,
each fold's seeds drawn k of k and shared by its speakers): exactly the speaker-only numbers with one seed per fold;
covering a known truth where the speaker-only bootstrap of seed-averaged data does not; the pooled table keeps the
seeds without counting a segment twice. One-sided permutation tests with hand-computable p-values, and the report
labelling a planned one-sided p."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks.report import stats
from ser_attacks.report.collect import Samples, pool


def _samples(fold_of: dict, ok: dict, n_seg: int = 4) -> Samples:
    """One run: ``n_seg`` segments per speaker (speaker -> fold in ``fold_of``), adv prediction right where
    ``ok[speaker][k]``; clean always right; gender from the speaker name's first letter."""
    spk = np.repeat(list(fold_of), n_seg)
    n = len(spk)
    y = np.zeros(n, int)
    adv = np.array([0 if ok[s][k] else 1 for s in fold_of for k in range(n_seg)])
    return Samples(y, np.array(["female" if s[0] == "f" else "male" for s in spk]), y, adv, np.arange(n), spk,
                   np.array([f"{s}r{k % n_seg}" for s, k in zip(spk, range(n))]), np.zeros(n, int),
                   np.full(n, "none"), np.array([fold_of[s] for s in spk]))


FOLDS = {"fa": 0, "ma": 0, "fb": 1, "mb": 1, "fc": 2, "mc": 2}


def _runs(n_seeds: int, seed: int = 0) -> tuple[list[Samples], list[str]]:
    rng = np.random.default_rng(seed)
    items, models = [], []
    for j in range(n_seeds):
        for f in range(3):
            spk = {s: f_ for s, f_ in FOLDS.items() if f_ == f}
            items.append(_samples(spk, {s: rng.random(4) < 0.6 for s in spk}))
            models.append(f"fold{f}-seed{j}")
    return items, models


def _old_cluster_boot(speaker, num, n_boot, rng):
    """The speaker-only cluster bootstrap as it was before the seeds (reference for 'exactly today's numbers')."""
    s_num, s_den = stats._speaker_totals(speaker, num)
    pick = rng.integers(0, len(s_num), size=(n_boot, len(s_num)))
    return s_num[pick].sum(axis=1) / s_den[pick].sum(axis=1)


# ------------------------------------------------------------------------------------- one seed per fold
def test_one_seed_per_fold_gives_exactly_the_speaker_only_numbers():
    items, models = _runs(1)
    t, t_models = pool(items), pool(items, models)
    pd.testing.assert_frame_equal(t, t_models)
    assert not any("@" in c for c in t_models)
    ref = _old_cluster_boot(t.speaker, t.adv_ok, 500, np.random.default_rng(3))
    assert np.array_equal(stats.cluster_boot(t.speaker, t.adv_ok, None, 500, np.random.default_rng(3), t.fold),
                          ref)
    # a seed matrix whose every fold has one seed (fold 0 seed slot 0, the others slot 1) draws no seeds
    by = np.full((len(t), 2), np.nan)
    by[t.fold == 0, 0] = t.adv_ok[t.fold == 0]
    by[t.fold != 0, 1] = t.adv_ok[t.fold != 0]
    assert stats.hier_ci(t.speaker, None, t.adv_ok, fold=t.fold, num_by=by) == stats.hier_ci(t.speaker, None,
                                                                                             t.adv_ok)
    f, m = t[t.gender == "female"], t[t.gender == "male"]
    assert stats.hier_gap_ci(f, m, "adv_ok", shared_seeds=True) == stats.hier_gap_ci(f, m, "adv_ok")
    # min_norm.summaries: a model column with one model per fold changes nothing
    from ser_attacks.min_norm import summaries
    seg = pd.DataFrame({"speaker": t.speaker, "fold": t.fold, "label": 0, "clean_pred": 0,
                        "r": np.random.default_rng(0).exponential(1, len(t))})
    assert summaries(seg.assign(model=seg.fold.map(lambda f: f"m{f}")), "r", 3.0, n_boot=200) == \
        summaries(seg, "r", 3.0, n_boot=200)
    from ser_attacks.min_norm import curve
    pd.testing.assert_frame_equal(curve(seg.assign(model=seg.fold.map(lambda f: f"m{f}")), "r", [0, 0.5, 1]),
                                  curve(seg, "r", [0, 0.5, 1]))


def test_minimal_perturbation_summaries_and_curves_draw_the_seeds():
    """``min_norm.summaries`` and ``curve`` on per-run rows with ``fold`` and ``model``: three seeds per fold whose
    models differ a lot (minimal perturbations scaled 0.3x, 1x, 3x) widen the intervals; the point estimates are
    those of the rows as they are (each segment once per run)."""
    from ser_attacks.min_norm import curve, summaries
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"speaker": np.repeat([f"s{i}" for i in range(8)], 6), "label": 0, "clean_pred": 0})
    base["fold"] = base.speaker.str[1].astype(int) // 2
    r0 = rng.exponential(1, len(base))
    seg = pd.concat([base.assign(model=f"seed{j}", r=r0 * scale) for j, scale in enumerate((0.3, 1.0, 3.0))],
                    ignore_index=True)
    with_seeds, without = summaries(seg, "r", 5.0, n_boot=300), summaries(seg.drop(columns="model"), "r", 5.0,
                                                                          n_boot=300)
    assert with_seeds["median"] == without["median"] and with_seeds["auc"] == without["auc"]
    assert with_seeds["auc_hi"] - with_seeds["auc_lo"] > 1.5 * (without["auc_hi"] - without["auc_lo"])
    c, c0 = curve(seg, "r", [0.5, 1.0], n_boot=300), curve(seg.drop(columns="model"), "r", [0.5, 1.0], n_boot=300)
    assert np.allclose(c.acc, c0.acc) and ((c.acc_hi - c.acc_lo) > 1.5 * (c0.acc_hi - c0.acc_lo)).all()


def test_pool_keeps_each_seed_and_counts_a_segment_once():
    """Three seeds per fold: one row per segment, its value the mean over the models of each model's mean (a
    model attacked twice counts once), the per-seed values beside it; the point estimate is the seed average."""
    items, models = _runs(3)
    items.append(items[0])                          # fold 0, seed 0 rerun: still one model
    models.append(models[0])
    t = pool(items, models)
    assert len(t) == 24 and (t.n_models == 3).all() and {"adv_ok@0", "adv_ok@1", "adv_ok@2"} <= set(t)
    by = stats.seed_matrix(t, "adv_ok")
    assert np.allclose(by.mean(axis=1), t.adv_ok)
    assert t.loc[t.fold == 0, "n_runs"].eq(4).all() and t.loc[t.fold == 1, "n_runs"].eq(3).all()
    # the seed draws widen the interval of seed-varying data, never move its point estimate
    est, lo, hi = stats.table_ci(t, "adv_ok")
    est0, lo0, hi0 = stats.hier_ci(t.speaker, None, t.adv_ok)
    assert est == est0 and hi - lo > hi0 - lo0


def test_a_paired_difference_keeps_its_seeds():
    """``partner`` + ``paired_ci``: seed slot j of a fold is the same model on both sides; the difference per
    seed is what the seed draws resample (``with_seeds``)."""
    items, models = _runs(3, seed=1)
    ta = pool(items, models)
    tb = pool(_runs(3, seed=2)[0], models)
    m = ta.merge(stats.partner(tb, "adv_ok"), on="key")
    assert {"adv_ok_b", "adv_ok_b@0", "adv_ok_b@2"} <= set(m)
    d = stats.with_seeds(m, "d", lambda x, y: x - y, "adv_ok", "adv_ok_b")
    assert np.allclose(d["d@1"], m["adv_ok@1"] - m["adv_ok_b@1"])
    assert stats.paired_ci(m, "adv_ok")[0] == pytest.approx(float((m.adv_ok - m.adv_ok_b).mean()))


# ---------------------------------------------------------------------------------- a known truth
def _study(rng, sd_seed: float, n_folds: int, per_fold: int, k: int = 3, segs: int = 8, mu: float = 0.5):
    """Speakers nested in folds, each fold's k models (seeds) shared by its speakers: per segment and seed
    mu + speaker effect (SD 0.05) + the fold's seed effect (SD ``sd_seed``) + noise (SD 0.1)."""
    rows = []
    for f in range(n_folds):
        v = rng.normal(0, sd_seed, k)
        for s in range(per_fold):
            u = rng.normal(0, 0.05)
            for g in range(segs):
                y = mu + u + v + rng.normal(0, 0.1, k)
                rows.append({"speaker": f"f{f}s{s}", "fold": f, "key": f"f{f}s{s}|{g}", "recording_id": g,
                             "y": y.mean(), **{f"y@{j}": y[j] for j in range(k)}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("design, old_max, new_range", [
    ((5, 2), 0.90, (0.93, 0.995)),          # EmoDB-like: 10 speakers in 5 folds, 3 seeds
    ((6, 4), 0.80, (0.92, 0.99)),           # RAVDESS-like: 24 speakers in 6 folds, 3 seeds
])
def test_seed_bootstrap_covers_a_known_truth_that_the_speaker_bootstrap_misses(design, old_max, new_range):
    """A large seed effect (SD 0.2, shared by a fold's speakers): the speaker-only bootstrap of the seed-averaged
    data covers the true 0.5 in 86 % (EmoDB-like) / 69 % (RAVDESS-like) of 200 studies; drawing each fold's
    seeds too covers it in 98 % / 96 % (the EmoDB-like design's 10 speakers: conservative)."""
    rng = np.random.default_rng(5)
    old = new = 0
    n = 200
    for i in range(n):
        t = _study(rng, 0.2, *design)
        _, lo, hi = stats.hier_ci(t.speaker, None, t.y, n_boot=300, seed=i)
        old += lo <= 0.5 <= hi
        _, lo, hi = stats.table_ci(t, "y", n_boot=300, seed=i)
        new += lo <= 0.5 <= hi
    assert old / n <= old_max
    assert new_range[0] <= new / n <= new_range[1]


def test_a_gender_gap_shares_the_folds_seeds():
    """Female and male speakers of a fold are attacked through the same models: a seed effect common to both
    cancels in the gap when the seeds are drawn once per fold (``shared_seeds``), not when drawn apart."""
    rng = np.random.default_rng(0)
    t = _study(rng, 0.3, 6, 4).assign(gender=lambda d: np.where(d.speaker.str[-1].astype(int) < 2, "female",
                                                                   "male"))
    f, m = t[t.gender == "female"], t[t.gender == "male"]
    _, lo_s, hi_s = stats.hier_gap_ci(f, m, "y", shared_seeds=True)
    _, lo_i, hi_i = stats.hier_gap_ci(f, m, "y")
    assert hi_s - lo_s < 0.9 * (hi_i - lo_i)            # 0.50 vs 0.63


# ------------------------------------------------------------------------------------ one-sided tests
def _folds(n_folds: int, per_gender: int, female_ok: float, male_ok: float) -> pd.DataFrame:
    rows = []
    for f in range(n_folds):
        for g, v in (("female", female_ok), ("male", male_ok)):
            for s in range(per_gender):
                rows += [dict(speaker=f"f{f}{g[0]}{s}", gender=g, fold=f, speaker_known=True, adv_ok=v)] * 3
    return pd.DataFrame(rows)


def test_one_sided_within_folds_makes_emodb_testable():
    """EmoDB's 5 folds of 1 F + 1 M: 32 exact relabellings. Two-sided the smallest p is 2/32 = 0.0625 (not
    testable); one-sided 1/32 = 0.031. Every female above her fold's male: p(greater) = 1/32, p(less) = 1."""
    t = _folds(5, 1, 1.0, 0.0)
    f, m = t[t.gender == "female"], t[t.gender == "male"]
    two = stats.speaker_test(f, m, "adv_ok", strata=True)
    assert not two.testable and two.min_p == pytest.approx(2 / 32)
    assert two == stats.speaker_test(f, m, "adv_ok", strata=True, alternative="two-sided")
    g = stats.speaker_test(f, m, "adv_ok", strata=True, alternative="greater")
    assert g.testable and g.p == pytest.approx(1 / 32) and g.min_p == pytest.approx(1 / 32)
    assert "one-sided: a − b > 0" in g.text()
    le = stats.speaker_test(f, m, "adv_ok", strata=True, alternative="less")
    assert le.p == pytest.approx(1.0)
    # EMOVO's 3 folds: 8 relabellings, one-sided 1/8 still > 0.05
    e = _folds(3, 1, 1.0, 0.0)
    assert not stats.speaker_test(e[e.gender == "female"], e[e.gender == "male"], "adv_ok", strata=True,
                                  alternative="greater").testable


def test_one_sided_unstratified_and_paired_p_by_hand():
    """3 vs 3 speakers, separated: C(6, 3) = 20 relabellings, two-sided smallest p 2/20 (not testable), one-sided
    1/20 = 0.05 (testable at α = 0.05). Five speakers, every difference positive: sign flips 2^5 = 32, p(greater)
    1/32, two-sided smallest p 2/32 (not testable), p(less) 1."""
    t = _folds(1, 3, 1.0, 0.0)
    f, m = t[t.gender == "female"], t[t.gender == "male"]
    assert not stats.speaker_test(f, m, "adv_ok", "x").testable
    g = stats.speaker_test(f, m, "adv_ok", "x", alternative="greater")
    assert g.p == pytest.approx(1 / 20) and g.min_p == pytest.approx(1 / 20)
    assert stats.speaker_test(f, m, "adv_ok", "x", alternative="less").p == pytest.approx(1.0)
    a = pd.DataFrame({"speaker": list("abcde"), "v": [0.5, 0.6, 0.7, 0.8, 0.9]})
    b = a.assign(v=a.v - [0.1, 0.2, 0.3, 0.4, 0.5])
    two = stats.paired_speaker_test(a, b, "v")
    assert not two.testable and two.min_p == pytest.approx(2 / 32)
    assert stats.paired_speaker_test(a, b, "v", alternative="greater").p == pytest.approx(1 / 32)
    assert stats.paired_speaker_test(a, b, "v", alternative="greater").min_p == pytest.approx(1 / 32)
    assert stats.paired_speaker_test(a, b, "v", alternative="less").p == pytest.approx(1.0)
    with pytest.raises(ValueError, match="alternative 'bigger'"):
        stats.speaker_test(f, m, "adv_ok", alternative="bigger")


def test_a_planned_one_sided_gender_test_is_labelled_beside_its_p(tmp_path):
    """A plan that pre-registers female − male > 0 for clean accuracy under split=speaker_cv: that comparison is
    tested one-sided and the report says so next to the p; another protocol and the other measures stay
    two-sided (exploratory)."""
    from ser_attacks.report import plan as planmod
    from ser_attacks.report.gaps import _gender_test, gender_alternative
    from ser_attacks.report.significance import _clean_gender
    p = tmp_path / "plan.yaml"
    p.write_text("comparisons:\n  - question: gender\n    measure: clean_acc\n    protocol: split=speaker_cv\n"
                 "    alternative: greater\n")
    plan = planmod.load(p)
    assert gender_alternative(plan, "clean_acc", "emodb (split=speaker_cv)") == "greater"
    assert gender_alternative(plan, "clean_acc", "emodb (split=paper)") == "two-sided"
    assert gender_alternative(plan, "adv_acc", "emodb (split=speaker_cv)") == "two-sided"
    assert gender_alternative(None, "clean_acc", "emodb (split=speaker_cv)") == "two-sided"
    t = _folds(5, 1, 1.0, 0.0).assign(clean_ok=lambda d: d.adv_ok)
    test = _gender_test(t[t.gender == "female"], t[t.gender == "male"], "clean_ok", "greater")
    assert test.p == pytest.approx(1 / 32) and "one-sided, planned: female − male > 0" in test.text()
    t3 = pd.DataFrame({"setting": ["emodb (split=speaker_cv)"], "gap": [1.0], "gap_lo": [0.5], "gap_hi": [1.0],
                       "p": [test.p], "test": [test.text()], "alternative": ["greater"]})
    line = _clean_gender(t3, 0.05, plan)
    assert "significant after Holm in emodb (split=speaker_cv)" in line
    assert "one-sided, planned: female − male > 0" in line


# ------------------------------------------------------------------------------- through the report's tables
def _export(folder, seeds, seed_effect: float, rng_seed: int = 0) -> None:
    """An export (runs.csv + segments.csv.gz) of one FGSM configuration under split=speaker_cv: 3 folds of 2 F + 2 M
    speakers, 6 segments each, one run per fold and training seed; a model's clean accuracy 0.6 ± ``seed_effect``
    (shared by its fold's speakers), females 0.2 above males."""
    rng = np.random.default_rng(rng_seed)
    runs, segs = [], []
    for f in range(3):
        for s in seeds:
            rid = f"r{f}{s}"
            runs.append({"run_id": rid, "status": "FINISHED", "start_time": f"2026-01-01T00:0{f}:{s:02d}+00:00",
                         "tags.dataset": "ravdess", "tags.attack": "fgsm", "tags.model": "final",
                         "tags.language": "English", "tags.model_key": f"m{f}-{s}", "metrics.clean_acc": 0.6,
                         "metrics.adv_acc": 0.1, "metrics.n_samples": 24, "params.seed": str(s),
                         "params.split.mode": "speaker_cv", "params.split.fold": str(f),
                         "params.attack.name": "fgsm", "params.attack.eps": "0.25"})
            effect = rng.normal(0, seed_effect) if seed_effect else 0.0
            for g in ("female", "male"):
                for k in range(2):
                    spk = f"{g[0]}{f}{k}"
                    p = np.clip(0.6 + effect + (0.1 if g == "female" else -0.1), 0, 1)
                    for j in range(6):
                        ok = rng.random() < p
                        segs.append({"run_id": rid, "dataset": "ravdess", "split": "speaker_cv", "fold": f,
                                     "seed": s, "attack": "fgsm", "config": "eps=0.25", "recording_id": f"{spk}r{j}",
                                     "speaker": spk, "utterance": "u", "augment": "none", "segment": 0,
                                     "test_index": j, "gender": g, "label": 0, "clean_pred": 0 if ok else 1,
                                     "adv_pred": 1})
    folder.mkdir()
    pd.DataFrame(runs).to_csv(folder / "runs.csv", index=False)
    pd.DataFrame(segs).to_csv(folder / "segments.csv.gz", index=False)


def test_the_clean_table_carries_the_seed_spread_and_a_planned_one_sided_p(tmp_path):
    """Three training seeds per fold with a seed effect (SD 0.2): Table 3's clean-accuracy interval comes from the
    speaker-and-seed bootstrap (wider than the speaker-only one of the same seed averages), its point estimate
    is the seed average; a plan's one-sided female − male comparison is tested one-sided and labelled."""
    from ser_attacks.report import plan as planmod
    from ser_attacks.report.export import load_results
    from ser_attacks.report.tables import build_tables
    _export(tmp_path / "res", [1, 2, 3], 0.2)
    runs, samples = load_results([tmp_path / "res"])
    p = tmp_path / "plan.yaml"
    p.write_text("comparisons:\n  - question: gender\n    measure: clean_acc\n    alternative: greater\n")
    t = build_tables(runs, samples, planmod.load(p))
    row = t["table03_clean_accuracy"].data.iloc[0]
    T = pool(list(samples.values()))                     # the seed averages, no seed columns
    assert row.clean_acc_lo == row.clean_acc_lo and len(T) == 72
    _, lo, hi = stats.hier_ci(T.speaker, None, T.clean_ok)
    assert row.clean_acc_hi - row.clean_acc_lo > 1.2 * (hi - lo)
    assert row.gap == pytest.approx(T[T.gender == "female"].clean_ok.mean() - T[T.gender == "male"].clean_ok.mean())
    assert row.alternative == "greater" and "one-sided, planned: female − male > 0" in row.test
    # without the plan: two-sided, no label
    two = build_tables(runs, samples)["table03_clean_accuracy"].data.iloc[0]
    assert two.alternative == "two-sided" and "one-sided" not in two.test


# --------------------------------------------------------------------- the minimal-perturbation questions
def _mn_rows(seeds, scale_by_seed, rng_seed: int = 0) -> pd.DataFrame:
    """Per-segment rows (segments.csv columns) of FMN and BIM (eps 0.5) on 12 speakers in 3 folds (2 F + 2 M),
    5 correct segments each, one run per fold and training ``seed``; FMN's minimal L∞ scaled per seed."""
    rng = np.random.default_rng(rng_seed)
    base = rng.exponential(0.5, (12, 5))
    rows = []
    for s in seeds:
        for i in range(12):
            for k in range(5):
                r = base[i, k] * scale_by_seed[s]
                common = {"dataset": "ravdess", "split": "speaker_cv", "fold": i // 4, "seed": s,
                          "speaker": f"s{i}", "gender": "female" if i % 2 == 0 else "male", "recording_id": f"s{i}r{k}",
                          "segment": 0, "test_index": k, "label": 1, "clean_pred": 1}
                rows.append({**common, "run_id": f"fmn{i // 4}{s}", "attack": "fmn", "config": "default",
                             "min_linf": r, "adv_pred": 2})
                rows.append({**common, "run_id": f"bim{i // 4}{s}", "attack": "bim", "config": "eps=0.5",
                             "attack.eps": 0.5, "adv_pred": 2 if r <= 0.5 else 1})
                rows.append({**common, "run_id": f"df{i // 4}{s}", "attack": "cw_linf", "config": "default",
                             "min_linf": r * 1.2, "adv_pred": 2})
    return pd.DataFrame(rows)


def test_min_norm_questions_one_seed_per_fold_is_unchanged_and_three_seeds_widen():
    """One seed per fold: the questions' tables equal those of the same rows without a seed column. Three seeds
    whose models differ (minimal perturbations x0.5, x1, x2): a speaker's median is the mean of its per-seed
    medians, and the interval of the median across speakers widens beyond the one of the same seed-averaged
    speaker medians without the seed draws; pairs, budgets (paired per model) and gender gaps carry them."""
    from ser_attacks.report import min_norm_questions as q
    one = _mn_rows([7], {7: 1.0})
    t1, t0 = q.tidy(one), q.tidy(one.drop(columns="seed"))
    for fn in (lambda t: q.ranking(t, "min_linf")[0], lambda t: q.ranking(t, "min_linf")[1],
               lambda t: q.gender(t, "min_linf"), lambda t: q.budgets(t, "min_linf")):
        pd.testing.assert_frame_equal(fn(t1), fn(t0))
    three = q.tidy(_mn_rows([1, 2, 3], {1: 0.5, 2: 1.0, 3: 2.0}))
    fmn = three[three.attack == "fmn"]
    med = q.speaker_medians(fmn, "min_linf")
    assert {"median@0", "median@1", "median@2"} <= set(med)
    assert np.allclose(med["median"], med[["median@0", "median@1", "median@2"]].mean(axis=1))
    mid, lo, hi = q.across_speakers(med)
    _, lo0, hi0 = q.across_speakers(med[["speaker", "gender", "fold", "n_correct", "n_censored", "median"]])
    assert lo <= mid <= hi and hi - lo > 1.5 * (hi0 - lo0)
    sums, pairs = q.ranking(three, "min_linf")
    assert len(pairs) == 1 and pairs.lo.iloc[0] < pairs["diff"].iloc[0] < pairs.hi.iloc[0]
    b = q.budgets(three, "min_linf")
    assert len(b) == 2 and (b[b.attack == "fmn"].fixed_only == 0).all() and b.segments.eq(180).all()
    gd = q.gender(three, "min_linf")
    assert (gd.lo < gd.gap).all() and (gd.gap < gd.hi).all()
