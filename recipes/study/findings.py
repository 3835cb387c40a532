"""The paper's three conclusions tested on the study's committed per-segment files.

    python recipes/study/findings.py results/study/emodb results/study/emovo [...] --out recipes/study/findings.md

(1) Attack ranking, "JSMA strongest, PixelAttack weakest": per corpus (``split=speaker_cv``), each of the
    paper's attacks at its best configuration; JSMA and PixelAttack each compared with every other attack on the
    SAME segments the model classified correctly: paired difference of the success rate (DeepFool and untargeted
    Boundary move away from the predicted class, so all-segment accuracy would rank them by clean accuracy),
    with a cluster-bootstrap CI over speakers and a sign-flip test over speakers on |mean|, Holm within each
    focus attack's comparisons; the all-segments accuracy beside it.
(2) Languages, "no substantial difference; English most susceptible, Italian most resistant": **not
    identifiable** from one corpus per language (speakers, model, emotion set and recordings differ at once);
    the report's 'Between languages' comparisons are shown as a descriptive comparison of corpora.
(3) Gender, "only negligible differences; male samples slightly more vulnerable in white-box attacks": the
    report's female - male gaps of the best configurations (Tables 47-48), tested within folds, and each gap's
    CI against the plan's equivalence margin (default ±0.10) for "negligible".
Where the files hold minimal perturbations (minimum-norm attacks: FMN, DeepFool, C&W, Boundary), the three
questions are asked again on them (``ser_attacks.report.min_norm_questions``: the median minimal perturbation
per speaker, censored segments stated, pairs of attacks, gender within folds, corpora descriptive only).

A verdict says only what the intervals support: *supported* (the data show it beyond the CI / after Holm),
*contradicted* (the data show the opposite beyond the CI / after Holm), *not shown* (intervals that include both),
*not testable* (too few speakers: no test, or a Holm family that cannot reject whatever the data), or *not
identifiable* (the design confounds the question).
With ``--plan`` each section is marked planned or exploratory.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ser_attacks.report import min_norm_questions, stats
from ser_attacks.report import plan as planmod
from ser_attacks.report.checklist import correct_pairs
from ser_attacks.report.export import load_results
from ser_attacks.report.significance import equivalence_counts, min_gender_speakers
from ser_attacks.report.tables import build_tables

PAPER_ATTACKS = ["fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary"]
WHITE_BOX = ["fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf"]
FREE = "split=speaker_cv"


def f3(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def _holm_or_reference(attack: str, p_holm) -> str:
    """A reference configuration (noise, AutoAttack) is outside every Holm family: say so instead of '–'."""
    return "reference: outside Holm" if attack in stats.REFERENCES else f3(p_holm)


def _planned(plan, question: str, measure: str = "success_rate") -> str:
    """' *(planned)*' / ' *(exploratory)*': whether the analysis plan listed this comparison."""
    return f" *({planmod.status(plan, question, measure, FREE)})*"


def ranking(best: pd.DataFrame, pooled: dict, setting: str, focus: str) -> pd.DataFrame:
    """``focus`` (jsma / pixel) vs every other paper attack on ``setting``: paired Δ **success rate on the
    segments the model classified correctly** (the same segments for both; DeepFool and untargeted Boundary move
    away from the *predicted* class, so over all segments they also turn wrong predictions right, which ranks them
    by clean accuracy, not by strength), with the all-segments adversarial accuracy beside it."""
    b = best[(best.setting == setting) & best.attack.isin(PAPER_ATTACKS)].set_index("attack")
    if focus not in b.index:
        return pd.DataFrame()
    rows = []
    for other in [a for a in PAPER_ATTACKS if a in b.index and a != focus]:
        x, y = b.loc[focus], b.loc[other]
        m = correct_pairs(pooled, x, y)
        if m is None or not len(m):                 # no per-segment data: no paired test (an empty frame says so)
            m = pd.DataFrame({"speaker": [], "recording_id": [], "flipped": [], "flipped_b": []})
            d = lo = hi = np.nan
        else:
            d, lo, hi = stats.paired_ci(m, "flipped")
        test = stats.paired_speaker_test(m, m.assign(flipped=m.flipped_b), "flipped")
        rows.append({"setting": setting, "attack": focus, "other": other, "acc": x.adv_acc, "acc_other": y.adv_acc,
                     "success": m.flipped.mean() if len(m) else np.nan,
                     "success_other": m.flipped_b.mean() if len(m) else np.nan,
                     "diff": d, "lo": lo, "hi": hi, "segments": len(m), "p": test.p, "min_p": test.min_p,
                     "test": test.text()})
    df = pd.DataFrame(rows)
    df["p_holm"] = stats.holm(df.p.to_numpy())
    return df


def rank_verdict(df: pd.DataFrame, strongest: bool) -> str:
    """Strongest = highest success rate on the correctly classified segments: supported when above every other
    attack after Holm; contradicted when some attack is above it after Holm; else not shown, saying which attacks
    tie with it (the same success on every segment), which it passes by the CI only and which by both. Weakest:
    the mirror image. Not testable when no comparison has a test, or when Holm over the comparisons cannot reject
    any whatever the data (``stats.holm_floor``: EMOVO's 6 speakers over 7 comparisons); the intervals are
    still described."""
    if df.p.isna().all():                       # no comparison has a test (too few speakers): nothing decided
        why = sorted(set(df.test.astype(str).str.removeprefix("not testable").str.strip(" ()"))) if "test" in df else []
        return "not testable" + (f" ({'; '.join(w for w in why if w)})" if any(why) else "")
    # every comparison has a test, but Holm over them cannot reject any (too few speakers for the family's size)
    floor = np.nanmin(stats.holm_floor(df.min_p.where(df.p.notna()))) if "min_p" in df else np.nan
    if floor > stats.ALPHA:
        detail = _rank_detail(df, strongest).removeprefix("not shown: ")
        return (f"not testable (smallest attainable p {df.min_p.min():.3g}, after Holm over {int(df.p.notna().sum())} "
                f"comparisons {floor:.3g} > α {stats.ALPHA}): {detail}")
    return _rank_detail(df, strongest)


def _rank_detail(df: pd.DataFrame, strongest: bool) -> str:
    """rank_verdict's verdict when the family can be tested."""
    sign = 1 if strongest else -1
    sig = df.p_holm < stats.ALPHA
    ahead = sign * df["diff"] > 0
    by_ci = (df.lo > 0) if strongest else (df.hi < 0)
    loses = sig & ~ahead
    word = "stronger" if strongest else "weaker"
    if loses.any():
        return "contradicted (" + ", ".join(f"{r.other} {word}: Δ success {r.diff:+.3f} [{r.lo:.2f}, {r.hi:.2f}], "
                                           f"p Holm {r.p_holm:.3g}" for r in df[loses].itertuples()) + ")"
    if (sig & ahead).all():
        return "supported (beyond the interval and after Holm against every other attack)"

    def names(mask):
        return ", ".join(df[mask].other)
    tied = df["diff"] == 0
    parts = []
    if tied.any():
        parts.append("tied with " + ", ".join(f"{r.other} (Δ 0 [{r.lo:.2f}, {r.hi:.2f}])"
                                              for r in df[tied].itertuples()))
    if (by_ci & ~sig).any():
        hit = df[by_ci & ~sig]
        parts.append(f"{word} than {names(by_ci & ~sig)} beyond the CI but not after Holm " + (
            f"(smallest p {hit.p.min():.3g})" if hit.p.notna().any() else
            f"({hit.test.iloc[0]})" if "test" in hit else "(not testable)"))
    if (sig & ahead).any():
        parts.append(f"{word} than {names(sig & ahead)} after Holm")
    rest = ~tied & ~by_ci & ~sig
    if rest.any():
        parts.append("not distinguishable from " + ", ".join(
            f"{r.other} (Δ {r.diff:+.3f} [{r.lo:.2f}, {r.hi:.2f}])" for r in df[rest].itertuples()))
    return "not shown: " + "; ".join(parts)


def verdict_word(text: str) -> str:
    """The verdict of a verdict sentence: supported / contradicted / not shown / not testable / ..."""
    for w in ("not identifiable", "not testable", "not shown", "not negligible", "negligible", "supported",
              "contradicted", "not measured"):
        if text.startswith(w):
            return w
    return text.split(" ")[0]


def rank_evidence(df: pd.DataFrame) -> str:
    """The numbers behind a ranking verdict, short: the range of Δ success over the other attacks and the smallest
    Holm-adjusted p."""
    p = df.p_holm.dropna()
    return (f"Δ success vs the {len(df)} others {df['diff'].min():+.2f} to {df['diff'].max():+.2f}; smallest p (Holm) "
            + (f"{p.min():.3g}" if len(p) else "–"))


def ranking_section(t, plan=None, verdicts: list | None = None) -> list[str]:
    best = t.best
    lines = ["## (1) Attack ranking: JSMA strongest, PixelAttack weakest", "",
             "Ranked on the **success rate on the segments the model classified correctly** (the share of them the "
             "attack made wrong; higher = stronger), each attack's best configuration, split=speaker_cv, folds "
             "pooled, paired on the same segments: Δ = focus − other [95% CI: cluster bootstrap over speakers; "
             "exact bound where Δ is 0 on every segment]; p: sign-flip test over speakers on |mean per-speaker Δ|; "
             "Holm over each focus attack's comparisons. The all-segments adversarial accuracy is beside it: it is "
             "not a ranking measure, since DeepFool and untargeted Boundary move away from the *predicted* class and "
             "so also turn wrong predictions right." + _planned(plan, "ranking"), ""]
    for setting in sorted(s for s in best.setting.unique() if s.endswith(f"({FREE})")):
        b = best[(best.setting == setting) & best.attack.isin(PAPER_ATTACKS)].sort_values("adv_acc")
        order = ", ".join(f"{r.attack} {r.adv_acc:.3f}" for r in b.itertuples())
        lines += [f"### {setting}", "", f"Adversarial accuracy over all segments (descriptive): {order}.", "",
                  "| focus | other | success focus / other (correct segments) | Δ success [95% CI] | segments "
                  "| p (speakers) | p (Holm) | adv acc focus / other (all segments) |",
                  "|---|---|---|---|---|---|---|---|"]
        said = []
        for focus, strongest in (("jsma", True), ("pixel", False)):
            df = ranking(best, t.samples, setting, focus)
            if df.empty:
                continue
            for r in df.itertuples():
                lines.append(f"| {r.attack} | {r.other} | {f3(r.success)} / {f3(r.success_other)} "
                             f"| {_gap(r.diff, r.lo, r.hi)} | {r.segments} | {r.test} | {f3(r.p_holm)} "
                             f"| {f3(r.acc)} / {f3(r.acc_other)} |")
            claim = "JSMA strongest" if strongest else "PixelAttack weakest"
            v = rank_verdict(df, strongest)
            said.append(f"- **{claim}:** {v}.")
            if verdicts is not None:
                verdicts.append({"question": "(1) ranking", "claim": claim, "corpus": setting, "verdict":
                                 verdict_word(v), "measure": "success rate on correct segments (paper configs)",
                                 "plan": planmod.status(plan, "ranking", "success_rate", FREE),
                                 "evidence": rank_evidence(df)})
        lines += ["", *said, ""]
    return lines


def language_section(t, plan=None) -> list[str]:
    lt = t.tests
    lines = ["## (2) Languages: no substantial difference; English most susceptible, Italian most resistant", ""]
    if lt is None or not len(lt):
        return lines + ["Only one corpus: nothing to compare.", ""]
    lt = lt[lt.a.str.endswith(f"({FREE})")]
    clean = lt[lt.attack == "clean"]
    lines += ["**Verdict: not identifiable.** There is one corpus per language, and the corpora differ in speakers, "
              "trained model, emotion set and recording conditions at once: no test on these files can attribute a "
              "difference to the language. What follows is a **descriptive** comparison of the three corpora as "
              "run here" + _planned(plan, "corpus") + ": clean accuracy, then per attack the success rate on the "
              "segments each model classified correctly (adversarial accuracy falls with clean accuracy); corpus "
              "a − corpus b, 95% CI by speakers, p permuting speakers between corpora (a corpus difference, not a "
              "language one), Holm per family (noise and AutoAttack are references, outside every family).", "",
              "| a − b | attack | clean / success a | clean / success b | Δ [95% CI] | p (speakers) | p (Holm) |",
              "|---|---|---|---|---|---|---|"]
    for r in clean.itertuples():
        lines.append(f"| {r.a} − {r.b} | clean | {f3(r.clean_acc_a)} | {f3(r.clean_acc_b)} | "
                     f"{_gap(r.clean_diff, r.clean_lo, r.clean_hi)} | {r.clean_test} | {f3(r.clean_p_holm)} |")
    for r in lt[lt.attack != "clean"].itertuples():
        lines.append(f"| {r.a} − {r.b} | {r.attack} | {f3(r.success_a)} (of {r.n_correct_a:.0f}) | "
                     f"{f3(r.success_b)} (of {r.n_correct_b:.0f}) | {_gap(r.success_diff, r.success_lo, r.success_hi)} "
                     f"| {r.success_test} | {_holm_or_reference(r.attack, r.success_p_holm)} |")
    adv = lt[lt.attack != "clean"]
    rates = {}
    for r in adv[adv.attack.isin(PAPER_ATTACKS)].itertuples():
        rates.setdefault(r.a, {})[r.attack] = r.success_a
        rates.setdefault(r.b, {})[r.attack] = r.success_b
    if rates:
        mean = {k: np.nanmean(list(v.values())) for k, v in rates.items()}
        lines += ["", "Mean success rate over the paper's attacks (best configurations; descriptive, corpora not "
                  "languages): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(mean.items(), key=lambda kv: -kv[1]))
                  + "."]
    sig = adv[adv.success_p_holm < stats.ALPHA]
    sig_clean = clean[clean.clean_p_holm < stats.ALPHA]
    lines += ["", "- **Success rate between corpora (descriptive):** " + (
        "differs after Holm for " + "; ".join(f"{r.attack}: {r.a} − {r.b} {r.success_diff:+.3f}"
                                              for r in sig.itertuples())
        if len(sig) else f"no corpus difference after Holm ({int(adv.success_p.notna().sum())} testable of "
        f"{len(adv)})") + ".",
        "- **Clean accuracy between corpora (descriptive):** " + (
        "differs after Holm for " + "; ".join(f"{r.a} − {r.b} {r.clean_diff:+.3f}" for r in sig_clean.itertuples())
        if len(sig_clean) else "no corpus difference after Holm") + ".",
        "- **The paper's claims (\"no substantial language difference\"; \"English most susceptible, Italian most "
        "resistant\"): not identifiable** from one corpus per language, whatever the corpus differences above.", ""]
    return lines


def _gap(d: float, lo: float, hi: float) -> str:
    """A female − male gap with its interval; "–" where a gender has no segment to compute it on."""
    return "–" if d != d else f"{d:+.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo == lo else "")


def gender_section(t, plan=None) -> list[str]:
    g = next((i.data for i in t.items if i.key == "table47_gender_accuracy"), None)
    lines = ["## (3) Gender: negligible differences; male slightly more vulnerable in white-box attacks", ""]
    if g is None or not len(g):
        return lines + ["No female/male comparison in these results.", ""]
    g = g[g.setting.str.endswith(f"({FREE})") & g.attack.isin(PAPER_ATTACKS)]
    lines += ["Female − male adversarial accuracy of the best configuration (report Table 47), split=speaker_cv"
              + _planned(plan, "gender", "adv_acc") + "; p permutes gender labels **within folds** (the speakers of a "
              "fold share one model): EmoDB's 5 folds of 1 F + 1 M allow 32 relabellings (smallest two-sided p 1/16), "
              "EMOVO's 3 folds of 1 + 1 (v1) 8 (1/4) and its 6 leave-one-speaker-out folds (v2) none, so these are "
              "*not testable*; RAVDESS's 6 folds of 2 + 2 allow 46,656. "
              "A positive gap = male samples more vulnerable. Beside it the success rate on the segments the model "
              "classified correctly, per gender (a gender gap in clean accuracy carries into adversarial accuracy, "
              "not into the success rate); a negative success gap = male samples more vulnerable.", "",
              "| setting | attack | adv acc female / male | female − male [95% CI] | p (speakers); Holm "
              "| success female / male | female − male [95% CI] | p (speakers); Holm |",
              "|---|---|---|---|---|---|---|---|"]
    for r in g.itertuples():
        lines.append(f"| {r.setting} | {r.attack} | {f3(r.adv_acc_female)} / {f3(r.adv_acc_male)} | "
                     f"{_gap(r.gap, r.gap_lo, r.gap_hi)} | {r.test}; {f3(r.p_holm)} | {f3(r.success_female)} / "
                     f"{f3(r.success_male)} | {_gap(r.success_diff, r.success_lo, r.success_hi)} "
                     f"| {r.success_test}; {f3(r.success_p_holm)} |")
    lines += [""]
    wb = g[g.attack.isin(WHITE_BOX)]
    widest = np.nanmax(np.abs(np.r_[g.gap_lo.to_numpy(), g.gap_hi.to_numpy()])) if len(g) else np.nan
    for what, col, male_more in (("adversarial accuracy", "gap", 1), ("success rate", "success_diff", -1)):
        p_holm = g.p_holm if col == "gap" else g.success_p_holm
        p_raw = g.p if col == "gap" else g.success_p
        sig = g[p_holm < stats.ALPHA]
        w = male_more * wb[col]
        lines += [f"- **{what.capitalize()}: significant gaps after Holm:** {len(sig)} of {int(p_raw.notna().sum())} "
                  "testable" + (": " + "; ".join(f"{r.attack} on {r.setting} {getattr(r, col):+.3f}"
                                                 for r in sig.itertuples()) if len(sig) else "") + "; "
                  f"white-box attacks with male more vulnerable: {int((w > 0).sum())} of {len(wb)}, female: "
                  f"{int((w < 0).sum())}, equal: {int((w == 0).sum())}."]
    margin = plan.equivalence_margin if plan is not None else 0.10
    for what, lo_c, hi_c in (("adversarial accuracy", "gap_lo", "gap_hi"), ("success rate", "success_lo",
                                                                           "success_hi")):
        lines.append(f"- **\"Negligible\" ({what}, equivalence margin ±{margin:g}: a gap is negligible when its "
                     f"whole CI lies inside):** {equivalence_counts(g[lo_c], g[hi_c], margin, g)} of {len(g)}.")
    lines += [f"- **Largest |CI bound| (adversarial accuracy):** {widest:.2f}.", ""]
    return lines


def planned_gender_family(rows: pd.DataFrame) -> pd.DataFrame:
    """The pre-registered gender test's rows: FMN's minimal L∞ perturbation under split=speaker_cv, one per corpus.
    ``p_holm``: Holm over those corpora alone, as study v2's design table states it ("Holm over EmoDB, RAVDESS"; a
    corpus without a p, such as EMOVO's single-speaker folds, is outside the family). ``p_holm_rule``: the report's
    value under the project's one Holm rule (``stats.FAMILY_RULE``: every attack compared on the measure, so C&W-L∞
    on the subsample too), kept beside it: the two texts, both written before the runs, name different families."""
    if not len(rows):
        return rows
    rows = rows[(rows.attack == "fmn") & rows.protocol.astype(str).str.contains(FREE)].copy()
    rows["p_holm_rule"] = rows.p_holm
    rows["p_holm"] = stats.holm(rows.p.to_numpy(float))
    return rows


def gender_verdicts(t, plan, mn_seg: pd.DataFrame) -> list[dict]:
    """Per corpus (split=speaker_cv): clean accuracy "alike" (equivalence on the plan's margin: equivalent to no
    effect / contradicted / not shown), "male more vulnerable" on adversarial accuracy of the white-box attacks
    (report Table 47: supported / contradicted after Holm, else not shown or not testable) and on the planned
    minimal L∞ perturbation (FMN; one-sided where the plan says so; not measured without minimum-norm runs)."""
    margin = plan.equivalence_margin if plan is not None else 0.10
    out = []
    clean = next((i.data for i in t.items if i.key == "table03_clean_accuracy"), None)
    free = clean[clean.setting.str.endswith(f"({FREE})")] if clean is not None else pd.DataFrame()
    for r, k in zip(free.itertuples(), min_gender_speakers(free)):
        v = planmod.negligible(r.gap_lo, r.gap_hi, margin, k)
        out.append({"question": "(3) gender", "claim": f"clean accuracy alike (±{margin:g})", "corpus": r.setting,
                    "measure": "clean accuracy, female − male", "verdict": {"negligible": "equivalent to no effect",
                                                                          "not negligible": "contradicted"}.get(v, v),
                    "plan": planmod.status(plan, "gender", "clean_acc", FREE),
                    "evidence": _gap(r.gap, r.gap_lo, r.gap_hi)
                    + (f"; {k:g} speaker{'s' if k != 1 else ''} of the smaller gender" if k is not None else "")})
    g = next((i.data for i in t.items if i.key == "table47_gender_accuracy"), None)
    if g is not None and len(g):
        g = g[g.setting.str.endswith(f"({FREE})") & g.attack.isin(WHITE_BOX)]
        for setting, sub in g.groupby("setting"):
            sig = sub[sub.p_holm < stats.ALPHA]
            v = ("contradicted" if (sig.gap < 0).any() else "supported" if len(sig) else
                 "not testable" if sub.p.isna().all() else "not shown")
            out.append({"question": "(3) gender", "claim": "male more vulnerable", "corpus": setting,
                        "measure": "adversarial accuracy, white-box, best configurations", "verdict": v,
                        "plan": planmod.status(plan, "gender", "adv_acc", FREE),
                        "evidence": f"{len(sig)} of {len(sub)} attacks with a gap after Holm"})
    rows = pd.DataFrame()
    if len(mn_seg):
        tt = min_norm_questions.tidy(mn_seg)
        if len(tt) and tt.min_linf.notna().any():
            rows = planned_gender_family(min_norm_questions.gender(
                tt, "min_linf", alternative=lambda protocol: planmod.alternative(plan, "gender", "min_linf", protocol)))
    corpora = sorted({d["corpus"] for d in out})
    for setting in corpora:
        sub = rows[rows.setting.astype(str).str.split(" (", regex=False).str[0] == setting.split(" (")[0]] \
            if len(rows) else rows
        if not len(sub):
            v, evidence = "not measured", "–"
        else:
            r = sub.iloc[0]
            v = ("not testable" if r.p != r.p else "supported" if r.p_holm < stats.ALPHA and r.gap > 0 else
                 "contradicted" if r.hi == r.hi and r.hi < 0 else "not shown")
            if v == "supported" and not r.p_holm_rule < stats.ALPHA:
                v = "supported (Holm over the corpora, as planned; not under the one Holm rule over attacks too)"
            evidence = (f"{r.gap:+.3g} σ" + (f" [{r.lo:.3g}, {r.hi:.3g}]" if r.lo == r.lo else "") + f"; {r.test}"
                        + (f"; Holm over the corpora {r.p_holm:.3g} (over attacks too: {r.p_holm_rule:.3g})"
                           if r.p_holm == r.p_holm else ""))
        out.append({"question": "(3) gender", "claim": "male more vulnerable", "corpus": setting,
                    "measure": "minimal L∞ perturbation (FMN), female − male", "verdict": v,
                    "plan": planmod.status(plan, "gender", "min_linf", FREE), "evidence": evidence})
    return out


def compare(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """Markdown table: each claim × corpus × measure, its verdict before (v1) and after (v2), with the later
    study's plan status and numbers where its verdicts carry them."""
    key = ["question", "claim", "corpus", "measure"]
    extra = [c for c in ("plan", "evidence") if c in after]
    m = before[key + ["verdict"]].merge(after[key + ["verdict", *extra]], on=key, how="outer",
                                        suffixes=("_before", "_after")).fillna("–")
    lines = ["## How the verdicts moved", "", "| question | claim | corpus | measure | before | after |"
             + "".join(f" {c} (after) |" for c in extra), "|---|---|---|---|---|---|" + "---|" * len(extra)]
    lines += [f"| {r.question} | {r.claim} | {r.corpus} | {r.measure} | {r.verdict_before} | "
              f"{'**' + r.verdict_after + '**' if r.verdict_after != r.verdict_before else r.verdict_after} |"
              + "".join(f" {getattr(r, c)} |" for c in extra)
              for r in m.sort_values(key).itertuples()]
    return lines + ["", "Bold: the verdict changed.", ""]


def label_protocols(runs) -> None:
    """Name every setting by its split protocol, also where the results hold one protocol only (the report names a
    setting by the keys that differ between its runs, so v2's first EmoDB piece was plain "emodb" and every section
    below, which selects split=speaker_cv by name, came out empty)."""
    df = runs.df
    mode = df.params.map(lambda p: p.get("split.mode") if isinstance(p, dict) else None)
    bare = ~df.setting.astype(str).str.contains("(split=", regex=False) & mode.notna()
    df.loc[bare, "setting"] = df.setting[bare].astype(str) + " (split=" + mode[bare].astype(str) + ")"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="export folders (results/study/<corpus>)")
    ap.add_argument("--out", type=Path, default=Path("recipes/study/findings.md"))
    ap.add_argument("--plan", type=Path, default=None, help="analysis plan (ser_attacks/report/plan.py): each "
                    "section is marked planned or exploratory, and its equivalence margin is used")
    ap.add_argument("--verdicts", type=Path, default=None, help="also write one verdict per claim, corpus and "
                    "measure as CSV (question, claim, corpus, measure, verdict)")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier --verdicts CSV (study v1): the findings "
                    "end with a table of how each verdict moved")
    args = ap.parse_args(argv)
    if args.compare is not None and not args.compare.is_file():
        raise SystemExit(f"error: --compare {args.compare}: no such file")
    for path, what in ((args.out, "--out"), (args.verdicts, "--verdicts")):
        if path is not None and not path.parent.is_dir():
            raise SystemExit(f"error: {what} {path}: its folder does not exist")
    plan = planmod.load(args.plan) if args.plan else None
    runs, samples = load_results(args.results)
    label_protocols(runs)
    t = build_tables(runs, samples, plan)
    md = ["# The paper's conclusions, tested", "",
          f"Made by `python recipes/study/findings.py {' '.join(map(str, args.results))} --out {args.out}"
          + (f" --plan {args.plan}" if args.plan else "") + (f" --verdicts {args.verdicts}" if args.verdicts else "")
          + (f" --compare {args.compare}" if args.compare else "") + "` from the committed per-segment files alone."
          + (f" Analysis plan: `{args.plan}`." if args.plan else " No analysis plan: every result is exploratory."),
          ""]
    verdicts: list[dict] = []
    mn_seg = min_norm_questions.load(args.results)
    md += [*ranking_section(t, plan, verdicts), *language_section(t, plan), *gender_section(t, plan),
           *min_norm_questions.section(mn_seg, plan)]
    verdicts.append({"question": "(2) languages", "claim": "no substantial difference; English most susceptible",
                     "corpus": "all", "measure": "–", "verdict": "not identifiable",
                     "plan": planmod.PLANNED if plan is not None else planmod.EXPLORATORY,
                     "evidence": "one corpus per language: speakers, model, emotions and recordings confounded"})
    verdicts += gender_verdicts(t, plan, mn_seg)
    table = pd.DataFrame(verdicts, columns=["question", "claim", "corpus", "measure", "verdict", "plan", "evidence"])
    if args.compare is not None:
        md += compare(pd.read_csv(args.compare), table)
    if args.verdicts is not None:
        table.to_csv(args.verdicts, index=False)
    args.out.write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
