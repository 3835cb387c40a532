"""Train / validation / test splits (config group ``split``).

``recording`` (default): stratified by emotion x gender, every segment of a recording in one split.
``speaker``: speaker-independent, every segment of a speaker in one split.
``paper``: random per segment, as the paper did. It is LEAKY: segments of one recording (and, with
augmentation, its pitch/tempo copies) land in train and test. Kept only to measure that gap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

MODES = ("recording", "speaker", "paper")


@dataclass
class Split:
    train: np.ndarray   # segment indices
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _three_way(units: np.ndarray, strata: np.ndarray | None, val: float, test: float, seed: int):
    """Split ``units`` into train/val/test with fractions (1-val-test, val, test)."""
    def strat(s, frac):
        """``s`` when stratifying is possible, else None (random): every stratum needs 2 units and
        both sides of the cut at least one unit per stratum (sklearn's own requirement)."""
        if s is None:
            return None
        _, counts = np.unique(s, return_counts=True)
        n_small = int(np.ceil(frac * len(s)))
        if counts.min() < 2 or n_small < len(counts) or len(s) - n_small < len(counts):
            return None
        return s

    rest, te, s_rest, _ = train_test_split(units, strata if strata is not None else units,
                                           test_size=test, random_state=seed, stratify=strat(strata, test))
    tr, va = train_test_split(rest, test_size=val / (1 - test), random_state=seed + 1,
                              stratify=strat(s_rest if strata is not None else None, val / (1 - test)))
    return tr, va, te


def make_split(segments: pd.DataFrame, mode: str = "recording", val: float = 0.16,
               test: float = 0.2, seed: int = 0) -> Split:
    if mode not in MODES:
        raise ValueError(f"Unknown split mode {mode!r}; choose one of {MODES}")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"Split fractions must be in (0, 1) and val + test < 1, got val={val}, test={test}")
    if mode == "paper":
        idx = np.arange(len(segments))
        tr, va, te = _three_way(idx, segments.emotion.to_numpy(), val, test, seed)
        return Split(np.sort(tr), np.sort(va), np.sort(te))
    group_col = "recording_id" if mode == "recording" else "speaker"
    groups = segments.drop_duplicates(group_col)
    units = groups[group_col].to_numpy()
    strata = (groups.emotion + "|" + groups.gender).to_numpy() if mode == "recording" else groups.gender.to_numpy()
    if len(units) < 3:
        raise ValueError(f"Need at least 3 {group_col}s for a {mode} split, got {len(units)}")
    tr, va, te = _three_way(units, strata, val, test, seed)
    g = segments[group_col].to_numpy()
    return Split(*(np.flatnonzero(np.isin(g, part)) for part in (tr, va, te)))


def assert_no_leakage(segments: pd.DataFrame, split: Split, column: str) -> None:
    """Raise if any value of ``column`` (recording_id, speaker) appears in two splits."""
    parts = {name: set(segments[column].to_numpy()[idx]) for name, idx in
             (("train", split.train), ("val", split.val), ("test", split.test))}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = parts[a] & parts[b]
        if shared:
            raise AssertionError(f"{len(shared)} {column} values in both {a} and {b}, e.g. {sorted(shared)[:3]}")
