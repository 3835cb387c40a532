"""Train / validation / test splits (config group ``split``).

``recording`` (default): stratified by emotion x gender, grouped by *utterance* (speaker + text +
emotion, + intensity for RAVDESS): every segment of a recording, and every take of an utterance
(EmoDB's version letters, RAVDESS's repetitions r01/r02), lands in one part.
``speaker``: speaker-independent, every segment of a speaker in one part.
``speaker_cv``: speaker-independent k-fold cross-validation, folds balanced by gender; ``split.fold``
(0 .. k-1) picks the test fold, so a sweep over the folds tests every speaker exactly once; validation is
the next fold's speakers, or with ``split.val_utterances`` a share of the training speakers' utterances;
``split.n_folds`` = the number of speakers is leave-one-speaker-out (EMOVO in experiment=study: ``STUDY_FOLDS``).
``paper``: random per segment, as the paper did. It is LEAKY: segments of one recording (and, with
augmentation, its pitch/tempo copies) land in train and test. Kept only to measure that gap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

MODES = ("recording", "speaker", "speaker_cv", "paper")
# The column whose values never cross parts, per mode (assert_no_leakage; tests).
UNIT = {"recording": "utterance", "speaker": "speaker", "speaker_cv": "speaker"}
# A mode's code revision (what its config keys do not say) is part of the model key: identity.SPLIT_REVISION.
# speaker_cv folds per corpus when ``split.n_folds`` is null (EmoBox's layouts): EmoDB 5 folds of one
# female + one male speaker, EMOVO 3 folds of 1 + 1, RAVDESS 6 folds of 2 + 2. Capped at the number of
# speakers of the rarer gender, so every fold holds at least one speaker of each gender.
DEFAULT_FOLDS = {"emodb": 5, "emovo": 3, "ravdess": 6}
# The study's folds (experiment=study, `make study`): EMOVO leave-one-speaker-out (6 folds of one speaker, validation
# from the training speakers' utterances, so 5 speakers train); EmoDB and RAVDESS as DEFAULT_FOLDS. Study v1
# (experiment=study_v1) used DEFAULT_FOLDS everywhere.
STUDY_FOLDS = {"emodb": 5, "emovo": 6, "ravdess": 6}
MIN_FOLDS = 3                        # test fold + validation fold + at least one training fold


class SplitError(ValueError):
    """A split that the data cannot give (too few speakers, a fold out of range)."""


@dataclass
class Split:
    train: np.ndarray   # segment indices
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _strata(s: np.ndarray | None, frac: float) -> np.ndarray | None:
    """``s`` when stratifying a cut of ``frac`` is possible, else None (random): every stratum needs 2 units
    and both sides of the cut at least one unit per stratum (sklearn's own requirement)."""
    if s is None:
        return None
    _, counts = np.unique(s, return_counts=True)
    n_small = int(np.ceil(frac * len(s)))
    if counts.min() < 2 or n_small < len(counts) or len(s) - n_small < len(counts):
        return None
    return s


def _three_way(units: np.ndarray, strata: np.ndarray | None, val: float, test: float, seed: int):
    """Split ``units`` into train/val/test with fractions (1-val-test, val, test)."""
    rest, te, s_rest, _ = train_test_split(units, strata if strata is not None else units,
                                           test_size=test, random_state=seed, stratify=_strata(strata, test))
    tr, va = train_test_split(rest, test_size=val / (1 - test), random_state=seed + 1,
                              stratify=_strata(s_rest if strata is not None else None, val / (1 - test)))
    return tr, va, te


def speaker_folds(segments: pd.DataFrame, n_folds: int | None = None, seed: int = 0,
                  min_folds: int = MIN_FOLDS) -> list[list[str]]:
    """The speakers of each fold of ``speaker_cv``, balanced by gender.

    The speakers of each gender, sorted by id and shuffled with ``seed``, are dealt round-robin to the
    folds: with 5 female and 5 male speakers and 5 folds, every fold holds one of each. ``n_folds=None``
    takes ``DEFAULT_FOLDS`` of the corpus (else the number of speakers of the rarer gender), capped at
    that number.

    ``n_folds`` = the number of speakers: leave-one-speaker-out, one speaker per fold (genders alternating, each
    gender's speakers shuffled with ``seed``); such folds cannot be gender-balanced, the pooled folds are."""
    spk = segments.drop_duplicates("speaker")[["speaker", "gender"]].sort_values("speaker")
    by_gender = {g: sub.speaker.to_numpy() for g, sub in spk.groupby("gender", sort=True)}
    fewest = min(len(v) for v in by_gender.values())
    if n_folds is None:
        corpus = str(segments.corpus.iloc[0]) if "corpus" in segments and len(segments) else ""
        n_folds = min(DEFAULT_FOLDS.get(corpus, fewest), fewest)
    n_folds = int(n_folds)
    if n_folds == len(spk) and n_folds >= min_folds and len(by_gender) >= 2:     # leave one speaker out
        rng = np.random.default_rng(seed)
        shuffled = [list(rng.permutation(v)) for _, v in sorted(by_gender.items())]
        order = [str(v[i]) for i in range(max(map(len, shuffled))) for v in shuffled if i < len(v)]
        return [[s] for s in order]
    if len(by_gender) < 2 or n_folds < min_folds or n_folds > fewest:
        counts = ", ".join(f"{len(v)} {g}" for g, v in by_gender.items())
        parts = "test, validation, training" if min_folds >= MIN_FOLDS else "test, training"
        raise SplitError(f"split=speaker_cv needs every fold to hold a speaker of each gender and at least "
                         f"{min_folds} folds ({parts}); this data has {counts} speaker(s), "
                         f"asked for {n_folds} folds. Use split=recording, split.n_folds={len(spk)} (leave one "
                         f"speaker out), or a corpus with at least {MIN_FOLDS} speakers per gender.")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for _, speakers in sorted(by_gender.items()):
        for i, s in enumerate(rng.permutation(speakers)):
            folds[i % n_folds].append(str(s))
    return [sorted(f) for f in folds]


def _speaker_cv(segments: pd.DataFrame, fold: int, n_folds: int | None, seed: int,
                val_utterances: float | None = None) -> Split:
    """Test = the speakers of ``fold``; validation = the speakers of the next fold ((fold + 1) mod k);
    train = the other k - 2 folds. Every speaker is tested once and validated once over the k folds.

    ``val_utterances`` (a share in (0, 1)): validation is instead that share of the other k - 1 folds'
    utterances (stratified by speaker x emotion where every cell allows it, else by emotion x gender; every
    take and segment of an utterance on one side), and
    training keeps the rest of those speakers: model selection then sees the training speakers, the test
    speakers stay unseen."""
    if val_utterances is not None and not 0 < float(val_utterances) < 1:
        raise SplitError(f"split.val_utterances={val_utterances}: a share in (0, 1), or null for a validation fold")
    folds = speaker_folds(segments, n_folds, seed, min_folds=MIN_FOLDS if val_utterances is None else 2)
    k = len(folds)
    if not 0 <= int(fold) < k:
        raise SplitError(f"split.fold={fold} is out of range: this data has {k} speaker folds (0 .. {k - 1})")
    g = segments.speaker.astype(str).to_numpy()
    te = np.isin(g, folds[int(fold)])
    if val_utterances is None:
        va = np.isin(g, folds[(int(fold) + 1) % k])
        return Split(np.flatnonzero(~te & ~va), np.flatnonzero(va), np.flatnonzero(te))
    rest = segments[~te]
    col = UNIT["recording"] if UNIT["recording"] in rest else "recording_id"
    units = rest.drop_duplicates(col)
    share = float(val_utterances)
    by_speaker = _strata((units.speaker.astype(str) + "|" + units.emotion).to_numpy(), share)
    strata = by_speaker if by_speaker is not None else _strata((units.emotion + "|" + units.gender).to_numpy(), share)
    _, val_units = train_test_split(units[col].to_numpy(), test_size=share, random_state=seed + 1, stratify=strata)
    va = ~te & np.isin(segments[col].to_numpy(), val_units)
    return Split(np.flatnonzero(~te & ~va), np.flatnonzero(va), np.flatnonzero(te))


def make_split(segments: pd.DataFrame, mode: str = "recording", val: float = 0.16,
               test: float = 0.2, seed: int = 0, fold: int | None = None, n_folds: int | None = None,
               val_utterances: float | None = None) -> Split:
    if mode not in MODES:
        raise ValueError(f"Unknown split mode {mode!r}; choose one of {MODES}")
    if mode == "speaker_cv":
        return _speaker_cv(segments, 0 if fold is None else fold, n_folds, seed, val_utterances)
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"Split fractions must be in (0, 1) and val + test < 1, got val={val}, test={test}")
    if mode == "paper":
        idx = np.arange(len(segments))
        tr, va, te = _three_way(idx, segments.emotion.to_numpy(), val, test, seed)
        return Split(np.sort(tr), np.sort(va), np.sort(te))
    group_col = UNIT[mode] if UNIT[mode] in segments else "recording_id"   # hand-made tables without utterances
    groups = segments.drop_duplicates(group_col)
    units = groups[group_col].to_numpy()
    strata = (groups.emotion + "|" + groups.gender).to_numpy() if mode == "recording" else groups.gender.to_numpy()
    if len(units) < 3:
        raise ValueError(f"Need at least 3 {group_col}s for a {mode} split, got {len(units)}")
    tr, va, te = _three_way(units, strata, val, test, seed)
    g = segments[group_col].to_numpy()
    return Split(*(np.flatnonzero(np.isin(g, part)) for part in (tr, va, te)))


def assert_no_leakage(segments: pd.DataFrame, split: Split, column: str) -> None:
    """Raise if any value of ``column`` (utterance, recording_id, speaker) appears in two splits."""
    parts = {name: set(segments[column].to_numpy()[idx]) for name, idx in
             (("train", split.train), ("val", split.val), ("test", split.test))}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = parts[a] & parts[b]
        if shared:
            raise AssertionError(f"{len(shared)} {column} values in both {a} and {b}, e.g. {sorted(shared)[:3]}")
