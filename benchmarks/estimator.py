"""Stock vs compiled ART estimator: the same attacks on the same model and samples.

    python benchmarks/estimator.py                     # default: a few minutes on 2 CPU cores
    python benchmarks/estimator.py --n 16 --repeats 5 --bim-iter 100 --attacks fgsm,bim,deepfool,cw_linf

The model is the paper's final CNN-BLSTM (``conf/model/final.yaml``, 3.96M parameters) with seeded
random weights (timing does not depend on the weights); the samples are seeded random normalized
spectrograms in the estimator's clip range. For each attack, stock and compiled runs alternate
(stock, compiled, stock, compiled, ...) after one untimed warm-up each (graph tracing), and the
medians are compared. Each pair's adversarial examples are also compared (max |diff|).

The last table relates a compiled BIM with ``--bim-iter`` iterations to ``--bim-iter`` x one
compiled forward+backward pass (``loss_gradient``) on the same batch: the closer to 1, the less
time the attack loop spends outside the model. Both estimators run the model's fast form
(``ser_attacks.fast_model``, as attack jobs do), so that floor is the faster model's forward+backward;
``benchmarks/model_speed.py`` compares the two forms.
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

# attack → overrides of its conf/attack/*.yaml for the benchmark (small where the paper's is slow). This
# benchmark compares ESTIMATORS, so it runs ART's own classes (the configs select the batched ones, which
# benchmarks/grid.py compares with ART).
ART_CLASS = ["attack.per_sample=null"]
ATTACKS = {
    "fgsm": [],
    "bim": [],                                   # max_iter from --bim-iter
    "deepfool": ["attack.max_iter=5"],
    "cw_linf": ["attack._target_=art.attacks.evasion.CarliniLInfMethod", *ART_CLASS],
    "cw_l2": ["attack.binary_search_steps=2", "attack._target_=art.attacks.evasion.CarliniL2Method"],
    "jsma": ["attack._target_=art.attacks.evasion.SaliencyMapMethod", *ART_CLASS],
}


def attack_cfg(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[f"attack={name}", "attack.verbose=false", *overrides])


def build(seed: int):
    import keras
    from omegaconf import OmegaConf

    from ser_attacks.train import build_model
    keras.utils.set_random_seed(seed)
    model_cfg = attack_cfg("fgsm", []).model
    model = build_model(model_cfg, (261, 128, 1), 5)
    return model, OmegaConf.to_container(model_cfg)["name"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="samples attacked (one batch)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per estimator and attack")
    ap.add_argument("--attacks", default="fgsm,bim,deepfool", help=f"comma list of {','.join(ATTACKS)}")
    ap.add_argument("--bim-iter", type=int, default=20, help="BIM iterations in the attack table")
    ap.add_argument("--loop-iter", type=int, default=100, help="BIM iterations for the loop-overhead table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import tensorflow as tf

    from ser_attacks.attacks import attack_labels, build_attack
    from ser_attacks.estimator import make_classifier
    from ser_attacks.fast_model import is_fast
    from ser_attacks.machine import device_name

    model, model_name = build(args.seed)
    rng = np.random.default_rng(args.seed)
    clip = (-4.0, 6.0)
    x = np.clip(rng.normal(size=(args.n, 261, 128, 1)), *clip).astype(np.float32)
    y = rng.integers(0, 5, args.n)
    clfs = {k: make_classifier(model, 5, clip, k, batch_size=max(args.n, 1)) for k in ("stock", "compiled")}
    print(f"# model {model_name} ({model.count_params():,} params, random weights seed {args.seed}), "
          f"{args.n} samples, {args.repeats} timed runs each, {device_name()}, TF {tf.__version__}, "
          f"threads intra={tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
          f"model form: {'fast' if is_fast(clfs['compiled'].model) else 'stock'}")

    rows = []
    for name in args.attacks.split(","):
        ov = list(ATTACKS[name]) + ([f"attack.max_iter={args.bim_iter}"] if name == "bim" else [])
        cfg = attack_cfg(name, ov).attack
        times = {"stock": [], "compiled": []}
        outs = {}
        for rep in range(args.repeats + 1):                  # rep 0: warm-up (tracing), not timed
            for kind in ("stock", "compiled"):
                attack = build_attack(cfg, clfs[kind])
                labels = attack_labels(attack, y, 5, args.seed)[0]
                np.random.seed(args.seed)                    # same random choices (JSMA, C&W init)
                t0 = time.perf_counter()
                outs[kind] = np.asarray(attack.generate(x=x, y=labels))
                dt = time.perf_counter() - t0
                if rep:
                    times[kind].append(dt)
        s, c = statistics.median(times["stock"]), statistics.median(times["compiled"])
        diff = float(np.abs(outs["stock"] - outs["compiled"]).max())
        shown = [o.split(".", 1)[1] for o in ov if not o.startswith(("attack._target_", "attack.per_sample"))]
        rows.append((name + (" " + " ".join(shown) if shown else ""), s, c, s / c, diff))
        print(f"  {rows[-1][0]}: stock {s:.2f} s, compiled {c:.2f} s, x{s / c:.1f}", flush=True)

    print("\n| attack | stock (s, median) | compiled (s, median) | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | **{r[3]:.1f}x** | {r[4]:.1e} |")

    # BIM loop overhead: BIM-k compiled vs k x one compiled forward+backward on the same batch, measured
    # back to back in each repeat (so both see the same machine load); ratio = median of the pairs
    comp = clfs["compiled"]
    onehot = np.eye(5, dtype=np.float32)[y]
    comp.loss_gradient(x, onehot)                                       # traced
    k = args.loop_iter
    bim = build_attack(attack_cfg("bim", [f"attack.max_iter={k}"]).attack, comp)
    pairs = []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        bim.generate(x=x, y=onehot)
        b = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(k):
            comp.loss_gradient(x, onehot)
        f = time.perf_counter() - t0
        pairs.append((b, f, b / f))
    b, f, r = (statistics.median(p[i] for p in pairs) for i in range(3))
    print(f"\n| compiled BIM-{k} (s, median) | {k} x one compiled forward+backward (s, median) "
          "| ratio (median of pairs) |")
    print("|---:|---:|---:|")
    print(f"| {b:.2f} | {f:.2f} ({f / k * 1000:.1f} ms each) | **{r:.2f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
