"""Augmentation: signal effects, train-only in recording/speaker splits, all-then-split for `paper`, cached."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ser_attacks.data import augmentations, prepare
from ser_attacks.data.audio import Augmentation
from ser_attacks.split import assert_no_leakage

TWO = "augment.versions=[{kind:pitch,amount:2.0},{kind:stretch,amount:1.25}]"


def _tone(seconds=1.0, sr=16000, f=220.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _peak_hz(y, sr=16000):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()]


def test_pitch_shift_and_time_stretch_do_what_they_say():
    y = _tone()
    up = Augmentation("pitch", 3.0).apply(y, 16000)
    assert len(up) == len(y) and up.dtype == np.float32
    assert _peak_hz(up) == pytest.approx(220 * 2 ** (3 / 12), rel=0.03)
    assert len(Augmentation("stretch", 1.25).apply(y, 16000)) == pytest.approx(len(y) / 1.25, rel=0.01)
    assert len(Augmentation("stretch", 0.75).apply(y, 16000)) == pytest.approx(len(y) / 0.75, rel=0.01)
    assert Augmentation("pitch", -1.5).label == "pitch-1.5" and Augmentation("stretch", 0.9).label == "stretch0.9"
    with pytest.raises(ValueError, match="Unknown augmentation kind"):
        Augmentation("reverb", 1.0)
    with pytest.raises(ValueError, match="> 0"):
        Augmentation("stretch", 0.0)


def test_config_group_defaults(cfg_factory):
    assert augmentations(cfg_factory()) == ()                       # embedded corpus: augment=none
    paper = augmentations(cfg_factory("augment=paper"))
    assert [a.label for a in paper] == ["pitch-3", "pitch-1.5", "pitch+1.5", "pitch+3",
                                        "stretch0.75", "stretch0.9", "stretch1.1", "stretch1.25"]
    assert augmentations(cfg_factory("augment=paper", "augment=none")) == ()
    assert len(augmentations(cfg_factory("augment=paper", TWO))) == 2


@pytest.mark.parametrize("mode,column", [("recording", "recording_id"), ("speaker", "speaker")])
def test_train_only_augmentation_never_reaches_val_or_test(cfg_factory, mode, column):
    plain = prepare(cfg_factory(f"split={mode}"), progress=False)
    data = prepare(cfg_factory(f"split={mode}", "augment=paper", TWO), progress=False)
    seg = data.segments
    for part in ("val", "test"):      # same held-out segments as without augmentation, originals only
        assert set(seg.augment.iloc[getattr(data.split, part)]) == {"none"}
        np.testing.assert_array_equal(getattr(data.split, part), getattr(plain.split, part))
    assert_no_leakage(seg, data.split, column)
    assert_no_leakage(seg, data.split, "recording_id")
    train = seg.iloc[data.split.train]
    orig_train = set(train.recording_id[train.augment == "none"])
    for label in ("pitch+2", "stretch1.25"):   # every train recording, and only those, has each version
        assert set(train.recording_id[train.augment == label]) == orig_train
    assert set(seg.augment) == {"none", "pitch+2", "stretch1.25"}
    assert len(data.y) == len(data.features.X) == len(seg)
    assert sum(data.split.sizes().values()) == len(seg)


def test_paper_split_augments_everything_then_leaks(cfg_factory):
    data = prepare(cfg_factory("split=paper", "augment=paper", TWO), progress=False)
    seg = data.segments
    n_rec = seg.recording_id.nunique()
    assert (seg.groupby("augment").recording_id.nunique() == n_rec).all()   # all recordings augmented
    test_aug = set(seg.augment.iloc[data.split.test])
    assert "none" in test_aug and test_aug - {"none"}                        # augmented copies in test too
    with pytest.raises(AssertionError, match="in both train and"):
        assert_no_leakage(seg, data.split, "recording_id")                   # the paper's leak


def test_augmented_features_are_cached_and_keyed(cfg_factory):
    cfg = cfg_factory("augment=paper", TWO)
    a = prepare(cfg, progress=False)
    b = prepare(cfg, progress=False)
    assert b.features.from_cache and np.array_equal(a.features.X, b.features.X)
    entries = {p.name for p in (a.features.cache_path.parent).iterdir() if p.is_dir()}
    other = prepare(cfg_factory("augment=paper", "augment.versions=[{kind:pitch,amount:2.0}]"), progress=False)
    assert not other.features.from_cache                                     # other list → new entry
    assert len({p.name for p in a.features.cache_path.parent.iterdir() if p.is_dir()} - entries) == 1


def test_parts_read_only_their_rows_from_memory_mapped_features(cfg_factory):
    """Cached features are memory-mapped and augmented copies are joined as a view, so an attack job that
    needs only the test rows never loads the augmented training rows (benchmarks/data_memory.py)."""
    from ser_attacks.data.features import RowConcat
    cfg = cfg_factory("augment=paper", TWO)
    prepare(cfg, progress=False)
    data = prepare(cfg, progress=False)                  # from the cache
    assert isinstance(data.features.X, RowConcat)
    assert all(isinstance(p, np.memmap) and not p.flags.writeable for p in data.features.X.parts)
    full = np.asarray(data.features.X)
    assert full.shape == data.features.X.shape and type(full) is np.ndarray
    for part in ("train", "val", "test"):
        X, y, seg = data.part(part)
        assert type(X) is np.ndarray and X.dtype == np.float32
        np.testing.assert_array_equal(X, full[getattr(data.split, part)])
        assert len(X) == len(y) == len(seg)


def test_row_concat_indexes_like_the_concatenated_array():
    from ser_attacks.data.features import RowConcat
    a = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    b = -np.arange(16, dtype=np.float32).reshape(4, 2, 2)
    view, full = RowConcat([a, b]), np.concatenate([a, b])
    assert view.shape == full.shape and len(view) == 10 and view.dtype == np.float32
    for idx in (np.array([0, 7, 3, 9, 5]), slice(2, 8), slice(None, None, -1), np.array([], int),
                full[:, 0, 0] > 3, [1, 6], np.array([-1, -10])):
        np.testing.assert_array_equal(view[idx], full[idx])
    for i in (0, 5, 6, 9, -1, -10):
        np.testing.assert_array_equal(view[i], full[i])
    with pytest.raises(IndexError):
        view[10]


def test_model_key_covers_augmentation(cfg_factory):
    from ser_attacks.train import model_key
    data = SimpleNamespace(corpus=SimpleNamespace(table=pd.DataFrame({"path": []})), classes=["a", "b"])
    keys = {model_key(cfg_factory(*o), data) for o in ([], ["augment=paper"], ["augment=paper", TWO])}
    assert len(keys) == 3
