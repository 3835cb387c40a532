"""The paper's three conclusions tested on the study's committed per-segment files.

    python recipes/study/findings.py results/study/emodb results/study/emovo [...] --out recipes/study/findings.md

(1) Attack ranking, "JSMA strongest, PixelAttack weakest": per corpus (``split=speaker_cv``), each of the
    paper's seven attacks at its best configuration; JSMA and PixelAttack each compared with every other
    attack on the SAME segments (every attack of a fold attacks the same segments): paired difference of
    adversarial accuracy with a CI that resamples speakers then recordings, and a sign-flip test over speakers,
    Holm within each attack's six comparisons.
(2) Languages, "no substantial difference; English most susceptible, Italian most resistant": the report's
    'Between languages' comparisons (clean accuracy, adversarial accuracy, success rate on correctly
    classified segments), speakers as the unit.
(3) Gender, "only negligible differences; male samples slightly more vulnerable in white-box attacks": the
    report's female - male gaps of the best configurations (Tables 47-48), speakers as the unit.

A verdict says only what the intervals support: *supported* (the data show it beyond the CI / after Holm),
*contradicted* (the data show the opposite beyond the CI / after Holm), or *not testable* / *not shown*
(intervals that include both, or too few speakers).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ser_attacks.report import stats
from ser_attacks.report.checklist import paired_diff, paired_segments
from ser_attacks.report.export import load_results
from ser_attacks.report.tables import build_tables

PAPER_ATTACKS = ["fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary"]
WHITE_BOX = ["fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf"]
FREE = "split=speaker_cv"


def f3(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def ranking(best: pd.DataFrame, pooled: dict, setting: str, focus: str) -> pd.DataFrame:
    """``focus`` (jsma / pixel) vs every other paper attack on ``setting``: paired Δ adversarial accuracy."""
    b = best[(best.setting == setting) & best.attack.isin(PAPER_ATTACKS)].set_index("attack")
    if focus not in b.index:
        return pd.DataFrame()
    rows = []
    for other in [a for a in PAPER_ATTACKS if a in b.index and a != focus]:
        x, y = b.loc[focus], b.loc[other]
        m = paired_segments(pooled, x, y)
        d, lo, hi, n = paired_diff(pooled, x, y, m=m)
        if m is None:                        # no per-segment data: no paired test (an empty frame says so)
            m = pd.DataFrame({"speaker": [], "adv_ok": [], "adv_ok_b": []})
        test = stats.paired_speaker_test(m, m.assign(adv_ok=m.adv_ok_b), "adv_ok")
        rows.append({"setting": setting, "attack": focus, "other": other, "acc": x.adv_acc, "acc_other": y.adv_acc,
                     "diff": d, "lo": lo, "hi": hi, "segments": n, "p": test.p, "test": test.text()})
    df = pd.DataFrame(rows)
    df["p_holm"] = stats.holm(df.p.to_numpy())
    return df


def rank_verdict(df: pd.DataFrame, strongest: bool) -> str:
    """Strongest = lowest adversarial accuracy: supported when below every other attack after Holm;
    contradicted when some attack is below it after Holm; else not shown, saying which attacks tie with it
    (the same accuracy), which it passes by the CI only (not after Holm) and which by both."""
    sign = -1 if strongest else 1
    sig = df.p_holm < stats.ALPHA
    ahead = sign * df["diff"] > 0
    by_ci = (sign * df.lo > 0) if not strongest else (df.hi < 0)
    loses = sig & ~ahead
    if loses.any():
        return "contradicted (" + ", ".join(f"{r.other} {'lower' if strongest else 'higher'}: Δ {r.diff:+.3f} "
                                           f"[{r.lo:.2f}, {r.hi:.2f}], p Holm {r.p_holm:.3g}"
                                           for r in df[loses].itertuples()) + ")"
    if (sig & ahead).all():
        return "supported (beyond the interval and after Holm against every other attack)"

    def names(mask):
        return ", ".join(df[mask].other)
    tied = df["diff"] == 0
    parts = []
    if tied.any():
        parts.append("tied with " + ", ".join(
            r.other + ("" if r.lo == r.hi == 0 else f" (Δ 0 [{r.lo:.2f}, {r.hi:.2f}])") for r in df[tied].itertuples())
            + (" (the same accuracy on every segment)" if (df[tied].lo == df[tied].hi).all() else ""))
    if (by_ci & ~sig).any():
        parts.append(f"{'below' if strongest else 'above'} {names(by_ci & ~sig)} beyond the CI but not after Holm "
                     f"(smallest p {df[by_ci & ~sig].p.min():.3g})")
    if (sig & ahead).any():
        parts.append(f"{'below' if strongest else 'above'} {names(sig & ahead)} after Holm")
    rest = ~tied & ~by_ci & ~sig
    if rest.any():
        parts.append("not distinguishable from " + ", ".join(
            f"{r.other} (Δ {r.diff:+.3f} [{r.lo:.2f}, {r.hi:.2f}])" for r in df[rest].itertuples()))
    return "not shown: " + "; ".join(parts)


def ranking_section(t) -> list[str]:
    best = t.best
    lines = ["## (1) Attack ranking: JSMA strongest, PixelAttack weakest", "",
             "Adversarial accuracy of each attack's best configuration (lowest), split=speaker_cv, folds pooled; "
             "Δ = focus − other on the same segments [95% CI: speakers, then recordings resampled]; p: sign-flip "
             "test over speakers; Holm over each focus attack's comparisons.", ""]
    for setting in sorted(s for s in best.setting.unique() if s.endswith(f"({FREE})")):
        b = best[(best.setting == setting) & best.attack.isin(PAPER_ATTACKS)].sort_values("adv_acc")
        order = ", ".join(f"{r.attack} {r.adv_acc:.3f}" for r in b.itertuples())
        lines += [f"### {setting}", "", f"Order (lowest adversarial accuracy first): {order}.", "",
                  "| focus | other | acc focus / other | Δ [95% CI] | segments | p (speakers) | p (Holm) |",
                  "|---|---|---|---|---|---|---|"]
        verdicts = []
        for focus, strongest in (("jsma", True), ("pixel", False)):
            df = ranking(best, t.samples, setting, focus)
            if df.empty:
                continue
            for r in df.itertuples():
                lines.append(f"| {r.attack} | {r.other} | {f3(r.acc)} / {f3(r.acc_other)} | {r.diff:+.3f} "
                             f"[{r.lo:.2f}, {r.hi:.2f}] | {r.segments} | {r.test} | {f3(r.p_holm)} |")
            verdicts.append(f"- **{'JSMA strongest' if strongest else 'PixelAttack weakest'}:** "
                            + rank_verdict(df, strongest) + ".")
        lines += ["", *verdicts, ""]
    return lines


def language_section(t) -> list[str]:
    lt = t.tests
    lines = ["## (2) Languages: no substantial difference; English most susceptible, Italian most resistant", ""]
    if lt is None or not len(lt):
        return lines + ["Only one corpus: nothing to compare.", ""]
    lt = lt[lt.a.str.endswith(f"({FREE})")]
    clean = lt[lt.attack == "clean"]
    lines += ["Clean accuracy, then per attack the success rate on the segments each model classified correctly "
              "(adversarial accuracy falls with clean accuracy, so success rate compares susceptibility); corpus "
              "a − corpus b, 95% CI by speakers, p permuting speakers between corpora, Holm per family.", "",
              "| a − b | attack | clean / success a | clean / success b | Δ [95% CI] | p (speakers) | p (Holm) |",
              "|---|---|---|---|---|---|---|"]
    for r in clean.itertuples():
        lines.append(f"| {r.a} − {r.b} | clean | {f3(r.clean_acc_a)} | {f3(r.clean_acc_b)} | {r.clean_diff:+.3f} "
                     f"[{r.clean_lo:.2f}, {r.clean_hi:.2f}] | {r.clean_test} | {f3(r.clean_p_holm)} |")
    for r in lt[lt.attack != "clean"].itertuples():
        lines.append(f"| {r.a} − {r.b} | {r.attack} | {f3(r.success_a)} (of {r.n_correct_a:.0f}) | "
                     f"{f3(r.success_b)} (of {r.n_correct_b:.0f}) | {r.success_diff:+.3f} [{r.success_lo:.2f}, "
                     f"{r.success_hi:.2f}] | {r.success_test} | {f3(r.success_p_holm)} |")
    adv = lt[lt.attack != "clean"]
    rates = {}
    for r in adv[adv.attack.isin(PAPER_ATTACKS)].itertuples():
        rates.setdefault(r.a, {})[r.attack] = r.success_a
        rates.setdefault(r.b, {})[r.attack] = r.success_b
    if rates:
        mean = {k: np.nanmean(list(v.values())) for k, v in rates.items()}
        lines += ["", "Mean success rate over the paper's attacks (best configurations; descriptive): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in sorted(mean.items(), key=lambda kv: -kv[1])) + "."]
    sig = adv[adv.success_p_holm < stats.ALPHA]
    sig_clean = clean[clean.clean_p_holm < stats.ALPHA]
    lines += ["", "- **Success rate between corpora:** " + (
        "significant after Holm for " + "; ".join(f"{r.attack}: {r.a} − {r.b} {r.success_diff:+.3f}"
                                                  for r in sig.itertuples())
        if len(sig) else f"no difference significant after Holm ({int(adv.success_p.notna().sum())} testable of "
        f"{len(adv)})") + ".",
        "- **Clean accuracy between corpora:** " + (
        "significant after Holm for " + "; ".join(f"{r.a} − {r.b} {r.clean_diff:+.3f}" for r in sig_clean.itertuples())
        if len(sig_clean) else "no difference significant after Holm") + ".", ""]
    return lines


def _gap(d: float, lo: float, hi: float) -> str:
    """A female − male gap with its interval; "–" where a gender has no segment to compute it on."""
    return "–" if d != d else f"{d:+.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo == lo else "")


def gender_section(t) -> list[str]:
    g = next((i.data for i in t.items if i.key == "table47_gender_accuracy"), None)
    lines = ["## (3) Gender: negligible differences; male slightly more vulnerable in white-box attacks", ""]
    if g is None or not len(g):
        return lines + ["No female/male comparison in these results.", ""]
    g = g[g.setting.str.endswith(f"({FREE})") & g.attack.isin(PAPER_ATTACKS)]
    lines += ["Female − male adversarial accuracy of the best configuration (report Table 47), split=speaker_cv; "
              "a positive gap = male samples more vulnerable. Beside it the success rate on the segments the model "
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
    lines += [f"- **Largest |CI bound| (adversarial accuracy):** {widest:.2f}: intervals this wide cannot show that "
              "a gap is negligible.", ""]
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="export folders (results/study/<corpus>)")
    ap.add_argument("--out", type=Path, default=Path("recipes/study/findings.md"))
    args = ap.parse_args(argv)
    runs, samples = load_results(args.results)
    t = build_tables(runs, samples)
    md = ["# The paper's conclusions, tested", "",
          f"Made by `python recipes/study/findings.py {' '.join(map(str, args.results))} --out {args.out}` from "
          "the committed per-segment files alone.", "",
          *ranking_section(t), *language_section(t), *gender_section(t)]
    args.out.write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
