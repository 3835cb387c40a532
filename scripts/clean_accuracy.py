"""Clean test accuracy of one model configuration under several split modes and seeds.

    python scripts/clean_accuracy.py --dataset emodb --splits paper recording --seeds 0 1 2 \
        --out recipes/real_corpora/clean_accuracy_emodb.json -- train.max_epochs=15

Each (split, seed) composes the Hydra config (``dataset=<d> split=<mode> seed=<s> split.seed=<s>``
plus the overrides after ``--``), prepares the data and trains the model through the normal model
cache (``get_or_train``), so every training is also an MLflow ``run_type=train`` run with its
``test_acc``. Results are written to ``--out`` after every training (a rerun reuses cached models),
and the table (mean ± sample std over seeds) is printed as Markdown. ``--table-only`` re-renders it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def table(results: list[dict]) -> str:
    import numpy as np
    lines = ["| split | seeds | test acc (mean ± std) | per seed | train / val / test segments | epochs |",
             "|---|---|---|---|---|---|"]
    for mode in dict.fromkeys(r["split"] for r in results):
        rs = sorted((r for r in results if r["split"] == mode), key=lambda r: r["seed"])
        acc = np.array([r["test_acc"] for r in rs])
        std = acc.std(ddof=1) if len(acc) > 1 else float("nan")
        sizes = ", ".join(f"{r['sizes']['train']}/{r['sizes']['val']}/{r['sizes']['test']}" for r in rs)
        lines.append(f"| {mode} | {', '.join(str(r['seed']) for r in rs)} | {acc.mean():.3f} ± {std:.3f} | "
                     f"{', '.join(f'{a:.3f}' for a in acc)} | {sizes} | {', '.join(str(r['epochs']) for r in rs)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="emodb")
    p.add_argument("--splits", nargs="+", default=["paper", "recording"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=ROOT / "recipes" / "real_corpora" / "clean_accuracy.json")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    a = p.parse_args(argv)
    results = json.loads(a.out.read_text())["results"] if a.out.exists() else []
    if a.table_only:
        print(table(results))
        return 0

    import logging

    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    from ser_attacks.cache import write_json_atomic
    from ser_attacks.data import prepare
    from ser_attacks.tracking import Tracking
    from ser_attacks.train import get_or_train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    schema.register()
    done = {(r["split"], r["seed"]) for r in results}
    for seed in a.seeds:
        for mode in a.splits:
            if (mode, seed) in done:
                continue
            overrides = [f"dataset={a.dataset}", f"split={mode}", f"seed={seed}", f"split.seed={seed}",
                         "tracking.experiment=real-corpora", *a.overrides]
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                cfg = compose("config", overrides=overrides)
            t0 = time.time()
            data = prepare(cfg, progress=False)
            tm = get_or_train(cfg, data, Tracking.from_cfg(cfg))
            results.append({"split": mode, "seed": seed, "test_acc": tm.meta["test_acc"],
                            "val_acc": tm.meta["val_acc"], "epochs": tm.meta["epochs"],
                            "train_seconds": tm.meta["train_seconds"], "wall_seconds": time.time() - t0,
                            "sizes": data.split.sizes(), "model_key": tm.key,
                            "train_run_id": tm.meta.get("train_run_id"), "overrides": overrides})
            write_json_atomic(a.out, {"command": " ".join(["python", *sys.argv]), "results": results})
            print(f"{mode} seed {seed}: test acc {tm.meta['test_acc']:.3f} "
                  f"({tm.meta['epochs']} epochs, {tm.meta['train_seconds']:.0f} s)", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
