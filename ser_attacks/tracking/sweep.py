"""A sweep's parent run: its id (shared with the jobs), the summary table, the description and the lines the
sweep prints when it ends."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from ..metrics import robust_note
from .notes import clip_words
from .runs import PARENT_ENV

if TYPE_CHECKING:
    import pandas as pd

PARENT_FILE = "mlflow_parent_run_id.txt"
SUMMARY_TABLE = "summary_table.json"                # a sweep's one-row-per-job table (mlflow.log_table)


def parent_run_id(sweep_dir: str | None) -> str | None:
    """The sweep's parent run id: from the environment, else from the file in the sweep folder."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    if sweep_dir and (Path(sweep_dir) / PARENT_FILE).exists():
        return (Path(sweep_dir) / PARENT_FILE).read_text().strip()
    return None


def _summary_line(run) -> str:
    m = run.data.metrics
    line = f"{run.data.tags.get('mlflow.runName', run.info.run_id):<28} {run.info.status:<9}"
    if "adv_acc" in m:
        line += (f" clean {m['clean_acc']:.3f} → adv {m['adv_acc']:.3f}"
                 f" (female {m.get('adv_acc_female', float('nan')):.3f},"
                 f" male {m.get('adv_acc_male', float('nan')):.3f}){robust_note(m)}  mean|δ| {m['perturbation']:.4g}"
                 f"  {m['attack_time_s']:.1f} s")
    if run.data.tags.get("attack_effect") == "none":
        line += "  [NO EFFECT]"
    elif run.data.tags.get("attack_effect") == "undefined":
        line += "  [EFFECT UNDEFINED: no sample was correct]"
    if run.info.status != "FINISHED" and run.data.tags.get("error"):
        line += f"  {clip_words(run.data.tags['error'], 160)}"
    return line


SUMMARY_COLUMNS = {   # summary-table column → run metric (attack jobs; training jobs use their own)
    "clean_acc": "clean_acc", "adv_acc": "adv_acc", "adv_acc_female": "adv_acc_female", "adv_acc_male": "adv_acc_male",
    "success_rate": "success_rate", "perturbation": "perturbation", "attack_time_s": "attack_time_s"}
TRAIN_COLUMNS = {"val_acc": "val_acc", "test_acc": "test_acc", "epochs": "epochs", "train_seconds": "train_seconds"}


def report_enabled(value) -> bool:
    """``report`` config: auto (default) and true build a sweep's report when it ends; false does not."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("auto", "true", "on", "yes"):
        return True
    if str(value).lower() in ("false", "off", "no", "none"):
        return False
    raise ValueError(f"report={value!r}: use report=auto (default: build the sweep's report), true or false")


def summary_table(children, earlier=()) -> "pd.DataFrame":
    """One row per job of a sweep (and per earlier run a resumed sweep reused): what the parent run's
    ``summary_table.json`` holds (``mlflow.log_table``; the UI shows it under the run's artifacts)."""
    import pandas as pd
    rows = []
    for r, reused in [(r, False) for r in children] + [(r, True) for r in earlier]:
        tags, m = r.data.tags, r.data.metrics
        kind = tags.get("run_type", "")
        row = {"job": tags.get("mlflow.runName", r.info.run_id), "run_type": kind,
               "status": "SKIPPED (finished earlier)" if reused else r.info.status,
               "attack": tags.get("attack", ""), "dataset": tags.get("dataset", ""), "model": tags.get("model", "")}
        cols = TRAIN_COLUMNS if kind.startswith("train") else SUMMARY_COLUMNS
        row.update({c: m.get(k, float("nan")) for c, k in cols.items()})
        if not kind.startswith("train"):
            row["effect"] = tags.get("attack_effect", "")
        row["error"] = tags.get("error", "")[:200] if r.info.status != "FINISHED" else ""
        row["run_id"] = r.info.run_id
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_note(table, with_report: bool) -> str:
    """The parent run's description (Markdown; the run page opens on it): the summary table, short."""
    cols = [c for c in ("job", "status", "clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation",
                        "attack_time_s", "effect", "val_acc", "test_acc")
            if c in table and table[c].astype(str).ne("").any()]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |\n"
                   for row in table[cols].itertuples(index=False))
    more = ("The full report (tables, figures, statistics) is in this run's artifacts: **report.html**. "
            if with_report else "")
    return (f"**Sweep summary** ({len(table)} jobs; {SUMMARY_TABLE} in the artifacts holds every column). {more}\n\n"
            + head + body)


def _checklist_lines(config: DictConfig, uri: str, sweep_id: str) -> list[str]:
    """The robustness checklist's verdict counts and FLAGs for the sweep's attack runs (ser_attacks.report)."""
    if config.get("mode", "attack") != "attack":
        return []
    try:
        from ..report.checklist import sweep_flags
        return sweep_flags(uri, str(config.tracking.experiment), sweep_id)
    except Exception as exc:  # noqa: BLE001 - the summary must never fail the sweep
        return [f"Robustness checklist not computed ({exc.__class__.__name__}: {exc})"]


SWEEP_FUNCTIONS = ("range(", "choice(", "interval(", "glob(", "tag(", "sort(", "shuffle(")


def swept_params(config: DictConfig) -> dict[str, str]:
    """What a sweep varies, as the parent run's params: the config's sweeper params (``hydra.sweeper.params``,
    e.g. experiment=demo), the command-line overrides with several values (``attack=fgsm,bim``), and the list
    sweeper's grid (``grid``: its override sets joined by " | ")."""
    sweeper = config.hydra.get("sweeper", {}) or {}
    out = {str(k): str(v) for k, v in (sweeper.get("params") or {}).items()}
    for o in config.hydra.overrides.task:
        key, _, value = str(o).partition("=")
        if "," in value or value.startswith(SWEEP_FUNCTIONS):
            out[key.lstrip("+~")] = value
    if sweeper.get("grid"):
        out["grid"] = " | ".join(str(g) for g in sweeper.grid)
    return out


def summary_metrics(table) -> dict[str, float]:
    """The parent run's summary metrics, from the sweep's table (``summary_table``; FINISHED and reused runs):
    ``clean_acc`` (mean over the attack jobs), per attack ``best_adv_acc_<attack>`` (the lowest adversarial
    accuracy of its jobs) and ``best_success_rate_<attack>``; for training jobs ``mean_val_acc`` and
    ``mean_test_acc``."""
    import numpy as np
    ok = table[table.status.isin(["FINISHED", "SKIPPED (finished earlier)"])] if len(table) else table
    out: dict[str, float] = {}
    att = ok[ok.run_type == "attack"] if len(ok) else ok
    if len(att) and att.clean_acc.notna().any():
        out["clean_acc"] = float(np.nanmean(att.clean_acc))
    for name, sub in (att.groupby("attack") if len(att) else []):
        if sub.adv_acc.notna().any():
            out[f"best_adv_acc_{name}"] = float(np.nanmin(sub.adv_acc))
        if "success_rate" in sub and sub.success_rate.notna().any():
            out[f"best_success_rate_{name}"] = float(np.nanmax(sub.success_rate))
    tr = ok[ok.run_type.astype(str).str.startswith("train")] if len(ok) else ok
    for k in ("val_acc", "test_acc"):
        if len(tr) and k in tr and tr[k].notna().any():
            out[f"mean_{k}"] = float(np.nanmean(tr[k]))
    return out
