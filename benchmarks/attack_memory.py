"""Peak memory of an attack job: bounded by ``attack.batch_size``, not by the number of attacked segments.

    # = make bench-attack-memory
    python benchmarks/attack_memory.py --json recipes/attack_memory/bench_attack_memory_emodb.json

For every attack of the paper grid (ours, as ``conf/attack/*.yaml`` selects them, compiled estimator),
a FRESH process loads the trained model (``benchmarks/grid.py``'s default: final model, shared EmoDB),
reads ``--small`` and then ``--large`` test segments and attacks them with ``attack.batch_size`` and
``estimator.batch_size`` = ``--batch-size`` (the estimator's chunk bounds every ``predict`` of the whole
input: with its default 64, a job predicting 64 segments at once holds ~300 MB of activations of the final
model that one predicting 8 does not); its peak RSS (``VmHWM``) is read at the end. Iteration counts are cut
(memory does not grow with iterations; the settings are listed in the output) so that the runs take minutes. If
memory is bounded by the batch size, the large run needs only the extra input/output arrays (``--large - --small``
segments x 261 x 128 x 4 bytes x a few copies) more than the small one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# short versions of each attack (memory does not depend on the number of iterations)
ATTACKS = {
    "fgsm": [], "bim": ["attack.max_iter=5"], "deepfool": ["attack.max_iter=2"],
    "jsma": ["attack.gamma=0.0003"], "cw_l2": ["attack.binary_search_steps=1", "attack.max_iter=2"],
    "cw_linf": ["attack.max_iter=2", "attack.largest_const=0.002"],
    "pixel": ["attack.max_iter=1", "attack.th=1"], "boundary": ["attack.max_iter=2", "attack.init_size=5"],
}

CHILD = r"""
import sys, json, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import numpy as np
import grid
from ser_attacks.estimator import make_classifier
cfg, tm, x, y, g = grid.trained_model(grid.DEFAULT_MODEL, {n})
clf = make_classifier(tm.model, len(tm.classes), tm.normalizer.clip_values, "compiled", {est_bs})
acfg = grid.attack_cfg(grid.DEFAULT_MODEL, {attack!r}, {overrides!r} + ["attack.batch_size={bs}"], False)
out, seconds = grid.run_attack(acfg, clf, x, y, len(tm.classes), cfg.seed)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("RESULT", json.dumps({{"n": len(x), "peak_rss_mb": int(hwm) / 1024, "seconds": seconds}}))
"""


def measure(attack: str, n: int, bs: int, est_bs: int) -> dict:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), n=n, attack=attack,
                        overrides=ATTACKS[attack], bs=bs, est_bs=est_bs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{attack} n={n}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(line[0][len("RESULT "):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=8)
    ap.add_argument("--large", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--estimator-batch-size", type=int, default=None, help="default: --batch-size")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    est_bs = args.estimator_batch_size or args.batch_size
    rows = []
    mb_per_segment = 261 * 128 * 4 / 2**20
    print(f"# attack.batch_size={args.batch_size}, estimator.batch_size={est_bs}; "
          f"{args.small} vs {args.large} segments ({(args.large - args.small) * mb_per_segment:.1f} MB more input "
          "per copy); fresh process each", flush=True)
    for attack in args.attacks.split(","):
        small = measure(attack, args.small, args.batch_size, est_bs)
        large = measure(attack, args.large, args.batch_size, est_bs)
        row = {"attack": attack, "settings": ATTACKS[attack], "small": small, "large": large,
               "delta_mb": large["peak_rss_mb"] - small["peak_rss_mb"],
               "delta_mb_per_extra_segment": (large["peak_rss_mb"] - small["peak_rss_mb"]) / (large["n"] - small["n"])}
        rows.append(row)
        print(f"{attack}: {small['peak_rss_mb']:.0f} MB ({small['n']} segments) -> {large['peak_rss_mb']:.0f} MB "
              f"({large['n']}), +{row['delta_mb_per_extra_segment']:.2f} MB per extra segment", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"batch_size": args.batch_size, "estimator_batch_size": est_bs,
                                             "command": " ".join(sys.argv),
                                             "load_avg_end": os.getloadavg()[0], "time": time.ctime(),
                                             "rows": rows}, indent=1))
    print("\n| attack (short settings) | peak RSS, %d segments (MB) | peak RSS, %d segments (MB) "
          "| MB per extra segment |" % (args.small, args.large))
    print("|---|---:|---:|---:|")
    for r in rows:
        settings = " ".join(s.split(".", 1)[1] for s in r["settings"])
        print(f"| {r['attack']} {settings} | {r['small']['peak_rss_mb']:.0f} "
              f"| {r['large']['peak_rss_mb']:.0f} | {r['delta_mb_per_extra_segment']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
