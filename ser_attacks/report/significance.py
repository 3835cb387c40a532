"""The report's *Significance* section: plain statements of which gender, language and protocol
differences are significant, family by family (each Holm-corrected on its own)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .format import fp
from .tables import Tables


def _not_testable(df: pd.DataFrame, label) -> str:
    """' Not testable: a; b (reason).' for the rows without a p-value."""
    nt = df[df.p.isna() & df.test.astype(str).str.startswith("not testable (")]
    return (" Not testable: " + "; ".join(f"{label(r)} ({r.test[len('not testable ('):-1]})" for r in nt.itertuples())
            + ".") if len(nt) else ""


def _intro(a: float) -> str:
    return (f"Tests at α = {a}, two-sided, with the **speaker as the unit**: female − male gaps and dataset "
            "differences permute the group labels of speakers (exact over all relabellings when there are at most "
            f"{stats.N_PERM}), protocol gaps flip signs of per-speaker differences; with fewer than "
            f"{stats.MIN_SPEAKERS} speakers in a group a comparison is *not testable* (the design cannot tell a "
            "group difference from a difference between the few speakers). Intervals resample speakers, then "
            "recordings within speaker. Repeated runs on the same segments (seeds on one split) are averaged per "
            "segment, never counted twice; the folds of `split=speaker_cv` are pooled, so each speaker is tested "
            "once. Many gaps are tested at once, so p-values are also Holm-corrected within each family (clean "
            "gaps; adversarial gaps; dataset differences; protocol gaps); read an unadjusted p < 0.05 among many "
            "tests as a lead, not a finding.")


def _clean_gender(t3: pd.DataFrame, a: float) -> str:
    adj = stats.holm(t3.p.to_numpy())
    sig = [f"{r.setting} (gap {r.gap:+.3f}, p {r.test}, Holm {fp(h)})" for r, h in zip(t3.itertuples(), adj)
           if h < a]
    tested = int(t3.p.notna().sum())
    return ("- **Clean accuracy, female vs male:** " + (
        "significant after Holm in " + "; ".join(sig) + "." if sig else
        f"no significant difference after Holm correction in any of {tested} testable setting(s) "
        f"(smallest unadjusted p {fp(np.nanmin(t3.p))})." if tested else "nothing testable.")
        + _not_testable(t3, lambda r: r.setting))


def _adversarial_gender(t47: pd.DataFrame, a: float) -> str:
    sig = t47[t47.p_holm < a]
    raw = t47[(t47.p < a) & ~(t47.p_holm < a)]
    tested = int(t47.p.notna().sum())
    s = (f"- **Adversarial accuracy, female vs male (best configuration per attack and dataset, "
         f"{tested} testable of {len(t47)}):** ")
    s += ("significant after Holm for " + "; ".join(f"{r.attack} on {r.setting} (female {r.adv_acc_female:.3f} "
          f"vs male {r.adv_acc_male:.3f}, p {r.test}, Holm {fp(r.p_holm)})" for r in sig.itertuples()) + "."
          if len(sig) else ("none significant after Holm correction." if tested else "nothing testable."))
    if len(raw):
        s += (" Unadjusted p < 0.05 only: " + "; ".join(f"{r.attack} on {r.setting} (p {fp(r.p)})"
                                                      for r in raw.itertuples()) + ".")
    return s + _not_testable(t47, lambda r: f"{r.attack} on {r.setting}")


def _languages(lt: pd.DataFrame, a: float) -> str:
    clean, adv = lt[lt.attack == "clean"], lt[lt.attack != "clean"]

    def sig(df, prefix, what):
        hit = df[df[f"{prefix}p_holm"] < a]
        return (f"{what} significant after Holm for " + "; ".join(
            f"{r.attack + ': ' if r.attack != 'clean' else ''}{r.a} − {r.b} = {getattr(r, prefix + 'diff'):+.3f} "
            f"[{getattr(r, prefix + 'lo'):.2f}, {getattr(r, prefix + 'hi'):.2f}], p {getattr(r, prefix + 'test')}"
            for r in hit.itertuples()) if len(hit) else f"{what} none significant after Holm")
    return (f"- **Between datasets / languages (same protocol; clean accuracy, then per attack the best "
            f"configuration's adversarial accuracy and its success rate on correctly classified segments, "
            f"{int(adv.p.notna().sum())} testable of {len(adv)} attack comparisons, speakers permuted; table "
            f"'Between languages'):** " + sig(clean, "clean_", "clean accuracy:") + "; "
            + sig(adv, "", "adversarial accuracy:") + "; " + sig(adv, "success_", "success rate:") + "."
            + _not_testable(adv, lambda r: f"{r.attack} {r.a} vs {r.b}"))


def _protocol(d: pd.DataFrame, a: float) -> str:
    # the clean comparison is the same for every attack configuration of a dataset: count it once
    clean = d.drop_duplicates(["dataset", "runs_paper", "runs_recording", "clean_acc_paper",
                               "clean_acc_recording"])
    ps = np.concatenate([clean.clean_acc_p.to_numpy(), d.adv_acc_p.to_numpy()])
    adj = stats.holm(ps)
    n = len(clean)
    sig_c = [f"{r.dataset} (Δ {r.clean_acc_diff:+.3f}, p {fp(r.clean_acc_p)}, Holm {fp(h)})"
             for r, h in zip(clean.itertuples(), adj[:n]) if h < a]
    sig_a = [f"{r.dataset} {r.attack} {r.config} (Δ {r.adv_acc_diff:+.3f}, p {fp(r.adv_acc_p)}, Holm {fp(h)})"
             for r, h in zip(d.itertuples(), adj[n:]) if h < a]
    raw = [f"{r.dataset} clean (p {fp(r.clean_acc_p)})" for r in clean.itertuples() if r.clean_acc_p < a] + \
          [f"{r.dataset} {r.attack} {r.config} adv (p {fp(r.adv_acc_p)})" for r in d.itertuples()
           if r.adv_acc_p < a]
    untested = int(np.isnan(ps).sum())
    return (f"- **Protocol gap (split=paper − split={d.leakage_free.iloc[0]}; {n} clean + {len(d)} adversarial "
            "comparisons, Holm over all):** clean accuracy "
            + ("differs significantly for " + "; ".join(sig_c) if sig_c else
               "shows no significant difference after Holm")
            + "; adversarial accuracy " + ("differs significantly for " + "; ".join(sig_a) if sig_a
                                           else "shows no significant difference after Holm") + "."
            + (" Unadjusted p < 0.05: " + "; ".join(raw) + "." if raw and not (sig_c or sig_a) else "")
            + (f" {untested} comparison(s) not testable ({d.adv_acc_test.iloc[0]})." if untested else ""))


def significance_lines(t: Tables, n_datasets: int) -> list[str]:
    """Plain statements of which gender / language / protocol differences are significant."""
    a = stats.ALPHA
    lines = [_intro(a), ""]
    t3 = next((item.data for item in t.items if item.key == "table03_clean_accuracy"), None)
    if t3 is not None and len(t3):
        lines.append(_clean_gender(t3, a))
    try:
        t47 = t["table47_gender_accuracy"].data
    except KeyError:
        t47 = None
    if t47 is not None and len(t47):
        lines.append(_adversarial_gender(t47, a))
    lt = t.tests
    if n_datasets > 1 and lt is not None and len(lt):
        lines.append(_languages(lt, a))
    elif n_datasets <= 1:
        lines.append("- **Between datasets / languages:** only one dataset in this report; nothing to compare.")
    for item in t.items:
        if item.key == "protocol_gap":
            lines.append(_protocol(item.data, a))
    return lines
