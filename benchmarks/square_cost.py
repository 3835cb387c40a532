"""What attack=square costs per segment, against white-box BIM, on the same model and samples, side by side.

    python benchmarks/square_cost.py                       # final model, 8 samples, Square 100 iterations
    python benchmarks/square_cost.py --n 16 --max-iter 1000 --bim-iter 100

The model is the paper's final CNN-BLSTM (``conf/model/final.yaml``) with seeded random weights (timing does not
depend on the weights); the samples are seeded random normalized spectrograms in a clip box. Square
(``conf/attack/square.yaml``, ``--max-iter`` iterations) and BIM (``conf/attack/bim.yaml``, ``--bim-iter``
iterations) run on the same batch, alternately, ``--repeats`` times after an untimed warm-up each; medians, and
the ratio of each pair (both see the same machine load). Both attacks take the model's own predictions as labels
(every segment starts correctly classified). Square's model evaluations (``queries``) are counted: ART's loop
evaluates a segment that resists 3 times per iteration, so ``3 · (max_iter + 1)`` per restart is the most a
segment costs; the time per query then scales a run to another ``max_iter``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def attack_cfg(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[f"attack={name}", "attack.verbose=false", *overrides])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="samples attacked (one batch)")
    ap.add_argument("--max-iter", type=int, default=100, help="Square iterations")
    ap.add_argument("--bim-iter", type=int, default=100, help="BIM iterations (the paper's 100)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each attack")
    ap.add_argument("--model", default="final", help="conf/model/<name>.yaml")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import keras
    import tensorflow as tf
    from omegaconf import OmegaConf

    from ser_attacks.attacks import build_attack
    from ser_attacks.estimator import make_classifier
    from ser_attacks.machine import device_name
    from ser_attacks.train import build_model

    keras.utils.set_random_seed(args.seed)
    model = build_model(attack_cfg("square", [f"model={args.model}"]).model, (261, 128, 1), 5)
    rng = np.random.default_rng(args.seed)
    clip = (-4.0, 6.0)
    x = np.clip(rng.normal(size=(args.n, 261, 128, 1)), *clip).astype(np.float32)
    clf = make_classifier(model, 5, clip, "compiled", batch_size=64)
    square = build_attack(attack_cfg("square", [f"attack.max_iter={args.max_iter}"]).attack, clf)
    bim = build_attack(attack_cfg("bim", [f"attack.max_iter={args.bim_iter}"]).attack, clf)
    print(f"# model {args.model} ({model.count_params():,} params, random weights seed {args.seed}), {args.n} samples, "
          f"Square max_iter {args.max_iter} vs BIM max_iter {args.bim_iter}, {args.repeats} timed runs, "
          f"{device_name()}, TF {tf.__version__}, load average {os.getloadavg()[0]:.1f}", flush=True)
    conf = OmegaConf.to_container(attack_cfg("square", [f"attack.max_iter={args.max_iter}"]).attack, resolve=True)
    print(f"# square config: {({k: v for k, v in conf.items() if v is not None})}")
    times: dict[str, list[float]] = {"square": [], "bim": []}
    queries = []
    for rep in range(args.repeats + 1):                   # rep 0: warm-up (tracing), not timed
        for name, attack in (("square", square), ("bim", bim)):
            t0 = time.perf_counter()
            attack.generate(x=x)          # labels: the model's predictions (every segment starts correct)
            dt = time.perf_counter() - t0
            if rep:
                times[name].append(dt)
                if name == "square":
                    queries.append(square.queries / args.n)
            print(f"  run {rep} {name}: {dt:.2f} s" + (f", {square.queries / args.n:.0f} queries per segment"
                                                      if name == "square" else ""), flush=True)
    s, b = statistics.median(times["square"]), statistics.median(times["bim"])
    ratios = [a / c for a, c in zip(times["square"], times["bim"])]
    q = statistics.median(queries)
    print("\n| attack | s per segment (median) | queries per segment | s per query |")
    print("|---|---:|---:|---:|")
    print(f"| square max_iter={args.max_iter} | {s / args.n:.3f} | {q:.0f} | {s / args.n / q:.2e} |")
    print(f"| bim max_iter={args.bim_iter} | {b / args.n:.3f} | — | — |")
    print(f"\nsquare / bim per pair: {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f}); "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
