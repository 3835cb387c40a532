"""Peak memory of an attack job's data stage with a cached model: memory-mapped features vs loading them all.

    python benchmarks/data_memory.py [--repeats 3] [Hydra overrides...]
    (default overrides: dataset=emodb split=recording augment=paper → the shared EmoDB copy, train recordings
     augmented 8x; run once beforehand so the features are cached: the benchmark never extracts)

An attack job whose model is cached needs only the test rows. Each measurement is a fresh Python process
(peak RSS from ``resource.getrusage``) that runs ``prepare(cfg)`` and ``data.part("test")``:

- ``mmap``: as the code does it — cached features memory-mapped, augmented copies joined as a ``RowConcat``
  view, so only the requested rows are read;
- ``eager``: the same plus ``np.asarray(data.features.X)`` (every row in memory), i.e. the behaviour before
  memory mapping.

Both variants alternate, ``--repeats`` times each; medians and the eager/mmap ratio are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = ["dataset=emodb", "split=recording", "augment=paper"]

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, {root!r})
import numpy as np
from hydra import compose, initialize_config_dir
from ser_attacks import schema
from ser_attacks.app import CONF_DIR
from ser_attacks.data import prepare
schema.register()
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose("config", overrides={overrides!r})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
data = prepare(cfg, progress=False)
assert data.features.from_cache, "features not cached: run the benchmark's prepare once first"
if {eager!r}:
    everything = np.asarray(data.features.X)
X, y, segs = data.part("test")
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "base_mb": base / 1024,
                  "seconds": time.perf_counter() - t0, "n_rows": len(data.features.X), "n_test": len(X),
                  "row_mb": X[0].nbytes / 2**20}}))
"""


def measure(overrides: list[str], eager: bool) -> dict:
    code = CHILD.format(root=str(ROOT), overrides=overrides, eager=eager)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    overrides = DEFAULTS + a.overrides
    runs = {"mmap": [], "eager": []}
    for _ in range(a.repeats):
        for name in runs:
            runs[name].append(measure(overrides, name == "eager"))
    med = {k: statistics.median(r["peak_mb"] for r in v) for k, v in runs.items()}
    secs = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    first = runs["mmap"][0]
    print(f"Data stage of an attack job with a cached model, {' '.join(overrides)}: {first['n_rows']} segments "
          f"({first['n_rows'] * first['row_mb']:.0f} MB of features), {first['n_test']} test segments; "
          f"{os.cpu_count()} CPUs; median of {a.repeats} fresh processes each\n")
    print("| variant | peak RSS (MB) | prepare + test rows (s) |\n|---|---|---|")
    for k in runs:
        print(f"| {k} | {med[k]:.0f} | {secs[k]:.2f} |")
    print(f"\neager / mmap peak RSS = {med['eager'] / med['mmap']:.2f}x "
          f"({med['eager'] - med['mmap']:.0f} MB less with memory mapping)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"overrides": overrides, "runs": runs, "median_peak_mb": med,
                                      "median_seconds": secs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
