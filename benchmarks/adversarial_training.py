"""The cost of adversarial training: one training step of the paper's final model (fast form, batch 32),
undefended vs each training-side defense (``ser_attacks.defenses``), side by side in one process.

    python benchmarks/adversarial_training.py                    # ~5 minutes on 2 busy cores
    python benchmarks/adversarial_training.py --repeats 7 --json recipes/defenses/adversarial_training_cost.json

Model: ``conf/model/final.yaml`` in its fast form (``ser_attacks.fast_model``, as ``train.compiled_model``
builds it: Adam, op determinism on), seeded random weights and inputs of shape (261, 128, 1) (timing does not
depend on them), a per-band clip box of ±3 σ. Each variant is its own model compiled as training compiles it
(the defended ones as ``train.training_form`` compiles ``defense.trainer``); each is traced and run once
untimed, then all variants alternate ``--repeats`` times (Keras ``train_on_batch``: one compiled step). The
table gives the median seconds per step and the median of the per-repeat ratios to the undefended step, with
the load average before and after (the machine may be shared: alternation keeps the ratios fair, not the
absolute times). Expected: a step costs about (attack steps + 1) undefended forward+backward passes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHAPE = (261, 128, 1)
N_CLASSES = 5


def variants(pgd_steps: int, eps: float) -> dict:
    """name -> defense (None: undefended); the configs' defaults at ``eps`` (σ)."""
    from ser_attacks.defenses.fast_at import FastAdversarialTraining
    from ser_attacks.defenses.fgsm_at import FGSMAdversarialTraining
    from ser_attacks.defenses.pgd_at import PGDAdversarialTraining
    from ser_attacks.defenses.trades import TRADES
    return {"undefended": None,
            "fgsm_at (ratio 0.6)": FGSMAdversarialTraining(1.25, ratio=0.6),
            "fast_at": FastAdversarialTraining(eps),
            f"pgd_at (k={pgd_steps})": PGDAdversarialTraining(eps, steps=pgd_steps),
            "trades (k=10)": TRADES(eps, steps=10)}


def trainer(defense, seed: int):
    from omegaconf import OmegaConf

    from ser_attacks.train import compile_for_training, compiled_model
    cfg = OmegaConf.load(ROOT / "conf" / "model" / "final.yaml")
    model = compiled_model(cfg, OmegaConf.create({"lr": 1e-3}), seed, SHAPE, N_CLASSES)
    if defense is None:
        return model
    box = (np.full((1, SHAPE[1], 1), -3.0, np.float32), np.full((1, SHAPE[1], 1), 3.0, np.float32))
    return compile_for_training(defense.trainer(model, box), 1e-3)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pgd-steps", type=int, default=7)
    ap.add_argument("--eps", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import tensorflow as tf

    from ser_attacks.machine import cpu_model, device_name
    res = {"device": device_name(), "cpu": cpu_model(), "cores": os.cpu_count(), "tf": tf.__version__,
           "batch": args.batch, "repeats": args.repeats, "load_before": load(),
           "command": "python benchmarks/adversarial_training.py " + " ".join(argv if argv is not None
                                                                            else sys.argv[1:])}
    print(f"# {res['device']} ({res['cpu']}), TF {res['tf']}, load {res['load_before']}", flush=True)
    rng = np.random.default_rng(args.seed)
    x = np.clip(rng.normal(size=(args.batch, *SHAPE)), -3, 3).astype(np.float32)
    y = np.eye(N_CLASSES, dtype=np.float32)[rng.integers(0, N_CLASSES, args.batch)]
    runs, attack_steps = {}, {}
    for name, defense in variants(args.pgd_steps, args.eps).items():
        t0 = time.perf_counter()
        model = trainer(defense, args.seed)
        model.train_on_batch(x, y)                           # trace + first step, untimed
        runs[name] = model
        attack_steps[name] = 0 if defense is None else defense.steps
        print(f"  {name}: traced and first step in {time.perf_counter() - t0:.1f} s", flush=True)
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, model in runs.items():
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - t0)
    base = times["undefended"]
    res["steps"] = {k: {"median_s": statistics.median(v), "ratio": statistics.median(a / b for a, b in zip(v, base)),
                        "attack_steps": attack_steps[k], "times_s": v} for k, v in times.items()}
    res["load_after"] = load()
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def report(res: dict) -> None:
    print(f"\n{res['device']} ({res['cpu']}), TF {res['tf']}; load average before {res['load_before']}, after "
          f"{res['load_after']}; final model, fast form, batch {res['batch']}; medians of {res['repeats']} "
          f"alternated repeats")
    print("\n| training step | attack steps per batch | s per step (median) | × undefended (median of pairs) |")
    print("|---|---:|---:|---:|")
    for name, r in res["steps"].items():
        print(f"| {name} | {r['attack_steps']} | {r['median_s']:.3f} | **{r['ratio']:.2f}x** |")


if __name__ == "__main__":
    raise SystemExit(main())
