"""Study v2's pieces (a fold and a seed: its model trained, then attacked by the plan's configurations), timed from
the exported files alone: per piece the model's training time, the attack runs' own time, and the wall time from the
start of its training to the end of the last attack (its start, or the end of training for the job that trains its
model, + its attack time; feature extraction before training and the last job's bookkeeping are left out).
Training began at the training run's start where the model was trained inside the attack sweep
(``from_cache=false``), else (a model of experiment=study_models, logged into the study's store from the cache when
it was done) its training seconds before that.

    python recipes/study_v2/pieces.py results/study_v2/emodb results/study_v2/emovo --since 2026-12-06T20:00 \
        [--out recipes/study_v2/pieces.csv]

A training killed at a session's stop and resumed from its saved state in the next (``resumed_after_epoch``, from
models.csv) has training seconds from both processes: its wall_min counts the machine time of both, the break
between them left out (and the epoch in flight at the kill, lost, not counted); its training_began is then that many
seconds before its model was logged, not a clock time. Likewise an attack sweep killed at a stop and resumed in the
next session: a pause of more than 5 min between the end of training or of one attack job and the start of the next
(a job's own overhead is seconds) is a break, left out of wall_min and shown as break_min.

``device``: the machine that trained the model (models.csv, ``ser_attacks.machine``; blank for models trained before
2026-12-07 18:30, when it was first recorded). Times compare only within one device.

``--since``: only pieces whose training began then or later. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

BREAK_S = 300  # a pause between jobs longer than this is a break (a session's stop), not the piece's time


def pieces(folder: Path, since: pd.Timestamp | None = None) -> pd.DataFrame:
    for f in ("runs.csv", "models.csv"):
        if not (folder / f).is_file():
            raise SystemExit(f"error: {folder} holds no {f} (an export of python -m ser_attacks.report.export)")
    runs = pd.read_csv(folder / "runs.csv", usecols=lambda c: c in {
        "start_time", "tags.model_run_id", "metrics.attack_time_s", "metrics.n_samples"})
    models = pd.read_csv(folder / "models.csv", dtype={"model_run_id": str})
    runs["start"] = pd.to_datetime(runs.start_time, utc=True, format="ISO8601")
    rows = []
    for m in models.itertuples():
        r = runs[runs["tags.model_run_id"] == m.model_run_id]
        if not len(r):
            continue
        # when did training begin? A model trained by experiment=study_models is logged into the study's store by
        # its first attack job (from_cache=true) when training had ended: the piece began train_seconds before the
        # run's start. A model trained inside the attack sweep (the leaky comparison: from_cache=false) has a run
        # that starts with its training. Exports from before the column: all study_models models.
        logged = pd.Timestamp(m.start_time)
        inline = str(getattr(m, "from_cache", "")).lower() == "false"
        start = logged if inline else logged - pd.Timedelta(seconds=float(m.train_seconds))
        # pauses between the end of training (or of a job) and the next job's start; the long ones are breaks
        # No job attacks before its model is trained: the leaky comparison's first job opens its run, then trains
        # the model inside it (its attack_time_s is the attack's alone) and attacks after.
        trained = start + pd.Timedelta(seconds=float(m.train_seconds))
        r = r.assign(start=r.start.clip(lower=trained)).sort_values("start")
        r["end"] = r.start + pd.to_timedelta(r["metrics.attack_time_s"], unit="s")
        ends = pd.concat([pd.Series([trained]), r.end.iloc[:-1]])
        gaps = (r.start.to_numpy() - ends.to_numpy()) / pd.Timedelta(seconds=1)
        breaks = float(gaps[gaps > BREAK_S].sum())
        if since is not None and start < since:
            continue
        # a model of the leaky comparison (split=paper) has no fold
        fold = int(m.fold) if m.fold == m.fold else f"split={getattr(m, 'split', '?')}"
        rows.append({"dataset": m.dataset, "fold": fold, "seed": m.seed, "training_began": start.strftime("%H:%M"),
                     "epochs": m.epochs, "train_s": round(m.train_seconds),
                     "resumed_after_epoch": _epoch(getattr(m, "resumed_after_epoch", None)), "jobs": len(r),
                     "attacked_segments": int(r["metrics.n_samples"].sum()),
                     "attack_s": round(r["metrics.attack_time_s"].sum()),
                     "wall_min": round(((r.end.max() - start).total_seconds() - breaks) / 60, 1),
                     "break_min": round(breaks / 60, 1) if breaks else "",
                     "device": _text(getattr(m, "device", ""))})
    return pd.DataFrame(rows)


def _epoch(value) -> int | str:
    """models.csv's resumed_after_epoch as an integer, or "" (trained in one process; exports from before the
    column)."""
    return "" if value is None or value != value or value == "" else int(float(value))


def _text(value) -> str:
    """A models.csv text cell, or "" where blank (``device``: models trained before it was recorded)."""
    return "" if value is None or value != value else str(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="export folders (results/study_v2/<corpus>)")
    p.add_argument("--since", default=None, help="only pieces whose training began at or after this UTC time")
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    a = p.parse_args(argv)
    since = pd.Timestamp(a.since, tz="UTC") if a.since else None
    table = pd.concat([pieces(f, since) for f in a.folders], ignore_index=True)
    if not len(table):
        raise SystemExit("error: no piece (a model with attack runs) in " + ", ".join(map(str, a.folders))
                         + (f" started since {a.since}" if a.since else ""))
    if a.out:
        table.to_csv(a.out, index=False)
    cols = list(table.columns)
    sys.stdout.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
    for r in table.itertuples(index=False):
        sys.stdout.write("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r) + " |\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
