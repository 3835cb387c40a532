"""The 8 normalizations: definitions, fitted on train only, saved/loaded with the model, from config."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.normalization import METHODS, Normalizer

ALL = [(m, s) for m in METHODS for s in (False, True)]


def fake_db(n=6, frames=20, mels=8, seed=0, offset=-40.0):
    rng = np.random.default_rng(seed)
    X = offset + 15 * rng.standard_normal((n, frames, mels)) + np.linspace(-10, 10, mels)
    return np.minimum(X, 0).astype(np.float32)   # dB values, as power_to_db(ref=1) gives for |y| < 1


@pytest.mark.parametrize("method,standardize", ALL)
def test_fit_transform_save_load_roundtrip(tmp_path, method, standardize):
    Xtr, Xte = fake_db(seed=0), fake_db(seed=1, offset=-30)
    norm = Normalizer(method, standardize).fit(Xtr)
    Ztr, Zte = norm.transform(Xtr), norm.transform(Xte)
    assert Ztr.shape == Xtr.shape + (1,) and Ztr.dtype == np.float32 and np.isfinite(Zte).all()
    lo, hi = norm.clip_values
    assert lo < hi and Ztr.min() == pytest.approx(lo) and Ztr.max() == pytest.approx(hi)
    assert Zte.min() >= lo and Zte.max() <= hi                    # test data clipped to the TRAIN range
    norm.save(tmp_path / "n.npz")
    back = Normalizer.load(tmp_path / "n.npz")
    assert (back.method, back.standardize, back.clip) == (method, standardize, True)
    np.testing.assert_array_equal(back.transform(Xte), Zte)
    if standardize:   # standardization statistics come from train only
        Z1 = norm._method(Xtr)
        np.testing.assert_allclose(norm.state["mean"], Z1.mean(axis=(0, 1)), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(Ztr[..., 0].mean(axis=(0, 1)), 0, atol=1e-3)
        np.testing.assert_allclose(Ztr[..., 0].std(axis=(0, 1)), 1, atol=1e-3)


def test_method_definitions():
    X = fake_db()
    np.testing.assert_array_equal(Normalizer("original", False).fit(X)._method(X), X)
    # norm_sum: power / total power per spectrogram, in dB → the power of each spectrogram sums to 1
    Z = Normalizer("norm_sum", False).fit(X)._method(X)
    np.testing.assert_allclose((10 ** (Z.astype(np.float64) / 10)).sum(axis=(1, 2)), 1, rtol=1e-4)
    np.testing.assert_allclose(Z - X, (Z - X)[:, :1, :1] * np.ones_like(X), atol=1e-3)  # one shift per spectrogram
    # loudness invariance: +6 dB on a spectrogram changes nothing
    np.testing.assert_allclose(Normalizer("norm_sum", False)._method(X + 6), Z, atol=1e-3)
    # norm_max_global: one scalar from TRAIN, applied unchanged to other data
    g = Normalizer("norm_max_global", False).fit(X)
    assert g.state["global_max"] == pytest.approx(np.abs(X).max())
    X2 = X * 2
    np.testing.assert_allclose(g._method(X2), X2 / np.abs(X).max(), rtol=1e-6)
    assert np.abs(g._method(X)).max() == pytest.approx(1)
    # norm_max_local: each spectrogram by its own max |X|
    L = Normalizer("norm_max_local", False)._method(X2)
    np.testing.assert_allclose(np.abs(L).max(axis=(1, 2)), 1, rtol=1e-6)


def test_fit_uses_train_only_and_options_differ():
    Xtr, Xte = fake_db(seed=0), fake_db(seed=1, offset=-20)
    outs = {(m, s): Normalizer(m, s).fit(Xtr).transform(Xte) for m, s in ALL}
    # refit on other data → another transform (state is fitted, not fixed)
    assert not np.allclose(Normalizer("original", True).fit(Xte).transform(Xte), outs[("original", True)])
    distinct = {m: outs[(m, False)] for m in METHODS}
    for a in METHODS:
        for b in METHODS:
            if a < b:
                assert not np.allclose(distinct[a], distinct[b]), (a, b)


def test_aliases_and_errors(tmp_path):
    assert (Normalizer("standard").method, Normalizer("standard").standardize) == ("original", True)
    assert (Normalizer("none").method, Normalizer("none").standardize) == ("original", False)
    with pytest.raises(ValueError, match="Unknown normalization"):
        Normalizer("zscore")
    with pytest.raises(RuntimeError, match="before fit"):
        Normalizer().transform(fake_db())
    # a normalizer saved by the previous version (method=standard, no 'standardize' key) still loads
    X = fake_db()
    old = Normalizer("original", True).fit(X)
    np.savez(tmp_path / "old.npz", method="standard", clip=True, **old.state)
    back = Normalizer.load(tmp_path / "old.npz")
    assert back.standardize and np.array_equal(back.transform(X), old.transform(X))


@pytest.mark.parametrize("name", ["original", "original_std", "norm_sum", "norm_sum_std", "norm_max_global",
                                  "norm_max_global_std", "norm_max_local", "norm_max_local_std", "standard", "none"])
def test_every_config_option_composes_and_builds(cfg_factory, name):
    cfg = cfg_factory(f"normalization={name}")
    norm = Normalizer.from_cfg(cfg.normalization)
    base = name.removesuffix("_std")
    expected = {"standard": ("original", True), "none": ("original", False)}.get(name, (base, name.endswith("_std")))
    assert (norm.method, norm.standardize) == expected
    assert norm.fit(fake_db()).transform(fake_db(seed=3)).shape == (6, 20, 8, 1)
