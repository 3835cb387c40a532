"""The three split modes; `recording` and `speaker` must never leak, `paper` does (by design)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks.split import assert_no_leakage, make_split


def fake_segments(n_speakers=10, n_rec=20, seg_per_rec=3, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    emotions = ["bored", "disgust", "happy", "neutral", "sad"]
    for s in range(n_speakers):
        for r in range(n_rec):
            for k in range(rng.integers(1, seg_per_rec + 1)):
                rows.append(dict(recording_id=f"s{s}/r{r}", speaker=f"s{s}", gender="male" if s % 2 else "female",
                                 emotion=emotions[r % 5], segment=k))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recording_split_has_no_leakage_and_right_sizes(seed):
    seg = fake_segments(seed=seed)
    sp = make_split(seg, "recording", 0.16, 0.2, seed)
    assert_no_leakage(seg, sp, "recording_id")
    n_rec = seg.recording_id.nunique()
    test_recs = seg.recording_id.iloc[sp.test].nunique()
    assert abs(test_recs - 0.2 * n_rec) <= 1
    assert abs(seg.recording_id.iloc[sp.val].nunique() - 0.16 * n_rec) <= 2
    # stratified by emotion x gender: every stratum is in the test split
    strata = seg.iloc[sp.test].groupby(["emotion", "gender"]).size()
    assert len(strata) == 10
    assert sorted(np.concatenate([sp.train, sp.val, sp.test]).tolist()) == list(range(len(seg)))


def test_speaker_split_is_speaker_independent():
    seg = fake_segments(n_speakers=10)
    sp = make_split(seg, "speaker", 0.16, 0.2, 0)
    assert_no_leakage(seg, sp, "speaker")
    assert_no_leakage(seg, sp, "recording_id")


def test_paper_split_leaks_recordings():
    seg = fake_segments(seg_per_rec=4)
    sp = make_split(seg, "paper", 0.16, 0.2, 0)
    with pytest.raises(AssertionError, match="in both train and (val|test)"):
        assert_no_leakage(seg, sp, "recording_id")


def test_split_is_deterministic_and_seed_dependent():
    seg = fake_segments()
    a, b, c = (make_split(seg, "recording", 0.16, 0.2, s) for s in (0, 0, 1))
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_bad_split_arguments():
    seg = fake_segments()
    with pytest.raises(ValueError, match="Unknown split mode"):
        make_split(seg, "random")
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        make_split(seg, "recording", 0.5, 0.6)
