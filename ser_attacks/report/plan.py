"""Analysis plan: what a study commits to test *before* it runs, read by the report.

A plan is a small YAML file (format and example: docs/reports-and-statistics.md, "Analysis plan"; the study's:
``recipes/study/analysis_plan.yaml``)::

    alpha: 0.05
    equivalence_margin: 0.10        # |effect| whose whole CI lies within ±margin is "negligible"
    power: 0.8                      # for the smallest detectable effect
    pilot: [results/study/emodb]    # per-segment files the smallest detectable effects were computed from
    comparisons:
      - id: gender_adv
        question: gender            # gender | corpus | protocol | ranking
        measure: adv_acc            # clean_acc | adv_acc | success_rate | min_linf | min_l2 | min_snr_db
                                    # | success_at_budget (+ budgets: [0.01, 0.02])
        protocol: split=speaker_cv  # optional: only this protocol
        family: gender/adv_acc      # the Holm family (stats.FAMILY_RULE)
        claim: negligible           # optional: difference | negligible
        alternative: two-sided      # optional: two-sided | greater | less (T = first group − second, e.g.
                                    # female − male): a one-sided test is pre-registered here or not at all
        smallest_detectable_effect: {emodb: not testable, ravdess: 0.31}

``load(path)`` reads and checks it (one-line errors, before any heavy work); ``Plan.status(question, measure,
protocol)`` says whether a result was planned or is exploratory, and the report marks every result with it.
``smallest_detectable_effect(folders)`` computes, from a pilot's per-segment files
(``results/<study>/<corpus>/segments.csv.gz``), the smallest female − male difference the design can detect:
the speaker means' SD, the speakers per gender and fold, and the permutation design's smallest attainable p.

    python -m ser_attacks.report.plan results/study/emodb results/study/emovo results/study/ravdess
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats

QUESTIONS = ("gender", "corpus", "protocol", "ranking")
ALTERNATIVES = stats.ALTERNATIVES
MEASURES = ("clean_acc", "adv_acc", "success_rate")
# the minimal-perturbation measures (report.min_norm_questions): per speaker the median minimal perturbation of
# the correct segments (L∞, L2 in σ; SNR of the audio change in dB), and a minimum-norm attack's success at the
# fixed budgets of a comparison's ``budgets`` (σ, L∞) against fixed-budget runs on the same segments
MIN_NORM_MEASURES = ("min_linf", "min_l2", "min_snr_db", "success_at_budget")
PLANNED, EXPLORATORY = "planned", "exploratory"


@dataclass
class Comparison:
    id: str
    question: str
    measure: str
    protocol: str | None = None
    family: str = ""
    claim: str = "difference"
    smallest_detectable_effect: dict = field(default_factory=dict)
    budgets: list = field(default_factory=list)
    alternative: str = "two-sided"

    def covers(self, question: str, measure: str, protocol: str | None = None) -> bool:
        if self.question != question or self.measure != measure:
            return False
        return self.protocol is None or protocol is None or self.protocol in protocol


@dataclass
class Plan:
    path: str
    alpha: float = stats.ALPHA
    equivalence_margin: float = 0.10
    power: float = 0.8
    pilot: list = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    def find(self, question: str, measure: str, protocol: str | None = None) -> Comparison | None:
        return next((c for c in self.comparisons if c.covers(question, measure, protocol)), None)

    def status(self, question: str, measure: str, protocol: str | None = None) -> str:
        """'planned' when the plan lists this question × measure (× protocol), else 'exploratory'."""
        return PLANNED if self.find(question, measure, protocol) is not None else EXPLORATORY


def status(plan: Plan | None, question: str, measure: str, protocol: str | None = None) -> str:
    """``plan.status``; without a plan every result is exploratory."""
    return plan.status(question, measure, protocol) if plan is not None else EXPLORATORY


def alternative(plan: Plan | None, question: str, measure: str, protocol: str | None = None) -> str:
    """The alternative the plan pre-registered for this question × measure (× protocol); 'two-sided' without a
    plan or where it lists none: everything exploratory stays two-sided."""
    c = plan.find(question, measure, protocol) if plan is not None else None
    return c.alternative if c is not None else "two-sided"


def load(path) -> Plan:
    """Read and check a plan file; a clear one-line ValueError for what is wrong."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"analysis plan {path}: no such file")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"analysis plan {path}: expected a mapping at the top level")
    unknown = set(raw) - {"alpha", "equivalence_margin", "power", "pilot", "comparisons", "study", "note"}
    if unknown:
        raise ValueError(f"analysis plan {path}: unknown key(s) {sorted(unknown)}")
    comps = []
    for i, c in enumerate(raw.get("comparisons") or []):
        if not isinstance(c, dict) or "question" not in c or "measure" not in c:
            raise ValueError(f"analysis plan {path}: comparison {i} needs question and measure")
        if c["question"] not in QUESTIONS:
            raise ValueError(f"analysis plan {path}: comparison {i}: question {c['question']!r} not in {QUESTIONS}")
        if c["measure"] not in MEASURES + MIN_NORM_MEASURES:
            raise ValueError(f"analysis plan {path}: comparison {i}: measure {c['measure']!r} not in "
                             f"{MEASURES + MIN_NORM_MEASURES}")
        budgets = c.get("budgets") or []
        if not isinstance(budgets, list) or not all(isinstance(b, (int, float)) and b > 0 for b in budgets):
            raise ValueError(f"analysis plan {path}: comparison {i}: budgets must be a list of numbers > 0")
        if budgets and c["measure"] != "success_at_budget":
            raise ValueError(f"analysis plan {path}: comparison {i}: budgets belong to measure success_at_budget")
        claim = c.get("claim", "difference")
        if claim not in ("difference", "negligible"):
            raise ValueError(f"analysis plan {path}: comparison {i}: claim {claim!r} not difference / negligible")
        alternative = str(c.get("alternative", "two-sided"))
        if alternative not in ALTERNATIVES:
            raise ValueError(f"analysis plan {path}: comparison {i}: alternative {alternative!r} not in {ALTERNATIVES}")
        if alternative != "two-sided" and claim == "negligible":
            raise ValueError(f"analysis plan {path}: comparison {i}: a 'negligible' claim is an equivalence test "
                             "(two-sided by nature); state a one-sided alternative as its own comparison")
        family = str(c.get("family", f"{c['question']}/{c['measure']}"))
        sde = dict(c.get("smallest_detectable_effect") or {})
        comps.append(Comparison(id=str(c.get("id", f"c{i}")), question=c["question"], measure=c["measure"],
                                protocol=c.get("protocol"), family=family, claim=claim, smallest_detectable_effect=sde,
                                budgets=[float(b) for b in budgets], alternative=alternative))
    plan = Plan(str(path), float(raw.get("alpha", stats.ALPHA)), float(raw.get("equivalence_margin", 0.10)),
                float(raw.get("power", 0.8)), list(raw.get("pilot") or []), comps)
    if not 0 < plan.alpha < 1 or not 0 < plan.power < 1 or plan.equivalence_margin <= 0:
        raise ValueError(f"analysis plan {path}: alpha and power must lie in (0, 1), equivalence_margin > 0")
    return plan


def negligible(lo: float, hi: float, margin: float, n_speakers: float | None = None) -> str:
    """Equivalence verdict of a difference's CI against ±margin: 'negligible' (CI inside), 'not negligible'
    (CI outside on one side), 'not shown' (CI crosses the margin); 'not testable' where the smaller group has fewer
    than ``stats.MIN_SPEAKERS`` speakers (``n_speakers``): one female and one male speaker give a bootstrap
    interval of zero width, which would read as "negligible"."""
    if n_speakers is not None and n_speakers == n_speakers and n_speakers < stats.MIN_SPEAKERS:
        return "not testable"
    if lo != lo or hi != hi:
        return "not shown"
    if -margin <= lo and hi <= margin:
        return "negligible"
    if lo > margin or hi < -margin:
        return "not negligible"
    return "not shown"


# ------------------------------------------------------------------------------- smallest detectable effect
def _clean_segments(folder: Path) -> pd.DataFrame:
    """One row per distinct attacked segment of split=speaker_cv: speaker, gender, fold, clean_ok."""
    seg = pd.read_csv(Path(folder) / "segments.csv.gz", low_memory=False)
    seg = seg[seg.split.astype(str) == "speaker_cv"] if "split" in seg else seg
    key = [c for c in ("recording_id", "segment", "augment") if c in seg]
    seg = seg.assign(clean_ok=(seg.clean_pred == seg.label).astype(float))
    return seg.drop_duplicates(key)[["dataset", "speaker", "gender", "fold", "clean_ok"]]


def _design_min_p(folds: pd.Series, gender: pd.Series, alternative: str = "two-sided") -> tuple[float, int]:
    """Smallest attainable p of the within-fold permutation of gender labels, and relabellings
    (``power.Design``: one-sided 1 / relabellings, two-sided twice that where every fold is balanced)."""
    from .power import Design
    d = Design(tuple((int((g == "female").sum()), int((g != "female").sum()))
                     for _, g in gender.groupby(folds.to_numpy())))
    return d.min_p(alternative), d.relabellings


def sde_from_segments(seg: pd.DataFrame, alpha: float = stats.ALPHA, power: float = 0.8,
                      alternative: str = "two-sided") -> dict:
    """The smallest female − male difference in clean accuracy (speaker means) that a test at ``alpha``
    detects with ``power``: (z_{1-α/2} + z_power) · SD of the speaker means · sqrt(1/n_f + 1/n_m), z_{1-α} for a
    one-sided ``alternative``; 'not testable' when the within-fold permutation design cannot reach p <= alpha.
    A normal approximation from a pilot's files; ``report.power`` simulates the permutation test itself for a
    planned design (folds, segments, seeds)."""
    from scipy.stats import norm
    spk = seg.groupby("speaker").agg(gender=("gender", "first"), fold=("fold", "first"), m=("clean_ok", "mean"))
    n_f, n_m = int((spk.gender == "female").sum()), int((spk.gender == "male").sum())
    min_p, total = _design_min_p(spk.fold, spk.gender, alternative)
    sd = float(spk.groupby("gender").m.std(ddof=1).pow(2).mean() ** 0.5) if min(n_f, n_m) > 1 else np.nan
    out = {"speakers_female": n_f, "speakers_male": n_m, "relabellings": total, "min_p": round(min_p, 6),
           "sd_speaker_means": round(sd, 4) if sd == sd else None}
    if min_p > alpha or sd != sd:
        out["sde"] = "not testable"
    else:
        z = norm.ppf(1 - (alpha / 2 if alternative == "two-sided" else alpha)) + norm.ppf(power)
        out["sde"] = round(float(z * sd * np.sqrt(1 / n_f + 1 / n_m)), 3)
    return out


def smallest_detectable_effect(folders, alpha: float = stats.ALPHA, power: float = 0.8) -> dict:
    """Per corpus of the pilot's export folders: ``sde_from_segments`` of its clean accuracy."""
    out = {}
    for f in folders:
        seg = _clean_segments(Path(f))
        for ds, sub in seg.groupby("dataset"):
            out[str(ds)] = sde_from_segments(sub, alpha, power)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ser_attacks.report.plan",
                                 description="Smallest detectable female − male effect from a pilot's per-segment "
                                             "files, as YAML to paste into an analysis plan.")
    ap.add_argument("results", nargs="+", help="export folders (results/<study>/<corpus>)")
    ap.add_argument("--alpha", type=float, default=stats.ALPHA)
    ap.add_argument("--power", type=float, default=0.8)
    a = ap.parse_args(argv)
    import yaml
    res = smallest_detectable_effect(a.results, a.alpha, a.power)
    sys.stdout.write(yaml.safe_dump({"smallest_detectable_effect": res}, sort_keys=False))


if __name__ == "__main__":
    main()
