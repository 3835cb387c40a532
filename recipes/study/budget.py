"""The study's budget: measured training and attack times → projected wall time per corpus and the largest
``attack.n_samples`` (segments per fold) that fits a time budget. Writes budget.json and budget.csv.

    python recipes/study/budget.py --attacks <export folder of the study_budget sweep> \
        --model-meta $SER_ATTACKS_CACHE/models/<model_key>/meta.json --epoch-seconds 155 --out recipes/study

Inputs, all measured (recipes/study/README.md "Budget" has the commands):
- ``--attacks``: ``runs.csv`` of ``python -m ser_attacks.report.export`` over the ``experiment=study_budget``
  sweep (one fold of EmoDB, the costliest configuration of each attack family, a few segments):
  ``time_per_sample_s`` per family, and the per-job overhead (data, model, metrics, logging) from the gaps
  between the jobs' start times minus their attack time.
- ``--model-meta``: the trained fold's meta.json (epochs, train_seconds, training segments).
- ``--epoch-seconds``: seconds per epoch read from the training log (the Keras "54/54 - 155s" lines).

The projection: training = folds x epochs x seconds/epoch x (training segments of the corpus's fold / EmoDB
fold 0's); attacks = per configuration, folds x min(N, test segments per fold) x the family's time per
segment (its costliest configuration: an upper bound for the others), + jobs x overhead.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

# experiment=study: configurations per attack family (conf/experiment/study.yaml)
STUDY_GRID = {"fgsm": 5, "bim": 5, "deepfool": 3, "jsma": 4, "cw_l2": 1, "cw_linf": 1, "pixel_de": 3,
              "pixel_cmaes": 3, "boundary": 1, "noise": 5, "autoattack": 1}
# a reduced grid: one configuration per attack (experiment=study_leaky's 8) + noise + AutoAttack = 10
REDUCED_GRID = {"fgsm": 1, "bim": 1, "deepfool": 1, "jsma": 1, "cw_l2": 1, "cw_linf": 1, "pixel_de": 1,
                "boundary": 1, "noise": 1, "autoattack": 1}
GRIDS = {"study": STUDY_GRID, "reduced": REDUCED_GRID}
AUGMENT_VERSIONS = 9          # augment=paper: the original + 8 versions of each training recording
# Corpora with the study's 5 emotions (conf/dataset/*.yaml emotions), recordings counted by
# `python -m ser_attacks.data describe` (recipes/study/describe_*.md); folds: ser_attacks.split.DEFAULT_FOLDS;
# speaker_cv: test = 1 fold, validation = 1 fold, training = the other k - 2 folds. One segment per recording
# (measured on EmoDB: 147 validation + test recordings gave 147 segments; segments of 3 s after trimming).
CORPORA = {"emodb": {"recordings": 339, "speakers": 10},
           "emovo": {"recordings": 420, "speakers": 6},
           "ravdess": {"recordings": 960, "speakers": 24}}


def family(attack: str, params: dict) -> str:
    if attack == "pixel":
        return "pixel_de" if str(params.get("params.attack.es")) in ("1", "1.0") else "pixel_cmaes"
    return attack


def measured_attacks(folder: Path) -> tuple[dict, float, pd.DataFrame]:
    raw = pd.read_csv(folder / "runs.csv")
    raw = raw[[c for c in raw.columns if c.startswith(("tags.", "params.attack", "start", "metrics.attack_time",
                                                       "metrics.time_per", "metrics.n_samples", "metrics.clean_acc",
                                                       "metrics.adv_acc"))]].copy()
    raw["start"] = pd.to_datetime(raw.start_time, utc=True, format="ISO8601")
    raw = raw.sort_values("start").reset_index(drop=True).copy()
    raw["family"] = [family(a, r) for a, r in zip(raw["tags.attack"], raw.to_dict("records"))]
    gaps = raw.start.diff().dt.total_seconds().shift(-1)              # job i runs from start i to start i+1
    raw["job_seconds"] = gaps
    raw["overhead_s"] = gaps - raw["metrics.attack_time_s"]
    per = raw.groupby("family")["metrics.time_per_sample_s"].max().to_dict()
    overhead = float(np.nanmedian(raw.overhead_s.iloc[1:]))            # job 0 also loads TF and the data
    cols = ["family", "tags.mlflow.runName", "metrics.n_samples", "metrics.attack_time_s",
            "metrics.time_per_sample_s", "metrics.clean_acc", "metrics.adv_acc", "job_seconds", "overhead_s",
            "tags.device"]
    return per, overhead, raw[[c for c in cols if c in raw]]


def project(per: dict, overhead: float, epoch_s: float, epochs: int, train_segments_emodb: int,
            budget_s: float, grid_n=(None, 64, 48, 32, 24, 16, 10, 8, 4), grid: str = "study") -> list[dict]:
    from ser_attacks.split import DEFAULT_FOLDS
    rows = []
    for corpus, c in CORPORA.items():
        k = DEFAULT_FOLDS[corpus]
        per_fold = c["recordings"] / k
        train_seg = per_fold * (k - 2) * AUGMENT_VERSIONS
        train_s = k * epochs * epoch_s * train_seg / train_segments_emodb
        jobs = k * sum(GRIDS[grid].values())
        per_config_segment = sum(n * per[f] for f, n in GRIDS[grid].items())   # s per segment, all configs
        for n in grid_n:
            seg = per_fold if n is None else min(n, per_fold)
            attack_s = k * seg * per_config_segment + jobs * overhead
            rows.append({"grid": grid, "configs": sum(GRIDS[grid].values()), "corpus": corpus, "folds": k,
                         "test_segments_per_fold": round(per_fold, 1),
                         "train_segments_per_fold": round(train_seg), "epochs": epochs,
                         "train_hours": round(train_s / 3600, 2), "n_samples": "all" if n is None else n,
                         "attacked_segments_per_config": round(k * seg), "jobs": jobs,
                         "attack_hours": round(attack_s / 3600, 2),
                         "total_hours": round((train_s + attack_s) / 3600, 2),
                         "fits_budget": bool(train_s + attack_s <= budget_s)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attacks", type=Path, required=True)
    p.add_argument("--model-meta", type=Path, required=True)
    p.add_argument("--epoch-seconds", type=float, required=True)
    p.add_argument("--epochs", type=int, nargs="+", default=None,
                   help="epochs per fold to project (default: the measured model's, and train.max_epochs=50)")
    p.add_argument("--budget-hours", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=Path("recipes/study"))
    a = p.parse_args(argv)
    meta = json.loads(a.model_meta.read_text())
    per, overhead, table = measured_attacks(a.attacks)
    missing = [f for f in STUDY_GRID if f not in per]
    if missing:
        raise SystemExit(f"error: {a.attacks}/runs.csv lacks attack families {missing}")
    train_segments = int(meta.get("n_train_segments", 1728))
    rows = []
    for grid in GRIDS:
        for e in (a.epochs or [int(meta["epochs"]), 50]):
            rows += project(per, overhead, a.epoch_seconds, e, train_segments, a.budget_hours * 3600, grid=grid)
    out = {"measured": {"model_epochs": meta["epochs"], "model_train_seconds": round(meta["train_seconds"], 1),
                        "model_val_acc": meta["val_acc"], "model_test_acc": meta["test_acc"],
                        "seconds_per_epoch": a.epoch_seconds, "train_segments_emodb_fold0": train_segments,
                        "attack_seconds_per_segment": {k: round(v, 4) for k, v in sorted(per.items())},
                        "overhead_seconds_per_job": round(overhead, 1),
                        "runs": table.round(4).to_dict("records")},
           "budget_hours": a.budget_hours, "grids": GRIDS, "corpora": CORPORA, "projection": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "budget.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    with open(a.out / "budget.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
