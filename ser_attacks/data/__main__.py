"""``python -m ser_attacks.data describe dataset=<name> [Hydra overrides] [--no-features] [--out FILE]``

Prints (Markdown) the equivalents of the paper's Tables 8-10 for one dataset configuration:
recordings per emotion x gender, speakers per gender, duration / sample-rate / channel stats, and
recordings vs segments per split part before and after augmentation (this needs the features; they
come from the feature cache or are extracted once). ``dataset.emotions=null`` counts every emotion.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from ..paths import compose
from . import augmentations, ensure_dataset, prepare
from .corpora import DatasetError, load_corpus


def markdown(df: pd.DataFrame, index: bool = True, floatfmt: str = "{:.2f}") -> str:
    """A DataFrame as a GitHub Markdown table (no tabulate dependency)."""
    d = df.reset_index() if index else df
    def fmt(v):
        return floatfmt.format(v) if isinstance(v, float) else str(v)
    rows = [[str(c) for c in d.columns]] + [[fmt(v) for v in r] for r in d.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
                     + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def with_totals(ct: pd.DataFrame) -> pd.DataFrame:
    ct = ct.copy()
    ct["total"] = ct.sum(axis=1)
    ct.loc["total"] = ct.sum(axis=0)
    return ct


def describe_table(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Recording-level tables of a corpus table (see corpora.COLUMNS)."""
    out = {}
    ct = pd.crosstab(table.emotion, table.gender)
    out["Recordings per emotion and gender"] = with_totals(ct)
    spk = table.groupby("gender").speaker.agg(["nunique", lambda s: ", ".join(sorted(set(s)))])
    spk.columns = ["speakers", "ids"]
    spk.loc["total"] = [table.speaker.nunique(), ""]
    out["Speakers per gender"] = spk
    dur = table.groupby("gender").duration.describe()[["count", "mean", "std", "min", "50%", "max"]]
    dur.loc["all"] = table.duration.describe()[["count", "mean", "std", "min", "50%", "max"]]
    dur["count"] = dur["count"].astype(int)
    dur = dur.rename(columns={"50%": "median"})
    out["Duration (s) per gender"] = dur
    fmt = table.groupby(["sample_rate", "channels"]).size().rename("recordings").to_frame()
    out["Sample rate and channels"] = fmt
    return out


def describe_segments(data) -> pd.DataFrame:
    """Recordings / original / augmented segments per split part (after augmentation)."""
    seg = data.segments
    rows = {}
    for part in ("train", "val", "test"):
        s = seg.iloc[getattr(data.split, part)]
        orig = s.augment == "none" if "augment" in s else pd.Series(True, index=s.index)
        rows[part] = {"recordings": s.recording_id.nunique(), "original segments": int(orig.sum()),
                      "augmented segments": int((~orig).sum()), "segments": len(s),
                      "female": int((s.gender == "female").sum()), "male": int((s.gender == "male").sum())}
    df = pd.DataFrame(rows).T
    df.index.name = "part"
    df.loc["total"] = df.sum(axis=0)
    df.loc["total", "recordings"] = seg.recording_id.nunique()
    return df


def describe(cfg, features: bool = True) -> str:
    ds = cfg.dataset
    root = ensure_dataset(ds)
    # the corpus is read (and its skipped files warned about and counted) once: by prepare() when features are
    # described too, else here
    data = prepare(cfg, progress=False) if features else None
    corpus = data.corpus if data else load_corpus(ds.corpus, root, list(ds.emotions) if ds.emotions else None)
    t = corpus.table
    parts = [f"### {ds.name} ({ds.language}, {ds.corpus} layout) — root `{root}`",
             f"{len(t)} recordings kept ({corpus.n_skipped} files skipped by the loader), "
             f"{t.speaker.nunique()} speakers, emotions: {', '.join(sorted(t.emotion.unique()))}."]
    for title, df in describe_table(t).items():
        parts += [f"**{title}**", markdown(df)]
    if data is not None:
        augs = augmentations(cfg)
        parts += [f"**Recordings vs segments** (split `{cfg.split.mode}` seed {cfg.split.seed}, "
                  f"{cfg.features.segment_seconds:g} s segments, min tail {cfg.features.min_tail_seconds:g} s; "
                  f"augment `{cfg.augment.name if 'augment' in cfg else 'none'}`: "
                  f"{', '.join(a.label for a in augs) or 'none'}; {len(data.skipped)} files skipped in total)",
                  markdown(describe_segments(data))]
    return "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ser_attacks.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["describe"])
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=emodb split=paper")
    p.add_argument("--no-features", action="store_true", help="recording-level tables only (no extraction)")
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    a = p.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = compose(a.overrides)
    try:
        text = describe(cfg, features=not a.no_features)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
