"""The report's "Measures below saturation" section: robustness curves and one-number summaries from the
minimal perturbations of minimum-norm runs (FMN, DeepFool, C&W, Boundary; ``ser_attacks.min_norm``).

Runs of one configuration (setting, attack, swept parameters) are pooled over folds and seeds: every
attacked segment counts once per run. Curves share one budget axis per norm (L∞ / L2 in σ, and the SNR of
the audio change in dB), so that attacks compare on it; the AUC's ε_max is that axis's top (the largest
finite minimal perturbation of that norm in the report, × 1.05). Leaky runs (``split=paper``) are kept apart
(their own panels, marked in the table). Writes ``tables/min_norm_summary.csv``, ``tables/min_norm_curves.csv``
and ``figures/min_norm_curves.png``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..min_norm import curve, default_grid, norm_of, snr_grid, summaries
from .collect import Runs, Samples, model_labels
from .format import FEW, attack_sort_key
from .render import md_table
from .stats import MIN_SPEAKERS

GENDERS = ("all", "female", "male")


def _leaky(params: dict) -> bool:
    return str(params.get("split.mode", params.get("split", ""))) == "paper"


def segments(runs: Runs, samples: dict[str, Samples]) -> pd.DataFrame:
    """One row per attacked segment of every minimum-norm run that logged its minimal perturbation."""
    parts = []
    models = dict(zip(runs.df.run_id, model_labels(runs.df)))
    for r in runs.df.itertuples():
        s = samples.get(r.run_id)
        kind = norm_of(r.attack, r.params.get("attack.norm"))
        if s is None or kind is None or not s.extra or f"min_{kind}" not in s.extra:
            continue
        n = len(s.label)
        speaker = s.speaker if s.speaker is not None else s.recording_id
        parts.append(pd.DataFrame({
            "run_id": r.run_id, "setting": r.setting, "leaky": _leaky(r.params), "attack": r.attack,
            "config": r.config, "norm": kind, "speaker": np.asarray(speaker).astype(str), "gender": s.gender,
            "label": s.label, "clean_pred": s.clean_pred, "r": s.extra[f"min_{kind}"],
            "snr": s.extra.get("min_snr_db", np.full(n, np.nan)),
            "fold": s.fold if s.fold is not None else np.full(n, -1), "model": models[r.run_id]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _name(attack: str, config: str) -> str:
    return attack + (f" {config}" if config and config != "default" else "")


def compute(seg: pd.DataFrame, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, summaries): per setting, attack configuration, norm, gender; curves on the σ and SNR axes."""
    curves, rows = [], []
    for kind, by_norm in seg.groupby("norm"):
        grid = default_grid(by_norm.r.to_numpy())
        snr = by_norm.snr.to_numpy()
        sgrid = snr_grid(snr) if np.isfinite(snr).any() else None
        for (setting, leaky, attack, config), g in by_norm.groupby(["setting", "leaky", "attack", "config"]):
            for gender in GENDERS:
                sub = g if gender == "all" else g[g.gender == gender]
                if not len(sub):
                    continue
                key = dict(setting=setting, leaky=leaky, attack=attack, config=config, norm=kind, gender=gender)
                for axis, budgets, col in (("sigma", grid, "r"), ("snr_db", sgrid, "snr")):
                    if budgets is None or (col == "snr" and not np.isfinite(sub.snr).any()):
                        continue
                    c = curve(sub, col, budgets, snr=axis == "snr_db", n_boot=n_boot)
                    curves.append(c.assign(**key, axis=axis))
                s = summaries(sub, "r", float(grid[-1]), n_boot=n_boot)
                ok = sub.clean_pred.to_numpy() == sub.label.to_numpy()
                rows.append({**key, "n_speakers": sub.speaker.nunique(), "n_segments": len(sub),
                             "clean_acc": float(ok.mean()), "found": float(np.isfinite(sub.r[ok]).mean()) if ok.any()
                             else np.nan, **s, "eps_max": float(grid[-1]),
                             "snr_median_db": float(np.median(sub.snr[ok])) if ok.any() else np.nan})
    return (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(), pd.DataFrame(rows))


def _fmt(v: float, lo: float, hi: float, digits: int = 3, few: bool = False) -> str:
    """``v [lo, hi]``; with ``few`` (fewer than stats.MIN_SPEAKERS speakers: a bootstrap over them says
    nothing) the point only, marked."""
    def f(x):
        return "∞" if x == np.inf else ("−∞" if x == -np.inf else (f"{x:.{digits}g}" if x == x else "–"))
    return f"{f(v)} {FEW}" if few else f"{f(v)} [{f(lo)}, {f(hi)}]"


def _snr_point(r, level: str) -> tuple[float, float, float]:
    """(value, lo, hi) of ``snr_acc<level>`` of a summary row (NaN where the runs made no audio)."""
    return tuple(getattr(r, f"snr_acc{level}{x}", np.nan) for x in ("", "_lo", "_hi"))


def table(summary: pd.DataFrame) -> pd.DataFrame:
    """The report's table: one row per setting, attack configuration, norm and gender."""
    rows = []
    for r in summary.sort_values(["leaky", "setting", "norm", "attack", "config", "gender"],
                                 key=lambda c: c.map(attack_sort_key) if c.name == "attack" else c).itertuples():
        few = r.n_speakers < MIN_SPEAKERS
        rows.append({"setting": r.setting + (" (leaky)" if r.leaky else ""), "attack": _name(r.attack, r.config),
                     "norm": {"linf": "L∞", "l2": "L2"}[r.norm], "group": r.gender, "speakers": r.n_speakers,
                     "segments": r.n_segments, "flipped (of correct)": f"{r.found:.2f}",
                     "median min. perturbation σ": _fmt(r.median, r.median_lo, r.median_hi, few=few),
                     "ε where accuracy halves": _fmt(r.eps_half, r.eps_half_lo, r.eps_half_hi, few=few),
                     "AUC": _fmt(r.auc, r.auc_lo, r.auc_hi, 2, few=few) + f" (ε_max {r.eps_max:.3g})",
                     **{f"SNR dB at {lvl} accuracy": _fmt(*_snr_point(r, k), few=few)
                        for k, lvl in (("50", "50 %"), ("0", "0 %"))},
                     "median SNR dB": f"{r.snr_median_db:.1f}" if np.isfinite(r.snr_median_db) else
                     ("∞" if r.snr_median_db == np.inf else ("−∞" if r.snr_median_db == -np.inf else "–"))})
    return pd.DataFrame(rows)


def section(runs: Runs, samples: dict[str, Samples], out: Path, n_boot: int = 1000, plan=None) -> list[str]:
    """Markdown lines of the section (empty when no run has minimal perturbations); writes its files. The
    study's questions on the minimal perturbations follow (``min_norm_questions``; ``plan``: an analysis plan)."""
    from . import figures, min_norm_questions
    seg = segments(runs, samples)
    if not len(seg):
        return []
    curves, summary = compute(seg, n_boot)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "tables" / "min_norm_summary.csv", index=False)
    curves.to_csv(out / "tables" / "min_norm_curves.csv", index=False, float_format="%.5g")
    fig = figures.min_norm_curves(curves, out / "figures" / "min_norm_curves.png")
    md = ["", "## Measures below saturation", "",
          "Minimum-norm attacks find, per segment, the smallest perturbation that changes the prediction (0 where the "
          "model is already wrong, ∞ where none was found); accuracy at budget ε is the share of segments whose "
          "minimal perturbation exceeds ε, so one run gives the whole curve from ε = 0 (clean accuracy) to "
          "saturation. Speaker level: the mean of each speaker, then across speakers; brackets and bands: 95% "
          "bootstrap over speakers. σ: the model's input unit (per-band standard deviations of the normalized "
          "log-Mel); SNR: the audio change of the minimal perturbation (resynthesized audio), in dB — budgets "
          "louder to the right. AUC: area under the accuracy curve over [0, ε_max] / ε_max. SNR dB at 50 % / 0 % "
          "accuracy: where the SNR curve first falls to that accuracy (∞: clean accuracy is already there; −∞: "
          "never, some segments were not flipped); set them beside the SNR of the fixed budgets (audio section). "
          f"{FEW}: fewer than {MIN_SPEAKERS} speakers, no interval. Leaky runs (split=paper) apart. "
          "`ser_attacks/min_norm.py`."]
    if fig is not None:
        md += ["", f"![Robustness curves from the minimal perturbations: accuracy vs budget per attack (σ and SNR "
               f"dB), all / female / male; band = 95% bootstrap over speakers](figures/{fig.name})"]
    md += ["", md_table(table(summary)).rstrip("\n"), "", "_CSV: `tables/min_norm_summary.csv`, "
           "`tables/min_norm_curves.csv`_"]
    questions = min_norm_questions.section(min_norm_questions.rows_from_runs(runs, samples), plan, level=3)
    return md + ([""] + questions if questions else [])
