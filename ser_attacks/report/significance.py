"""The report's *Significance* section: plain statements of which gender, language and protocol
differences are significant, family by family (each Holm-corrected on its own)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import plan as planmod
from . import stats
from .aggregate import protocol_of
from .format import fp
from .tables import Tables


def clean_gender_holm(t3: pd.DataFrame) -> np.ndarray:
    """Holm-adjusted p of the clean female − male gaps (Table 3): one family per protocol (``FAMILY_RULE``)."""
    return stats.holm_families(t3.assign(protocol=t3.setting.map(protocol_of)), "p", attack_col=None)


def protocol_holm(d: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The protocol-gap table's clean comparisons, ONE per corpus, with their Holm-adjusted p, and the adjusted p
    of its adversarial rows: two families, clean accuracy and adversarial accuracy, the reference configurations
    outside the latter (``FAMILY_RULE``). Every configuration of a corpus repeats its clean comparison, on the
    segments it attacked: the corpus's clean comparison is the one on the most segments (study v2: the whole test
    splits, as its plan states; its subsample's 8 segments per fold and seed would be a second, redundant member)."""
    n = d.segments_paper.fillna(0) + d.segments_recording.fillna(0)
    clean = d.loc[n.groupby(d.dataset, sort=False).idxmax().to_numpy()]
    return clean, stats.holm(clean.clean_acc_p.to_numpy()), stats.holm_families(d, "adv_acc_p", family_cols=())


def _not_testable(df: pd.DataFrame, label) -> str:
    """' Not testable: a; b (reason).' for the rows without a p-value."""
    nt = df[df.p.isna() & df.test.astype(str).str.startswith("not testable (")]
    return (" Not testable: " + "; ".join(f"{label(r)} ({r.test[len('not testable ('):-1]})" for r in nt.itertuples())
            + ".") if len(nt) else ""


def _intro(a: float) -> str:
    return (f"Tests at α = {a}, two-sided unless the analysis plan pre-registered a one-sided female − male "
            "alternative (then marked *one-sided, planned* beside its p; its smallest attainable p is half the "
            "two-sided one: EmoDB 1/32), with the **speaker as the unit**: each speaker's mean first (over its "
            "segments and the fold's training seeds), then the "
            "difference of the groups' means of speaker means, |T| as the statistic (T one-sided). The tests are "
            "conditional on the trained models; the intervals carry their seed spread. Female − male gaps permute "
            "gender labels **within folds** (the speakers of a fold share one trained model; exact over all "
            f"relabellings when there are at most {stats.N_PERM}); protocol gaps flip signs of per-speaker "
            f"differences. With fewer than {stats.MIN_SPEAKERS} speakers in a group, or when the design's smallest "
            f"attainable p exceeds α (EmoDB's 5 folds of 1 F + 1 M: 1/16; EMOVO's 3: 1/4), a comparison is *not "
            "testable*. Differences between corpora are **descriptive**: one corpus per language confounds "
            "speakers, model, emotion set and recording conditions, so a *language* difference is not identifiable "
            "from them, and their p-values test only \"these two corpora as run here\". Intervals: cluster "
            "bootstrap over speakers and, where a fold has several training seeds, over its seeds (drawn k of k, "
            "shared by the fold's speakers); exact bounds (≤ x) where every segment has the same outcome. Repeated "
            "runs on the same segments are averaged per segment, never counted twice. Holm: "
            + stats.FAMILY_RULE + "; read an unadjusted p < 0.05 among many tests as a lead, not a finding.")


def _side(r, prefix: str = "") -> str:
    """'; one-sided, planned: female − male < 0' for a row tested one-sided (``alternative``), else ''."""
    alt = getattr(r, f"{prefix}alternative", "two-sided")
    return f"; {stats.side_text(alt, 'female', 'male', planned=True)}" if alt in ("greater", "less") else ""


def _tag(plan, question: str, measure: str) -> str:
    """' *(planned)*' / ' *(exploratory)*': whether the analysis plan listed this question × measure."""
    return f" *({planmod.status(plan, question, measure)})*"


def _equivalence(plan, question: str, measure: str, lo, hi, table: pd.DataFrame | None = None) -> str:
    """Where the plan claims 'negligible' for this comparison: how many CIs lie within ±margin (``table``: its
    rows' speakers per gender; fewer than stats.MIN_SPEAKERS is not testable)."""
    c = plan.find(question, measure) if plan is not None else None
    if c is None or c.claim != "negligible":
        return ""
    return (f" Equivalence margin ±{plan.equivalence_margin:g} (planned claim \"negligible\"): "
            + equivalence_counts(lo, hi, plan.equivalence_margin, table) + ".")


def equivalence_counts(lo, hi, margin: float, table: pd.DataFrame | None = None) -> str:
    """'a negligible, b not negligible, c not shown (CI crosses the margin)[, d not testable (...)]' over the CIs
    (lo, hi); ``table``: their rows' speakers per gender (``min_gender_speakers``)."""
    n = min_gender_speakers(table) if table is not None else [None] * len(lo)
    v = pd.Series([planmod.negligible(x, y, margin, k) for x, y, k in zip(lo, hi, n)]).value_counts()
    return (f"{v.get('negligible', 0)} negligible, {v.get('not negligible', 0)} not negligible, "
            f"{v.get('not shown', 0)} not shown (CI crosses the margin)"
            + (f", {v['not testable']} not testable (fewer than {stats.MIN_SPEAKERS} speakers of a gender)"
               if v.get("not testable", 0) else ""))


def min_gender_speakers(table: pd.DataFrame) -> list:
    """Per row of a gender table: the speakers of its smaller gender (None where the table does not say)."""
    if not {"n_speakers_female", "n_speakers_male"} <= set(table.columns):
        return [None] * len(table)
    return list(np.fmin(table.n_speakers_female.to_numpy(float), table.n_speakers_male.to_numpy(float)))


def _clean_gender(t3: pd.DataFrame, a: float, plan=None) -> str:
    adj = clean_gender_holm(t3)
    sig = [f"{r.setting} (gap {r.gap:+.3f}, p {r.test}, Holm {fp(h)})" for r, h in zip(t3.itertuples(), adj)
           if h < a]
    tested = int(t3.p.notna().sum())
    return ("- **Clean accuracy, female vs male**" + _tag(plan, "gender", "clean_acc") + ": " + (
        "significant after Holm in " + "; ".join(sig) + "." if sig else
        f"no significant difference after Holm correction in any of {tested} testable setting(s) "
        f"(smallest unadjusted p {fp(np.nanmin(t3.p))})." if tested else "nothing testable.")
        + _not_testable(t3, lambda r: r.setting) + _equivalence(plan, "gender", "clean_acc", t3.gap_lo, t3.gap_hi, t3))


def _adversarial_gender(t47: pd.DataFrame, a: float, plan=None) -> str:
    sig = t47[t47.p_holm < a]
    raw = t47[(t47.p < a) & ~(t47.p_holm < a)]
    tested = int(t47.p.notna().sum())
    s = (f"- **Adversarial accuracy, female vs male (best configuration per attack and dataset, "
         f"{tested} testable of {len(t47)})**{_tag(plan, 'gender', 'adv_acc')}: ")
    s += ("significant after Holm for " + "; ".join(f"{r.attack} on {r.setting} (female {r.adv_acc_female:.3f} "
          f"vs male {r.adv_acc_male:.3f}, p {r.test}, Holm {fp(r.p_holm)})" for r in sig.itertuples()) + "."
          if len(sig) else ("none significant after Holm correction." if tested else "nothing testable."))
    if len(raw):
        s += (" Unadjusted p < 0.05 only: " + "; ".join(f"{r.attack} on {r.setting} (p {fp(r.p)}{_side(r)})"
                                                      for r in raw.itertuples()) + ".")
    s += _equivalence(plan, "gender", "adv_acc", t47.gap_lo, t47.gap_hi, t47)
    sig_s = t47[t47.success_p_holm < a]
    s += (f" Success rate on correctly classified segments{_tag(plan, 'gender', 'success_rate')}: "
          + ("significant after Holm for " + "; ".join(f"{r.attack} on {r.setting} (Holm {fp(r.success_p_holm)}"
                                                      f"{_side(r, 'success_')})"
                                                      for r in sig_s.itertuples()) + "." if len(sig_s)
             else "none significant after Holm.")
          + _equivalence(plan, "gender", "success_rate", t47.success_lo, t47.success_hi, t47))
    return s + _not_testable(t47, lambda r: f"{r.attack} on {r.setting}")


def _languages(lt: pd.DataFrame, a: float, plan=None) -> str:
    clean, adv = lt[lt.attack == "clean"], lt[lt.attack != "clean"]

    def sig(df, prefix, what):
        hit = df[df[f"{prefix}p_holm"] < a]
        return (f"{what} significant after Holm for " + "; ".join(
            f"{r.attack + ': ' if r.attack != 'clean' else ''}{r.a} − {r.b} = {getattr(r, prefix + 'diff'):+.3f} "
            f"[{getattr(r, prefix + 'lo'):.2f}, {getattr(r, prefix + 'hi'):.2f}], p {getattr(r, prefix + 'test')}"
            for r in hit.itertuples()) if len(hit) else f"{what} none significant after Holm")
    return (f"- **Between corpora (descriptive: a language difference is not identifiable from one corpus per "
            f"language; same protocol; clean accuracy, then per attack the best "
            f"configuration's adversarial accuracy and its success rate on correctly classified segments, "
            f"{int(adv.p.notna().sum())} testable of {len(adv)} attack comparisons, speakers permuted; table "
            f"'Between languages'):** " + sig(clean, "clean_", "clean accuracy" + _tag(plan, "corpus", "clean_acc")
                                              + ":") + "; "
            + sig(adv, "", "adversarial accuracy" + _tag(plan, "corpus", "adv_acc") + ":") + "; "
            + sig(adv, "success_", "success rate" + _tag(plan, "corpus", "success_rate") + ":") + "."
            + _not_testable(adv, lambda r: f"{r.attack} {r.a} vs {r.b}"))


def _protocol(d: pd.DataFrame, a: float, plan=None) -> str:
    clean, adj_c, adj_a = protocol_holm(d)
    n = len(clean)
    sig_c = [f"{r.dataset} (Δ {r.clean_acc_diff:+.3f}, p {fp(r.clean_acc_p)}, Holm {fp(h)})"
             for r, h in zip(clean.itertuples(), adj_c) if h < a]
    sig_a = [f"{r.dataset} {r.attack} {r.config} (Δ {r.adv_acc_diff:+.3f}, p {fp(r.adv_acc_p)}, Holm {fp(h)})"
             for r, h in zip(d.itertuples(), adj_a) if h < a]
    raw = [f"{r.dataset} clean (p {fp(r.clean_acc_p)})" for r in clean.itertuples() if r.clean_acc_p < a] + \
          [f"{r.dataset} {r.attack} {r.config} adv (p {fp(r.adv_acc_p)})" for r in d.itertuples()
           if r.adv_acc_p < a]
    untested = int(np.isnan(np.r_[clean.clean_acc_p.to_numpy(float), d.adv_acc_p.to_numpy(float)]).sum())
    return (f"- **Protocol gap (split=paper − split={d.leakage_free.iloc[0]}; {n} clean + {len(d)} adversarial "
            "comparisons; Holm within clean accuracy and within adversarial accuracy):** clean accuracy"
            + _tag(plan, "protocol", "clean_acc") + " "
            + ("differs significantly for " + "; ".join(sig_c) if sig_c else
               "shows no significant difference after Holm")
            + "; adversarial accuracy" + _tag(plan, "protocol", "adv_acc") + " "
            + ("differs significantly for " + "; ".join(sig_a) if sig_a
               else "shows no significant difference after Holm") + "."
            + (" Unadjusted p < 0.05: " + "; ".join(raw) + "." if raw and not (sig_c or sig_a) else "")
            + (f" {untested} comparison(s) not testable ({d.adv_acc_test.iloc[0]})." if untested else ""))


def significance_lines(t: Tables, n_datasets: int, plan=None) -> list[str]:
    """Plain statements of which gender / language / protocol differences are significant, each marked planned
    (listed in the analysis plan, ``report/plan.py``) or exploratory."""
    a = plan.alpha if plan is not None else stats.ALPHA
    lines = [_intro(a), "", (f"Analysis plan: `{plan.path}` ({len(plan.comparisons)} planned comparisons); results "
                             "it does not list are marked *exploratory*." if plan is not None else
                             "No analysis plan was given (`--plan`): every result below is *exploratory*."), ""]
    t3 = next((item.data for item in t.items if item.key == "table03_clean_accuracy"), None)
    if t3 is not None and len(t3):
        lines.append(_clean_gender(t3, a, plan))
    try:
        t47 = t["table47_gender_accuracy"].data
    except KeyError:
        t47 = None
    if t47 is not None and len(t47):
        lines.append(_adversarial_gender(t47, a, plan))
    lt = t.tests
    if n_datasets > 1 and lt is not None and len(lt):
        lines.append(_languages(lt, a, plan))
    elif n_datasets <= 1:
        lines.append("- **Between datasets / languages:** only one dataset in this report; nothing to compare.")
    for item in t.items:
        if item.key == "protocol_gap":
            lines.append(_protocol(item.data, a, plan))
    return lines
