"""Cold vs warm feature extraction (the data stage) on a real corpus, in a fresh temporary cache.

    python benchmarks/features.py [--repeats 5] [Hydra overrides...]
    (default overrides: dataset=emodb dataset.emotions=null augment=none → all 535 shared EmoDB files)

cold = ``prepare(cfg)`` with an empty cache dir (parse the corpus, decode, resample, trim, segment,
log-Mel in ``features.n_jobs`` processes, write the cache atomically); warm = the same call again
(corpus parsed again, features loaded from the cache), median of ``--repeats`` runs. Prints a
Markdown table and the cold/warm ratio; ``--json`` writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULTS = ["dataset=emodb", "dataset.emotions=null", "augment=none"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)

    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    from ser_attacks.data import prepare
    schema.register()
    overrides = DEFAULTS + a.overrides
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=overrides + [f"paths.cache_dir={tmp}"])
        t0 = time.perf_counter()
        data = prepare(cfg, progress=False)
        cold = time.perf_counter() - t0
        assert not data.features.from_cache
        warm = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            again = prepare(cfg, progress=False)
            warm.append(time.perf_counter() - t0)
            assert again.features.from_cache and again.features.X.shape == data.features.X.shape
        size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
    med = statistics.median(warm)
    res = {"overrides": overrides, "n_recordings": int(data.segments.recording_id.nunique()),
           "n_segments": int(len(data.features.X)), "n_jobs": int(cfg.features.n_jobs),
           "cpu_count": os.cpu_count(), "cold_s": cold, "warm_s": warm, "warm_median_s": med,
           "ratio": cold / med, "cache_mb": size_mb}
    print(f"Feature extraction, {' '.join(overrides)} ({res['n_recordings']} recordings → "
          f"{res['n_segments']} segments, n_jobs={res['n_jobs']}, {res['cpu_count']} CPUs, cache {size_mb:.0f} MB)\n")
    print("| run | seconds |\n|---|---|")
    print(f"| cold (empty cache) | {cold:.2f} |")
    print(f"| warm (median of {a.repeats}) | {med:.2f} |")
    print(f"\ncold / warm = {cold / med:.1f}x")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
