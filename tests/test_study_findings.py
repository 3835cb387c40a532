"""recipes/study/findings.py: the verdicts on the paper's attack ranking say only what the intervals support."""
from __future__ import annotations

import pandas as pd

from tests.helpers import load_script


def _findings():
    return load_script("recipes/study/findings.py", "study_findings")


def _df(rows):
    return pd.DataFrame(rows, columns=["other", "diff", "lo", "hi", "p", "p_holm"])


def test_rank_verdicts():
    """Ranked on the success rate on correctly classified segments: strongest = highest."""
    v = _findings().rank_verdict
    # JSMA above every other attack after Holm: supported
    assert v(_df([("fgsm", 0.4, 0.2, 0.6, 0.001, 0.002), ("bim", 0.3, 0.1, 0.5, 0.002, 0.002)]),
             True).startswith("supported")
    # one attack significantly stronger than JSMA: contradicted, naming it
    out = v(_df([("fgsm", -0.4, -0.6, -0.2, 0.001, 0.002), ("bim", 0.3, 0.1, 0.5, 0.002, 0.002)]), True)
    assert out.startswith("contradicted (fgsm stronger")
    # ties, a CI that excludes 0 without Holm, and overlap: not shown, each named
    out = v(_df([("fgsm", 0.0, -0.07, 0.07, float("nan"), float("nan")), ("bim", 0.2, 0.05, 0.4, 0.06, 0.3),
                 ("deepfool", 0.1, -0.1, 0.3, 0.5, 1.0)]), True)
    assert out.startswith("not shown: tied with fgsm (Δ 0 [-0.07, 0.07])")
    assert "stronger than bim beyond the CI but not after Holm" in out and "not distinguishable from deepfool" in out
    # weakest: PixelAttack below all after Holm
    assert v(_df([("fgsm", -0.5, -0.7, -0.3, 0.001, 0.003)]), False).startswith("supported")
    assert v(_df([("fgsm", 0.5, 0.3, 0.7, 0.001, 0.003)]), False).startswith("contradicted (fgsm weaker")


def test_verdicts_table_and_how_they_moved():
    """--verdicts writes one verdict per claim, corpus and measure; --compare ends the findings with how each moved
    (a changed verdict in bold; a claim only one study judged shows '–' on the other side)."""
    f = _findings()
    assert f.verdict_word("not shown: tied with fgsm") == "not shown"
    assert f.verdict_word("supported (beyond the interval)") == "supported"
    assert f.verdict_word("contradicted (fgsm stronger)") == "contradicted"
    cols = ["question", "claim", "corpus", "measure", "verdict"]
    v1 = pd.DataFrame([("(1) ranking", "JSMA strongest", "emodb", "success", "not shown"),
                       ("(3) gender", "male more vulnerable", "emodb", "min L∞", "not measured")], columns=cols)
    v2 = pd.DataFrame([("(1) ranking", "JSMA strongest", "emodb", "success", "not shown"),
                       ("(3) gender", "male more vulnerable", "emodb", "min L∞", "supported"),
                       ("(3) gender", "clean accuracy alike", "emodb", "clean", "not shown")], columns=cols)
    md = "\n".join(f.compare(v1, v2))
    assert "| (3) gender | male more vulnerable | emodb | min L∞ | not measured | **supported** |" in md
    assert "| (1) ranking | JSMA strongest | emodb | success | not shown | not shown |" in md
    assert "| (3) gender | clean accuracy alike | emodb | clean | – | **not shown** |" in md
    # v2's verdicts carry their plan status and numbers; the table shows them beside the later verdict
    md = "\n".join(f.compare(v1, v2.assign(plan="planned", evidence=["Δ +0.00", "+0.01 σ; p 0.02", "+0.04"])))
    assert "| before | after | plan (after) | evidence (after) |" in md
    assert "| not measured | **supported** | planned | +0.01 σ; p 0.02 |" in md


def test_compare_file_checked_before_any_work(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit, match="--compare .*: no such file"):
        _findings().main([str(tmp_path), "--compare", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "f.md")])
    assert not (tmp_path / "f.md").exists()
    with pytest.raises(SystemExit, match="--verdicts .*: its folder does not exist"):
        _findings().main([str(tmp_path), "--verdicts", str(tmp_path / "no" / "v.csv"), "--out", str(tmp_path / "f.md")])


def test_gender_verdicts_from_the_tables():
    """Clean accuracy: equivalence on the margin; white-box vulnerability: Holm-significant gaps (a negative gap =
    female more vulnerable contradicts); the planned minimal perturbation: not measured without FMN runs."""
    from types import SimpleNamespace as NS
    s = "emodb (split=speaker_cv)"
    clean = pd.DataFrame({"setting": [s, "emodb (split=paper)"], "gap": [0.01, 0.0], "gap_lo": [-0.05, -0.5],
                          "gap_hi": [0.08, 0.5]})
    t47 = pd.DataFrame({"setting": [s, s], "attack": ["fgsm", "pixel"], "gap": [-0.2, 0.3], "p": [0.01, 0.01],
                        "p_holm": [0.02, 0.02]})
    t = NS(items=[NS(key="table03_clean_accuracy", data=clean), NS(key="table47_gender_accuracy", data=t47)])
    rows = _findings().gender_verdicts(t, None, pd.DataFrame())
    out = {(d["claim"], d["measure"].split(",")[0]): d["verdict"] for d in rows}
    assert rows[0]["evidence"].startswith("+0.010 [-0.05, 0.08]")                 # the verdict carries its numbers
    assert out[("clean accuracy alike (±0.1)", "clean accuracy")] == "equivalent to no effect"
    assert out[("male more vulnerable", "adversarial accuracy")] == "contradicted"    # fgsm: female more vulnerable
    assert out[("male more vulnerable", "minimal L∞ perturbation (FMN)")] == "not measured"
    assert len(out) == 3                                                            # the leaky row is left out


def test_one_speaker_per_gender_is_not_testable_never_equivalent():
    """v2's first EmoDB piece (1 female + 1 male speaker): the bootstrap over one speaker per gender gives a CI of
    zero width, which read "equivalent to no effect"; with fewer than 3 speakers of a gender it is not testable."""
    from types import SimpleNamespace as NS

    from ser_attacks.report import plan as planmod
    assert planmod.negligible(0.05, 0.05, 0.10) == "negligible"
    assert planmod.negligible(0.05, 0.05, 0.10, n_speakers=1) == "not testable"
    assert planmod.negligible(-0.05, 0.08, 0.10, n_speakers=5) == "negligible"
    s = "emodb (split=speaker_cv)"
    clean = pd.DataFrame({"setting": [s], "gap": [0.053], "gap_lo": [0.053], "gap_hi": [0.053],
                          "n_speakers_female": [1], "n_speakers_male": [1]})
    t = NS(items=[NS(key="table03_clean_accuracy", data=clean)])
    rows = _findings().gender_verdicts(t, None, pd.DataFrame())
    out = {d["claim"]: d["verdict"] for d in rows}
    assert out["clean accuracy alike (±0.1)"] == "not testable"
    assert rows[0]["evidence"].endswith("; 1 speaker of the smaller gender")


def test_a_reference_attack_says_why_it_has_no_holm_p():
    """Noise and AutoAttack are checklist references outside every Holm family: the corpus table says so rather
    than showing a raw p beside a bare '–'."""
    f = _findings()
    assert f._holm_or_reference("noise", float("nan")) == "reference: outside Holm"
    assert f._holm_or_reference("autoattack", float("nan")) == "reference: outside Holm"
    assert f._holm_or_reference("fgsm", 0.25) == "0.250"
    assert f._holm_or_reference("fgsm", float("nan")) == "–"


def test_ranking_that_holm_can_never_reject_is_not_testable():
    """Six speakers (EMOVO's leave-one-speaker-out folds): each sign-flip p is at least 2 / 64, and Holm over the 7
    comparisons multiplies the smallest by 7, so nothing can be shown whatever the data: not testable, the
    intervals still described. Ten speakers (2 / 1024 × 7 = 0.014) can be."""
    from ser_attacks.report import stats
    assert list(stats.holm_floor([2 / 64] * 7)) == [7 * 2 / 64] * 7
    assert (stats.holm_floor([2 / 1024] * 7) < stats.ALPHA).all()
    # beside 24-speaker tests (which can come first) the six-speaker ones keep their floor; untested not counted
    mixed = stats.holm_floor([2 / 64] * 7 + [1e-7] * 5 + [float("nan")])
    assert list(mixed[:7]) == [7 * 2 / 64] * 7 and list(mixed[7:12]) == [12e-7] * 5 and mixed[12] != mixed[12]
    rows = [("fgsm", -0.79, -1.0, -0.57, 2 / 64, 7 * 2 / 64), ("bim", -0.69, -1.0, -0.47, 2 / 64, 7 * 2 / 64)]
    rows += [(f"a{i}", -0.5, -0.8, -0.2, 2 / 64, 7 * 2 / 64) for i in range(5)]
    v = _findings().rank_verdict(_df(rows).assign(min_p=2 / 64), False)
    assert v.startswith("not testable (smallest attainable p 0.0312, after Holm over 7 comparisons 0.219 > α 0.05): "
                        "weaker than fgsm, bim"), v
    assert "not shown" not in v
    # with ten speakers the same differences are judged
    ten = _df([(o, d, lo, hi, 2 / 1024, 7 * 2 / 1024) for o, d, lo, hi, *_ in rows]).assign(min_p=2 / 1024)
    assert _findings().rank_verdict(ten, False).startswith("supported")


def test_ranking_with_no_testable_comparison_is_not_testable():
    rows = [("fgsm", 1.0, 1.0, 1.0, float("nan"), float("nan")), ("bim", 1.0, 1.0, 1.0, float("nan"), float("nan"))]
    df = _df(rows).assign(test="not testable (speakers in both < 3: 2)")
    assert _findings().rank_verdict(df, False) == "not testable (speakers in both < 3: 2)"


def test_a_single_protocol_is_still_named_so_the_sections_find_it():
    """The report names a setting by the keys that differ between its runs: results of one protocol only are
    plain "emodb", and every section (which selects split=speaker_cv by name) came out empty."""
    from types import SimpleNamespace as NS
    df = pd.DataFrame({"setting": ["emodb", "emodb", "ravdess (split=paper)"],
                       "params": [{"split.mode": "speaker_cv"}, {"split.mode": "speaker_cv"}, {"split.mode": "paper"}]})
    runs = NS(df=df)
    _findings().label_protocols(runs)
    assert runs.df.setting.tolist() == ["emodb (split=speaker_cv)"] * 2 + ["ravdess (split=paper)"]


def test_planned_gender_family_is_fmn_per_corpus():
    """The pre-registered gender test adjusts over FMN's corpora only (the design table); the report's Holm over every
    minimum-norm attack (C&W-L∞ on the subsample beside FMN) stays beside it."""
    rows = pd.DataFrame({"setting": ["emodb", "emodb", "ravdess", "ravdess", "emovo"],
                         "protocol": ["split=speaker_cv"] * 5, "attack": ["fmn", "cw_linf", "fmn", "cw_linf", "fmn"],
                         "p": [0.03, 0.5, 0.02, 0.6, float("nan")], "p_holm": [0.09, 1, 0.08, 1, float("nan")]})
    out = _findings().planned_gender_family(rows)
    assert list(out.setting) == ["emodb", "ravdess", "emovo"]
    assert out.p_holm.iloc[:2].tolist() == [0.04, 0.04] and out.p_holm.isna().iloc[2]
    assert out.p_holm_rule.iloc[:2].tolist() == [0.09, 0.08]                 # the report's value, kept beside it
    assert _findings().planned_gender_family(pd.DataFrame()).empty
