"""What deterministic training costs: the demo's model (final, embedded corpus) trained with TensorFlow's op
determinism on and off, side by side.

    python benchmarks/determinism.py [--repeats 2] [--epochs 6] [--json recipes/demo/determinism_demo.json] \
        [overrides...]

Each training runs in its own process (TensorFlow's determinism switch is process-wide), alternating
deterministic / non-deterministic, all seeded alike (``keras.utils.set_random_seed``); "off" keeps
``train.deterministic`` from calling ``enable_op_determinism`` (TensorFlow has no public switch back). Early stopping
is disabled (patience > epochs) so every training runs exactly ``--epochs`` epochs. Reports seconds per epoch (median),
the ratio, and whether repeated trainings produced bit-identical weights (SHA-256 of all weights).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(mode: str, epochs: int, overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    from ser_attacks.data import prepare
    from ser_attacks.train import accuracy, compiled_model, fit, normalized_parts
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"train.max_epochs={epochs}", f"train.early_stopping_patience={epochs + 1}",
                                           f"train.reduce_lr_patience={epochs + 1}", "train.verbose=0", *overrides])
    data = prepare(cfg, progress=False)
    norm, (Xtr, ytr), (Xva, yva), _ = normalized_parts(cfg.normalization, data)
    if mode == "off":          # TensorFlow has no public switch back: keep train.deterministic from turning it on
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism = lambda: None
    # seeds (+ enable_op_determinism)
    model = compiled_model(cfg.model, cfg.train, cfg.seed, Xtr.shape[1:], len(data.classes))
    t0 = time.perf_counter()
    hist = fit(cfg.train, model, (Xtr, ytr), (Xva, yva), len(data.classes))
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    return {"mode": mode, "seconds": seconds, "epochs": len(hist.history["loss"]),
            "s_per_epoch": seconds / len(hist.history["loss"]), "val_acc": accuracy(model, Xva, yva),
            "weights_sha256": digest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--json", type=Path)
    p.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.epochs, a.overrides)))
        return 0
    runs = []
    for i in range(a.repeats):
        for mode in ("on", "off"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--epochs", str(a.epochs), *a.overrides],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = runs[-1]
            print(f"repeat {i + 1} determinism {mode:>3}: {r['seconds']:.1f} s ({r['s_per_epoch']:.2f} s/epoch), "
                  f"val acc {r['val_acc']:.3f}, weights {r['weights_sha256'][:12]}", flush=True)
    res = {"overrides": a.overrides, "epochs": a.epochs, "cpu_count": os.cpu_count(), "runs": runs}
    for mode in ("on", "off"):
        rs = [r for r in runs if r["mode"] == mode]
        res[mode] = {"s_per_epoch_median": statistics.median(r["s_per_epoch"] for r in rs),
                     "identical_weights": len({r["weights_sha256"] for r in rs}) == 1,
                     "val_acc": sorted({round(r["val_acc"], 6) for r in rs})}
    res["cost_ratio"] = res["on"]["s_per_epoch_median"] / res["off"]["s_per_epoch_median"]
    print(f"\n| op determinism | s/epoch (median of {a.repeats}) | identical weights over repeats | val acc |\n"
          f"|---|---|---|---|\n"
          + "".join(f"| {m} | {res[m]['s_per_epoch_median']:.2f} | {'yes' if res[m]['identical_weights'] else 'no'} | "
                    f"{', '.join(f'{v:.3f}' for v in res[m]['val_acc'])} |\n" for m in ("on", "off"))
          + f"\ncost: {res['cost_ratio']:.2f}x the time per epoch")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
