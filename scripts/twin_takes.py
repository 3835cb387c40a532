"""Share of split=recording test recordings whose twin take (same speaker + text + emotion [+ intensity])
lands in train: grouped by file (before) vs by utterance (now). Reads file names only (no features).

    python scripts/twin_takes.py --corpus emodb --root /work/shared/data/emodb --seeds 0 1 2
"""
from __future__ import annotations

import argparse

import numpy as np

from ser_attacks.data.corpora import load_corpus
from ser_attacks.split import make_split


def leak(table, split) -> float:
    """Share of test recordings with another take of their utterance in train."""
    train = set(table.utterance.iloc[split.train])
    test = table.iloc[split.test]
    twins = test.utterance.map(table.utterance.value_counts()) > 1
    return float(np.mean(twins & test.utterance.isin(train)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--all-emotions", action="store_true", help="keep every emotion (default: the paper's 5)")
    a = p.parse_args()
    keep = {"emodb": ["bored", "disgust", "happy", "neutral", "sad"], "emovo": ["disgust", "fear", "happy", "neutral",
            "surprised"], "ravdess": ["disgust", "fear", "happy", "sad", "surprised"]}[a.corpus]
    table = load_corpus(a.corpus, a.root, None if a.all_emotions else keep).table.assign(segment=0)
    n_twin = int((table.utterance.map(table.utterance.value_counts()) > 1).sum())
    print(f"{a.corpus}: {len(table)} recordings, {table.utterance.nunique()} utterances, "
          f"{n_twin} recordings have a twin take")
    for seed in a.seeds:
        by_file = make_split(table.drop(columns="utterance"), "recording", 0.16, 0.2, seed)
        by_utt = make_split(table, "recording", 0.16, 0.2, seed)
        print(f"  seed {seed}: test recordings with their twin in train: by file {leak(table, by_file):.1%}, "
              f"by utterance {leak(table, by_utt):.1%}")


if __name__ == "__main__":
    main()
