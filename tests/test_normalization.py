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
    lo, hi = norm.value_range
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


@pytest.mark.parametrize("method,standardize", ALL)
def test_per_band_box_is_the_clip_and_the_art_clip_values(method, standardize):
    """Every Mel band is clipped to its own TRAIN range, and ART gets exactly that box (arrays broadcastable to
    the model input (frames, n_mels, 1)); the global box let a band go far outside anything seen in it."""
    Xtr, Xte = fake_db(seed=0), fake_db(seed=1, offset=-25)
    norm = Normalizer(method, standardize).fit(Xtr)
    lo, hi = norm.clip_values
    assert lo.shape == hi.shape == (1, 8, 1) and (lo < hi).all()
    Ztr, Zte = norm.transform(Xtr), norm.transform(Xte)
    np.testing.assert_allclose(lo[0, :, 0], Ztr[..., 0].min(axis=(0, 1)))
    np.testing.assert_allclose(hi[0, :, 0], Ztr[..., 0].max(axis=(0, 1)))
    assert (Zte >= lo).all() and (Zte <= hi).all()
    assert norm.value_range == (pytest.approx(float(lo.min())), pytest.approx(float(hi.max())))
    if standardize or method != "norm_max_local":
        assert np.ptp(lo) > 0, "bands have different ranges"


def test_no_clip_means_no_box_for_art():
    norm = Normalizer("original", True, clip=False).fit(fake_db())
    assert norm.clip_values is None
    X = fake_db(seed=2, offset=10)
    assert norm.transform(X).max() > norm.value_range[1]          # not clipped


@pytest.mark.parametrize("method,standardize", [(m, s) for m, s in ALL if m != "norm_sum"])
def test_to_db_inverts_the_transform(method, standardize):
    """δ in model units → dB: transforming X + δ_dB gives the model input + δ (no clip). (norm_sum is left out:
    its shift is the spectrogram's total power, which a change of X moves too; its δ in dB is δ·σ_b.)"""
    X = fake_db(seed=4)
    norm = Normalizer(method, standardize, clip=False).fit(X)
    rng = np.random.default_rng(1)
    d_db = rng.normal(0, 0.5, X.shape).astype(np.float32)
    if method == "norm_max_local":       # its scale is the spectrogram's own max |X|: keep that cell fixed
        d_db[np.abs(X) == np.abs(X).max(axis=(1, 2), keepdims=True)] = 0
    delta = norm.transform(X + d_db) - norm.transform(X)
    np.testing.assert_allclose(norm.to_db(delta, X), d_db, atol=2e-3)


def test_legacy_normalizer_keeps_its_global_box(tmp_path):
    X = fake_db()
    new = Normalizer("original", True).fit(X)
    legacy = {k: v for k, v in new.state.items() if not k.startswith("band_")}
    np.savez(tmp_path / "old.npz", method="original", standardize=True, clip=True, **legacy)
    old = Normalizer.load(tmp_path / "old.npz")
    assert old.clip_values == old.value_range
    assert old.transform(X).min() == pytest.approx(old.value_range[0])
