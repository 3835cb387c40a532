"""``python -m ser_attacks.data.synthetic``: write a synthetic corpus from the command line."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .corpus import generate_corpus, read_manifest
from .layouts import LAYOUT_CHANNELS, LAYOUT_MAX_SPEAKERS, LAYOUT_SAMPLE_RATES, LAYOUTS


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ser_attacks.data.synthetic",
        description="Generate a deterministic synthetic emotional-speech corpus laid out "
                    "like EmoDB, EMOVO or RAVDESS.",
    )
    ap.add_argument("--root", required=True, help="output directory")
    ap.add_argument("--layout", default="emodb", choices=LAYOUTS)
    ap.add_argument("--n-speakers", type=int, default=None,
                    help="even number of speakers (default: 10, or 6 for emovo)")
    ap.add_argument("--n-sentences", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emotions", default=None,
                    help="comma-separated emotions (default: the layout's defaults)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing corpus generated with other parameters")
    ap.add_argument("--n-jobs", type=int, default=1, help="worker processes (-1: all cores)")
    args = ap.parse_args(argv)
    if args.n_speakers is None:
        args.n_speakers = min(10, LAYOUT_MAX_SPEAKERS[args.layout])
    t0 = time.perf_counter()
    try:
        paths = generate_corpus(args.root, layout=args.layout, n_speakers=args.n_speakers,
                                n_sentences=args.n_sentences, emotions=args.emotions,
                                seed=args.seed, overwrite=args.overwrite, n_jobs=args.n_jobs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = read_manifest(args.root) or {}
    total = float(m.get("total_duration_s", 0.0))
    print(f"{len(paths)} files, {args.n_speakers} speakers ({args.n_speakers // 2} male, "
          f"{args.n_speakers // 2} female), {total:.1f} s total audio, layout={args.layout} "
          f"({LAYOUT_SAMPLE_RATES[args.layout]} Hz, {LAYOUT_CHANNELS[args.layout]} ch) "
          f"in {args.root} [{time.perf_counter() - t0:.1f} s]")
    return 0
