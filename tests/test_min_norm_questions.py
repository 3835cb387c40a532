"""The study's questions on the minimal perturbations (ser_attacks/report/min_norm_questions.py), on synthetic
per-segment tables in the columns of an export's segments.csv.gz: the censoring rule of the speaker medians, the
ranking of attacks paired on the same segments, the minimum-norm curve against fixed-budget runs, gender permuted
within folds (and not testable where the design cannot reach α), corpora descriptive only, the analysis plan."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks.report import min_norm_questions as q
from ser_attacks.report import plan as planmod
from tests.helpers import ROOT


def segs(r_by_speaker: dict, attack: str = "fmn", dataset: str = "emodb", folds: dict | None = None,
         genders: dict | None = None, measure: str = "min_linf", wrong: dict | None = None) -> pd.DataFrame:
    """Rows of one run: speaker → list of minimal perturbations of its correct segments (np.inf: never flipped);
    ``wrong``: speaker → number of extra segments the model got wrong (minimal perturbation 0)."""
    rows = []
    for s, rs in r_by_speaker.items():
        fold = (folds or {}).get(s, 0)
        g = (genders or {}).get(s, "female" if int(s[1:]) % 2 == 0 else "male")
        for i, r in enumerate(list(rs) + [0.0] * (wrong or {}).get(s, 0)):
            right = i < len(rs)
            flipped = right and np.isfinite(r)
            rows.append({"dataset": dataset, "split": "speaker_cv", "fold": fold, "run_id": f"{attack}-run",
                         "attack": attack, "config": "default", "speaker": s, "gender": g, "recording_id": f"{s}_{i}",
                         "segment": 0, "test_index": i, "label": 1, "clean_pred": 1 if right else 0,
                         "adv_pred": 2 if (flipped or not right) else 1,
                         measure: r if right else (np.inf if measure == "min_snr_db" else 0.0)})
    return pd.DataFrame(rows)


def med_of(seg, measure="min_linf"):
    return q.speaker_medians(q.tidy(seg), measure).set_index("speaker")["median"]


# ------------------------------------------------------------------------------------------- censoring
def test_speaker_median_counts_never_flipped_as_largest_and_leaves_wrong_segments_out():
    m = med_of(segs({"s1": [0.1, 0.2, np.inf], "s2": [0.1, np.inf], "s3": [0.3, 0.5]}, wrong={"s3": 3}))
    assert m["s1"] == pytest.approx(0.2)          # censored counted as larger (dropping it would give 0.15)
    assert m["s2"] == np.inf                       # half censored → the median is censored (∞)
    assert m["s3"] == pytest.approx(0.4)           # wrong segments (0) left out (kept: 0.0)
    cs = q.speaker_medians(q.tidy(segs({"s1": [0.1, 0.2, np.inf]})), "min_linf")
    assert cs.n_censored.iloc[0] == 1 and cs.n_correct.iloc[0] == 3


def test_across_speakers_median_of_medians_interval_only_with_enough_speakers():
    six = {f"s{i}": [0.01 * (i + 1)] * 3 for i in range(6)}
    mid, lo, hi = q.across_speakers(q.speaker_medians(q.tidy(segs(six)), "min_linf"))
    assert mid == pytest.approx(0.035) and lo <= mid <= hi and lo < hi
    two = {"s0": [0.1], "s1": [0.3]}
    mid, lo, hi = q.across_speakers(q.speaker_medians(q.tidy(segs(two)), "min_linf"))
    assert mid == pytest.approx(0.2) and lo != lo and hi != hi        # < MIN_SPEAKERS: no interval
    cens = {"s0": [0.1], "s1": [np.inf], "s2": [np.inf]}
    assert q.across_speakers(q.speaker_medians(q.tidy(segs(cens)), "min_linf"))[0] == np.inf


# --------------------------------------------------------------------------------------------- ranking
def _six(scale: float, attack: str, extra: dict | None = None) -> pd.DataFrame:
    rs = {f"s{i}": [scale * (0.01 + 0.002 * i + 0.001 * k) for k in range(4)] for i in range(6)}
    for s, v in (extra or {}).items():
        rs[s] = rs[s] + v
    return segs(rs, attack=attack, folds={f"s{i}": i // 2 for i in range(6)})


def test_ranking_pairs_on_common_segments_and_names_the_smallest():
    seg = pd.concat([_six(0.5, "fmn"), _six(1.0, "cw_linf")])
    sums, pairs = q.ranking(q.tidy(seg), "min_linf")
    assert list(sums.sort_values("median").attack) == ["fmn", "cw_linf"]
    p = pairs.iloc[0]
    assert (p.attack, p.other) == ("cw_linf", "fmn")
    # Δ = mean over speakers of (median cw_linf − median fmn) = mean of 0.5 × speaker medians
    expected = np.mean([0.5 * (0.01 + 0.002 * i + 0.0015) for i in range(6)])
    assert p["diff"] == pytest.approx(expected) and p.lo > 0
    assert p.p == pytest.approx(2 / 64) and p.p_holm == pytest.approx(2 / 64)   # exact sign flips, 6 speakers
    assert "supported" in q.smallest_verdict(sums, pairs) and q.smallest_verdict(sums, pairs).startswith("fmn")


def test_ranking_ignores_segments_only_one_attack_attacked():
    # cw_linf also attacked extra segments with tiny minimal perturbations: unpaired, they must not count
    seg = pd.concat([_six(0.5, "fmn"), _six(1.0, "cw_linf", extra={f"s{i}": [1e-6] * 20 for i in range(6)})])
    _, pairs = q.ranking(q.tidy(seg), "min_linf")
    assert pairs.iloc[0].segments == 24 and pairs.iloc[0]["diff"] > 0


def test_ranking_caps_censored_speakers_at_the_axis_top():
    a = _six(0.5, "fmn")
    b = _six(1.0, "cw_linf")
    b.loc[b.speaker == "s0", "min_linf"] = np.inf        # never flipped
    b.loc[b.speaker == "s0", "adv_pred"] = 1
    t = q.tidy(pd.concat([a, b]))
    top = q.cap(t, "min_linf")
    assert top == pytest.approx(1.05 * (0.01 + 0.002 * 5 + 0.003))     # largest finite × 1.05
    _, pairs = q.ranking(t, "min_linf")
    meds_a = [0.5 * (0.01 + 0.002 * i + 0.0015) for i in range(6)]
    meds_b = [top] + [0.01 + 0.002 * i + 0.0015 for i in range(1, 6)]
    assert pairs.iloc[0]["diff"] == pytest.approx(np.mean(np.subtract(meds_b, meds_a)))


def test_minimal_norm_counts_only_in_the_norm_the_attack_minimises():
    seg = pd.concat([_six(0.5, "fmn"), _six(1.0, "deepfool"), _six(2.0, "fmn").assign(config="norm=2")])
    t = q.tidy(seg)
    assert set(t[t.min_linf.notna()].config) == {"default"}                # FMN L∞ only; DeepFool minimises L2
    sums, _ = q.ranking(t, "min_linf")
    assert list(sums.attack) == ["fmn"] and list(sums.config) == ["default"]
    l2 = pd.concat([_six(0.5, "deepfool"), _six(2.0, "fmn").assign(config="norm=2", **{"attack.norm": "2"})])
    l2 = l2.rename(columns={"min_linf": "min_l2"})
    sums, _ = q.ranking(q.tidy(l2), "min_l2")
    assert sorted(sums.attack) == ["deepfool", "fmn"]


def test_ranking_on_snr_quieter_is_smaller():
    def snr(db, attack):
        return segs({f"s{i}": [db + i + k for k in range(3)] for i in range(6)}, attack=attack,
                    measure="min_snr_db", folds={f"s{i}": i // 2 for i in range(6)})
    sums, pairs = q.ranking(q.tidy(pd.concat([snr(30, "fmn"), snr(20, "deepfool")])), "min_snr_db")
    assert q.smallest_verdict(sums, pairs).startswith("fmn")         # 30 dB is quieter than 20 dB
    md = "\n".join(q.section(pd.concat([snr(30, "fmn"), snr(20, "deepfool")]), n_boot=200))
    assert "| emodb (split=speaker_cv) | fmn | 33.5 [" in md             # shown in dB, not −dB


def test_ranking_that_holm_can_never_show_is_not_testable():
    """Four attacks on six speakers (SNR: every attack counts): 6 pairs, each sign-flip p ≥ 2 / 64, Holm's floor
    6 × 2 / 64 = 0.19 for every pair, so the attack with the smallest change is described, not "not shown" as if
    the data had decided. One pair of the same speakers has floor 2 / 64 and is decided."""
    def snr(db, attack):
        return segs({f"s{i}": [db + i + k for k in range(3)] for i in range(6)}, attack=attack,
                    measure="min_snr_db", folds={f"s{i}": i // 2 for i in range(6)})
    four = [snr(40, "fmn"), snr(30, "deepfool"), snr(20, "cw_l2"), snr(10, "boundary")]
    sums, pairs = q.ranking(q.tidy(pd.concat(four)), "min_snr_db")
    assert len(pairs) == 6 and pairs.p.to_numpy() == pytest.approx([2 / 64] * 6)
    assert pairs.p_holm_floor.to_numpy() == pytest.approx([6 * 2 / 64] * 6)
    v = q.smallest_verdict(sums, pairs)
    assert v.startswith("fmn has the smallest median (descriptive); not testable (after Holm none of its 3 pairs"), v
    sums, pairs = q.ranking(q.tidy(pd.concat(four[:2])), "min_snr_db")
    assert pairs.p_holm_floor.iloc[0] == pytest.approx(2 / 64) and "supported" in q.smallest_verdict(sums, pairs)


def test_ranking_holm_is_over_the_attacks_compared_within_a_corpus():
    """The ranking is asked of each corpus (study v2's plan: "Holm over the attacks compared"): two corpora of
    six speakers and one pair each give each pair its own family (Holm p 2 / 64, supported); the report's one
    rule, every corpus in one family, is shown beside it (2 × 2 / 64) and the verdict says it would not hold."""
    def snr(db, attack, dataset):
        return segs({f"s{i}": [db + i + k for k in range(3)] for i in range(6)}, attack=attack, dataset=dataset,
                    measure="min_snr_db", folds={f"s{i}": i // 2 for i in range(6)})
    seg = pd.concat([snr(30, "fmn", "emodb"), snr(20, "cw_l2", "emodb"),
                     snr(30, "fmn", "ravdess"), snr(20, "cw_l2", "ravdess")])
    sums, pairs = q.ranking(q.tidy(seg), "min_snr_db")
    assert pairs.setting.nunique() == 2
    assert pairs.p_holm.to_numpy() == pytest.approx([2 / 64] * 2)
    assert pairs.p_holm_rule.to_numpy() == pytest.approx([4 / 64] * 2)
    s0 = pairs.setting.iloc[0]
    v = q.smallest_verdict(sums[sums.setting == s0], pairs[pairs.setting == s0])
    assert v == ("fmn needs the smallest perturbation: supported (below every other attack after Holm); not with "
                 "every corpus in one Holm family (the report's one rule: p up to 0.0625)"), v


def test_ranking_not_testable_with_two_speakers():
    seg = pd.concat([segs({"s0": [0.1, 0.2], "s1": [0.1]}, "fmn"), segs({"s0": [0.3, 0.4], "s1": [0.2]}, "cw_linf")])
    sums, pairs = q.ranking(q.tidy(seg), "min_linf")
    assert pairs.p.isna().all() and "not testable" in q.smallest_verdict(sums, pairs)


def test_configurations_of_one_attack_stay_apart_in_every_table():
    """DeepFool at three max_iter: the tables name each configuration (the study's first export printed "deepfool −
    deepfool" three times); the ranking compares attacks, so one configuration (the most iterations) stands for
    DeepFool in the pairs and in Holm, the others are listed as not ranked; a not-testable verdict reads once."""
    def df(cfg, shift):
        x = segs({"s0": [0.1 + shift], "s1": [0.2 + shift]}, "deepfool", measure="min_snr_db")
        return x.assign(config=cfg)
    fmn = segs({"s0": [0.5], "s1": [0.6]}, "fmn", measure="min_snr_db").assign(config="norm=2")
    seg = pd.concat([df("max_iter=1", 0.0), df("max_iter=5", 0.5), df("max_iter=20", 1.0), fmn])
    md = "\n".join(q.section(seg, n_boot=50))
    assert "deepfool max_iter=1 − deepfool" not in md and "deepfool max_iter=5 − " not in md
    assert "| emodb (split=speaker_cv) | deepfool max_iter=20 − fmn norm=2 |" in md
    assert "| emodb (split=speaker_cv) | deepfool max_iter=1 (not ranked: same attack) |" in md
    assert "not testable (not testable" not in md and "(descriptive); not testable (speakers" in md
    gender = q.gender(q.tidy(seg), "min_snr_db")                    # each attack once in the gender family too
    assert sorted(zip(gender.attack, gender.config)) == [("deepfool", "max_iter=20"), ("fmn", "norm=2")]
    assert q.ranked_configs([("fmn", "norm=inf"), ("fmn", "norm=2"), ("deepfool", "max_iter=5"),
                             ("deepfool", "max_iter=20"), ("boundary", "default")]) == [
        ("boundary", "default"), ("deepfool", "max_iter=20"), ("fmn", "norm=2"), ("fmn", "norm=inf")]


# --------------------------------------------------------------------------------- curve vs fixed budget
def _bim(seg_fmn: pd.DataFrame, eps: float, flipped_keys: set) -> pd.DataFrame:
    b = seg_fmn.drop(columns=["min_linf"]).assign(attack="bim", config=f"eps={eps:g}", run_id=f"bim-{eps}")
    right = b.clean_pred == b.label
    b["adv_pred"] = np.where(right & b.recording_id.isin(flipped_keys), 2, np.where(right, 1, 2))
    return b


def test_budgets_success_at_eps_and_segments_flipped_by_the_fixed_attack_only():
    f = segs({"s0": [0.01, 0.03], "s1": [0.02, np.inf]})
    b1 = _bim(f, 0.02, {"s0_0", "s1_0"})                 # agrees with the minimal perturbations
    b2 = _bim(f, 0.025, {"s0_0", "s1_0", "s1_1"})        # flips s1_1, whose minimum is ∞ > 0.025
    out = q.budgets(q.tidy(pd.concat([f, b1, b2])), "min_linf").set_index("eps")
    assert out.loc[0.02, "success_min"] == pytest.approx(0.5) and out.loc[0.02, "success_fixed"] == pytest.approx(0.5)
    assert out.loc[0.02, "fixed_only"] == 0
    assert out.loc[0.025, "fixed_only"] == 1 and out.loc[0.025, "success_fixed"] == pytest.approx(0.75)
    assert out.loc[0.025, "diff"] == pytest.approx(-0.25)
    md = "\n".join(q.section(pd.concat([f, b1, b2]), n_boot=200))
    assert "**Minimal ≥ fixed budget at every ε:** no (1 of 2 budgets" in md


def test_budget_read_from_attack_eps_or_config():
    assert q._budget(0.25, "") == 0.25 and q._budget(np.nan, "eps=0.5") == 0.5 and q._budget(None, "x") != 0.5


# ---------------------------------------------------------------------------------------------- gender
def _gender(n_folds: int, per_fold: int, female_scale: float) -> pd.DataFrame:
    rs, folds, genders = {}, {}, {}
    k = 0
    for f in range(n_folds):
        for j in range(2 * per_fold):
            s = f"s{k}"
            g = "female" if j < per_fold else "male"
            base = 0.01 + 0.001 * k
            rs[s] = [base * (female_scale if g == "female" else 1.0)] * 3
            folds[s], genders[s] = f, g
            k += 1
    return segs(rs, folds=folds, genders=genders)


def test_gender_gap_permuted_within_folds():
    out = q.gender(q.tidy(_gender(3, 2, 2.0)), "min_linf").iloc[0]
    assert out.gap > 0 and out.lo > 0 and out.n_female == 6 and out.n_male == 6
    assert "min p 0.00926" in out.test         # 2 / C(4,2)^3 = 2/216 within folds; over all speakers 2/924
    assert out.p < 0.05


def test_gender_not_testable_when_design_cannot_reach_alpha_or_too_few_speakers():
    out = q.gender(q.tidy(_gender(3, 1, 2.0)), "min_linf").iloc[0]         # EMOVO-like: 3 folds of 1 F + 1 M
    assert out.p != out.p and "not testable" in out.test and "0.25" in out.test
    out = q.gender(q.tidy(_gender(1, 1, 2.0)), "min_linf").iloc[0]         # 1 F + 1 M
    assert out.p != out.p and "n speakers per gender < 3" in out.test and out.lo != out.lo


def test_planned_one_sided_gender_test_on_emodb_like_folds(tmp_path):
    """Study v2's gender_vulnerability: EmoDB-like 5 folds of 1 F + 1 M are not testable two-sided (min p 1/16) but
    are one-sided where the plan pre-registered it (min p 1/32), and the report says so beside the p."""
    seg = _gender(5, 1, 2.0)                                # female segments need larger perturbations
    two = q.gender(q.tidy(seg), "min_linf").iloc[0]
    assert two.p != two.p and "not testable" in two.test
    one = q.gender(q.tidy(seg), "min_linf", alternative=lambda protocol: "greater").iloc[0]
    assert one.p == pytest.approx(1 / 32) and "one-sided, planned: female − male > 0" in one.test
    assert "a − b" not in one.test                            # labelled once, with the groups' names
    plan = tmp_path / "plan.yaml"
    plan.write_text("comparisons:\n  - {question: gender, measure: min_linf, protocol: split=speaker_cv, "
                    "alternative: greater}\n")
    md = "\n".join(q.section(seg, planmod.load(plan), n_boot=100))
    assert "one-sided, planned: female − male > 0" in md and "min p 0.0312" in md
    assert "one-sided" not in "\n".join(q.section(seg, None, n_boot=100))


# ---------------------------------------------------------------------------------------------- corpus
def test_corpus_descriptive_only_never_a_test():
    seg = pd.concat([_six(0.5, "fmn"), _six(1.0, "fmn").assign(dataset="emovo")])
    md = "\n".join(q.section(seg, n_boot=200))
    part = md[md.index("**(3) Corpus"):]
    assert "not identifiable" in part and "p (" not in part
    assert "| split=speaker_cv | fmn | " in part and part.count("[") >= 2


def test_section_empty_without_minimal_perturbations():
    b = _bim(segs({"s0": [0.01]}), 0.1, set()).drop(columns=[], errors="ignore")
    assert q.section(b) == []


def test_cli_writes_markdown(tmp_path):
    f = tmp_path / "seg.csv.gz"
    _six(0.5, "fmn").to_csv(f, index=False)
    assert q.main([str(f), "--out", str(tmp_path / "q.md"), "--n-boot", "100"]) == 0
    assert "which attack needs the smallest perturbation" in (tmp_path / "q.md").read_text()


# ------------------------------------------------------------------------------------------------ plan
def test_study_plan_lists_the_minimal_perturbation_questions():
    plan = planmod.load(ROOT / "recipes" / "study" / "analysis_plan.yaml")
    assert plan.status("ranking", "min_linf", "split=speaker_cv") == "planned"
    assert plan.status("gender", "min_linf", "split=speaker_cv") == "planned"
    assert plan.status("corpus", "min_linf", "split=speaker_cv") == "exploratory"
    assert plan.find("ranking", "success_at_budget").budgets[:3] == [0.005, 0.01, 0.02]


def _plan_with(tmp_path, comparison: str):
    """An analysis plan of one comparison (a YAML flow mapping), loaded."""
    p = tmp_path / "plan.yaml"
    p.write_text(f"comparisons:\n  - {comparison}\n")
    return planmod.load(p)


def test_plan_budgets_checked(tmp_path):
    with pytest.raises(ValueError, match="budgets belong to measure success_at_budget"):
        _plan_with(tmp_path, "{question: ranking, measure: min_linf, budgets: [0.1]}")
    with pytest.raises(ValueError, match="budgets must be a list of numbers > 0"):
        _plan_with(tmp_path, "{question: ranking, measure: success_at_budget, budgets: [-1]}")


def test_plan_alternative_checked_and_one_sided_never_an_equivalence_claim(tmp_path):
    assert _plan_with(tmp_path, "{question: gender, measure: clean_acc, alternative: less}").comparisons[0] \
        .alternative == "less"
    plan = _plan_with(tmp_path, "{question: gender, measure: clean_acc}")
    assert plan.comparisons[0].alternative == "two-sided" and planmod.alternative(plan, "gender", "clean_acc") == \
        "two-sided" and planmod.alternative(None, "gender", "clean_acc") == "two-sided"
    with pytest.raises(ValueError, match="alternative 'smaller' not in"):
        _plan_with(tmp_path, "{question: gender, measure: clean_acc, alternative: smaller}")
    with pytest.raises(ValueError, match="equivalence test"):
        _plan_with(tmp_path, "{question: gender, measure: clean_acc, alternative: less, claim: negligible}")


def test_rows_from_report_runs_keep_the_setting_and_pair_with_fixed_budget_runs():
    from types import SimpleNamespace

    from ser_attacks.report.collect import Samples
    f = segs({"s0": [0.01, 0.03], "s1": [0.02, np.inf]})
    b = _bim(f, 0.02, {"s0_0", "s1_0"})

    def samples(d, extra):
        return Samples(d.label.to_numpy(), d.gender.to_numpy(), d.clean_pred.to_numpy(), d.adv_pred.to_numpy(),
                       d.test_index.to_numpy(), d.speaker.to_numpy(), d.recording_id.to_numpy(),
                       np.zeros(len(d), int), np.full(len(d), "none"), d.fold.to_numpy(), extra)
    df = pd.DataFrame({"run_id": ["a", "b"], "setting": ["emodb (split=speaker_cv)"] * 2, "attack": ["fmn", "bim"],
                       "config": ["default", "eps=0.02"],
                       "params": [{"split.mode": "speaker_cv", "attack.norm": "inf"},
                                  {"split.mode": "speaker_cv", "attack.eps": "0.02"}]})
    rows = q.rows_from_runs(SimpleNamespace(df=df), {"a": samples(f, {"min_linf": f.min_linf.to_numpy()}),
                                                      "b": samples(b, None)})
    out = q.budgets(q.tidy(rows), "min_linf")
    assert list(out.setting) == ["emodb (split=speaker_cv)"] and out.segments.iloc[0] == 4
    assert out.success_min.iloc[0] == pytest.approx(0.5) and out.fixed_only.iloc[0] == 0
    md = "\n".join(q.section(rows, n_boot=100, level=3))
    assert md.startswith("### The questions") and "#### Minimal perturbation, L∞ (σ)" in md


def test_ranking_verdicts_labelled_where_planned_and_exploratory_settings_mix(tmp_path):
    """The plan ranks the minimal perturbations under split=speaker_cv only: beside it the leaky comparison's
    ranking (split=paper) is exploratory, and each verdict line says which it is."""
    cv = pd.concat([_six(0.5, "fmn"), _six(1.0, "cw_linf")])
    seg = pd.concat([cv, cv.assign(split="paper", run_id=cv.run_id + "-paper")])
    plan = _plan_with(tmp_path, "{question: ranking, measure: min_linf, protocol: split=speaker_cv}")
    md = "\n".join(q.section(seg, plan, n_boot=100))
    assert "**(1) Ranking: which attack needs the smallest perturbation** *(exploratory/planned)*" in md
    assert "- **emodb (split=paper):** *(exploratory)* fmn" in md
    assert "- **emodb (split=speaker_cv):** *(planned)* fmn" in md
    # one status for every setting: the heading says it, the verdicts do not repeat it
    assert "- **emodb (split=speaker_cv):** fmn" in "\n".join(q.section(cv, plan, n_boot=100))
