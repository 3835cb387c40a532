"""Behaviour fingerprint: a fixed-seed sweep on the embedded corpus, its metrics as JSON.

A refactoring must not change numbers. Run this before and after, then compare:

    python scripts/fingerprint.py --out before.json            # on the old tree
    python scripts/fingerprint.py --out after.json             # on the new tree
    python scripts/fingerprint.py --compare before.json after.json

The sweep (a few minutes on 2 cores) trains the tiny model once per split and attacks it with FGSM, BIM and
DeepFool, under `split=recording` and `split=speaker_cv` (fold 0) and with per-band and no clipping, so the
split, normalization, estimator, attack and metrics stages all run. Timings, run ids and paths are left out;
every other logged metric is kept. Everything lives in a temporary directory (own cache and tracking DB).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("time", "seconds", "_s")          # metric names that measure wall time
SWEEP = ["attack=fgsm,bim,deepfool", "split=recording,speaker_cv", "normalization.clip=true,false",
         "attack.eps=0.1", "attack.n_samples=24", "model=tiny", "train=fast", "train.verbose=0",
         "dataset.generate.n_speakers=6", "dataset.generate.n_sentences=3", "features.n_jobs=1",
         "progress=false", "attack.verbose=false", "report=false", "seed=0"]


def run_sweep(tmp: Path) -> dict:
    from ser_attacks.data.synthetic import generate_corpus
    corpus = tmp / "corpus"
    generate_corpus(corpus, layout="emodb", n_speakers=6, n_sentences=3, seed=0)
    db = tmp / "mlflow.db"
    cmd = [sys.executable, "-m", "ser_attacks", "-m", *SWEEP, f"dataset.root={corpus}",
           f"paths.cache_dir={tmp / 'cache'}", f"tracking.uri=sqlite:///{db}",
           f"tracking.artifact_root={tmp / 'mlruns'}", f"hydra.sweep.dir={tmp / 'multirun'}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(cmd, cwd=tmp, env=env, check=True)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{db}")
    out = {}
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id], max_results=10000):
            kind = r.data.tags.get("run_type", "")
            if kind not in ("attack", "train"):
                continue
            p = r.data.params
            name = " ".join(f"{k}={p.get(k)}" for k in ("attack.name", "split.mode", "normalization.clip", "model.name")
                            if k in p) or r.data.tags.get("mlflow.runName", "")
            metrics = {k: v for k, v in r.data.metrics.items() if not any(t in k for t in TIMING)}
            out[f"{kind}: {name}"] = dict(sorted(metrics.items()))
    return dict(sorted(out.items()))


def compare(a: dict, b: dict, tol: float) -> list[str]:
    problems = [f"only in one: {k}" for k in sorted(set(a) ^ set(b))]
    for run in sorted(set(a) & set(b)):
        for k in sorted(set(a[run]) | set(b[run])):
            x, y = a[run].get(k), b[run].get(k)
            if x is None or y is None:
                problems.append(f"{run}: {k} only in one ({x} vs {y})")
            elif not (math.isclose(x, y, rel_tol=tol, abs_tol=tol) or (math.isnan(x) and math.isnan(y))):
                problems.append(f"{run}: {k} {x} != {y}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the fingerprint here")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        problems = compare(a, b, args.tol)
        n = sum(len(v) for v in a.values())
        print("\n".join(problems) if problems else f"identical: {len(a)} runs, {n} metrics (tolerance {args.tol})")
        return 1 if problems else 0
    if not args.out:
        ap.error("--out or --compare is required")
    with tempfile.TemporaryDirectory() as tmp:
        fp = run_sweep(Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fp, indent=1))
    print(f"{len(fp)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
