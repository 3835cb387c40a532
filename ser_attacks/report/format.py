"""Display text of the report's tables: number and interval formatting, attack order, the cells of a
configuration row, the notes under the tables, and :class:`Table` (numbers + display text)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats
from .aggregate import SFX

MISSING = "—"
FEW = "†"          # marks an interval over fewer than stats.MIN_SPEAKERS speakers
ATTACK_ORDER = ("fgsm", "bim", "autoattack", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary", "noise")

CI_NOTE = ("95% CI: cluster bootstrap over speakers (2,000 draws); where every segment has the same outcome, "
           "the exact bound (≤ x at 0, ≥ x at 1; Clopper-Pearson on the segments); "
           f"{FEW} = fewer than {stats.MIN_SPEAKERS} speakers in that group, so the interval covers other "
           "recordings of these speakers, not other speakers.")
TEST_NOTE = (f"p: permutation test over speakers on |difference of the mean speaker means| (gender labels permuted "
             f"within folds, whose speakers share a model; exact when there are at most {stats.N_PERM} "
             f"relabellings), with the speakers per group and the smallest p that design can give; fewer than "
             f"{stats.MIN_SPEAKERS} speakers in a group, or a smallest attainable p above α: not testable.")


@dataclass
class Table:
    key: str           # file name of the CSV
    title: str
    data: pd.DataFrame      # numbers
    display: pd.DataFrame   # text
    note: str = ""


def f3(v) -> str:
    return MISSING if v is None or v != v else f"{v:.3f}"


def fnum(v) -> str:
    if v is None or v != v:
        return MISSING
    return f"{v:.4g}"


def fci(m, lo=np.nan, hi=np.nan, std=np.nan, n=1) -> str:
    if m is None or m != m:
        return MISSING
    s = f"{m:.3f}"
    if n > 1 and std == std:
        s += f" ± {std:.3f}"
    if lo == lo and hi == hi:
        if m == lo == 0 and hi > 0:                 # exact bound: every segment at 0
            s += f" [≤ {hi:.2f}]"
        elif m == hi == 1 and lo < 1:               # every segment at 1
            s += f" [≥ {lo:.2f}]"
        else:
            s += f" [{lo:.2f}, {hi:.2f}]"
    return s


def fp(p) -> str:
    if p is None or p != p:
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def attack_sort_key(a: str):
    return (ATTACK_ORDER.index(a) if a in ATTACK_ORDER else len(ATTACK_ORDER), a)


def cell(row, kind, g="all"):
    """``mean ± std [CI]`` of metric ``kind`` for gender group ``g`` of a configuration row, marked
    :data:`FEW` when the interval rests on fewer than ``stats.MIN_SPEAKERS`` speakers."""
    c = f"{kind}{SFX[g]}"
    s = fci(row[c], row.get(f"{c}_lo", np.nan), row.get(f"{c}_hi", np.nan), row.get(f"{c}_std", np.nan),
            row.get("n_reps", row["n_runs"]))
    n_spk = row.get(f"n_speakers{SFX[g]}", np.nan)
    return s + (FEW if s != MISSING and n_spk == n_spk and n_spk < stats.MIN_SPEAKERS else "")


def pert(r, g: str, unit: str = "") -> str:
    """Mean perturbation of gender group ``g`` (± std over seeds where there are several)."""
    c = f"perturbation{unit}{SFX[g]}"
    return fnum(r[c]) + (f" ± {fnum(r[f'{c}_std'])}" if r.get("n_reps", r.n_runs) > 1 and r[f"{c}_std"] == r[f"{c}_std"]
                         else "")
