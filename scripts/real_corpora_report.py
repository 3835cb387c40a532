"""Markdown evidence for recipes/real_corpora/README.md (the shared subsets in ../shared/data).

    python scripts/real_corpora_report.py [--out recipes/real_corpora/real_corpora.md]

1. per corpus and gender: recordings, speakers, durations (all emotions), and for the paper's kept
   classes the recordings and segments, with the train/val/test segments after augmentation
   (default config: split=recording seed 0, augment=paper → train recordings only are augmented);
2. recordings per emotion and gender for each corpus (all emotions; kept classes marked *);
3. the feature benchmark (recipes/real_corpora/bench_features_emodb.json from benchmarks/features.py) and the
   clean-accuracy table (recipes/real_corpora/clean_accuracy_emodb.json from scripts/clean_accuracy.py), if present.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPORA = ("emodb", "emovo", "ravdess")
RECIPE = ROOT / "recipes" / "real_corpora"      # the recipe folder: its README and result files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=RECIPE / "real_corpora.md")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every corpus")
    a = p.parse_args(argv)

    import pandas as pd
    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    from ser_attacks.data import augmentations, ensure_dataset, prepare
    from ser_attacks.data.__main__ import describe_segments, markdown
    from ser_attacks.data.corpora import load_corpus
    schema.register()

    summary, per_emotion = [], []
    for name in CORPORA:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=[f"dataset={name}", *a.overrides])
        full = load_corpus(cfg.dataset.corpus, ensure_dataset(cfg.dataset)).table
        data = prepare(cfg, progress=False)
        seg = describe_segments(data)
        s_all = data.segments
        for g in ("female", "male"):
            t = full[full.gender == g]
            kept = t[t.emotion.isin(list(cfg.dataset.emotions))]
            orig = s_all[(s_all.gender == g) & (s_all.augment == "none")]
            parts = {k: data.segments.iloc[getattr(data.split, k)] for k in ("train", "val", "test")}
            summary.append({
                "corpus": name, "gender": g, "speakers": t.speaker.nunique(), "recordings (all)": len(t),
                "duration s (mean, min–max)":
                    f"{t.duration.mean():.2f} ({t.duration.min():.2f}–{t.duration.max():.2f})",
                "recordings (kept)": len(kept), "segments (kept)": len(orig),
                "train / val / test segments": " / ".join(str(int((parts[k].gender == g).sum()))
                                                          for k in ("train", "val", "test"))})
        ct = pd.crosstab(full.emotion, full.gender)
        ct.index = [e + (" *" if e in cfg.dataset.emotions else "") for e in ct.index]
        ct.index.name = "emotion"
        ct["total"] = ct.sum(axis=1)
        ct.loc["total"] = ct.sum(axis=0)
        per_emotion.append((name, ct, seg, cfg))

    cfg0 = per_emotion[0][3]
    augs = ", ".join(x.label for x in augmentations(cfg0))
    out = ["Counts per corpus and gender (shared subsets). *kept* = the paper's 5 classes per corpus; "
           f"segments = {cfg0.features.segment_seconds:g} s segments of the trimmed 16 kHz signal (min tail "
           f"{cfg0.features.min_tail_seconds:g} s); train/val/test = default `split={cfg0.split.mode}` "
           f"(seed {cfg0.split.seed}) with `augment={cfg0.augment.name}` ({augs}) on the train recordings only.",
           markdown(pd.DataFrame(summary), index=False)]
    for name, ct, seg, _ in per_emotion:
        out += [f"**{name}: recordings per emotion and gender** (* = kept class)", markdown(ct),
                f"**{name}: recordings vs segments per split part** (kept classes, after augmentation)",
                markdown(seg)]
    bench = RECIPE / "bench_features_emodb.json"
    if bench.exists():
        b = json.loads(bench.read_text())
        out += [f"**Feature extraction, cold vs warm** (`python benchmarks/features.py`: "
                f"{' '.join(b['overrides'])}; {b['n_recordings']} recordings → {b['n_segments']} segments, "
                f"n_jobs={b['n_jobs']}, {b['cpu_count']} CPUs)",
                "| run | seconds |\n|---|---|\n"
                f"| cold (empty cache) | {b['cold_s']:.2f} |\n"
                f"| warm (median of {len(b['warm_s'])}) | {b['warm_median_s']:.2f} |\n"
                f"| ratio cold / warm | {b['ratio']:.0f}x |"]
    acc = RECIPE / "clean_accuracy_emodb.json"
    if acc.exists():
        sys.path.insert(0, str(ROOT / "scripts"))
        from clean_accuracy import table
        r = json.loads(acc.read_text())
        out += [f"**Clean test accuracy, final model, shared EmoDB** (`{r['command']}`)", table(r["results"])]
    text = "\n\n".join(out) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
