"""The batched attacks return what ART's classes return (same inputs, same seed), with scalar and per-cell
clip boxes; the stochastic ones are reproducible."""
from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import CarliniLInfMethod, SaliencyMapMethod

from ser_attacks.attacks.boundary import BatchedBoundaryAttack, SeededBoundaryAttack
from ser_attacks.attacks.cw_linf import BatchedCarliniLInfMethod
from ser_attacks.attacks.jsma import BatchedSaliencyMapMethod
from ser_attacks.estimator import make_classifier

SHAPE = (261, 128, 1)
LO, HI = -3.0, 3.0


@pytest.fixture(scope="module")
def model():
    """A small CNN-BLSTM with the final model's overlapping 4x4 / stride-2 max-pool (the case where eager and
    compiled gradients differ in their last bits), random weights."""
    import keras

    from ser_attacks.models import build_cnn_lstm
    keras.utils.set_random_seed(0)
    return build_cnn_lstm(SHAPE, 5, conv=[{"filters": 4, "kernel": 5, "pool": 4, "stride": 2}], lstm_units=8)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(size=(3, *SHAPE)), LO, HI).astype(np.float32)


def band_box():
    """Per-band bounds (1, n_mels, 1), as the per-band normalizer gives them: different per band."""
    lo = np.linspace(-3.0, -2.0, SHAPE[1], dtype=np.float32)[None, :, None]
    return lo, -lo + 0.5


def boxes():
    return {"scalar": (LO, HI), "per_band": band_box()}


def clf_for(model, box, kind="compiled", batch_size=4):
    return make_classifier(model, 5, box, kind, batch_size=batch_size)


def in_box(x_adv, clf):
    lo, hi = clf.clip_values
    return bool(np.all(x_adv >= lo - 1e-6) and np.all(x_adv <= hi + 1e-6))


CW = dict(max_iter=4, learning_rate=0.01, initial_const=1e-3, largest_const=2.0, decrease_factor=0.5,
          const_factor=4.0, verbose=False)


@pytest.mark.parametrize("box", ["scalar", "per_band"])
def test_cw_linf_equals_art(model, data, box):
    clf = clf_for(model, boxes()[box])
    x = np.clip(data[:3], *clf.clip_values).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(x), 1)]
    ref = CarliniLInfMethod(clf, **CW).generate(x, y)
    ours = BatchedCarliniLInfMethod(clf, batch_size=3, **CW)
    out = ours.generate(x, y)
    assert np.abs(out - x).max() > 0, "the attack must change something for the comparison to mean anything"
    assert np.abs(out - ref).max() <= 1e-4
    assert in_box(out, clf)
    assert ours.n_gradients < ours.n_points, "gradients are skipped where Adam stops"


def test_cw_linf_result_does_not_depend_on_the_batch(model, data):
    """Per-sample evaluation: a sample attacked alone gets the same x_adv as in a batch of three."""
    clf = clf_for(model, (LO, HI))
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(data[:3]), 1)]
    together = BatchedCarliniLInfMethod(clf, batch_size=3, **CW).generate(data[:3], y)
    alone = BatchedCarliniLInfMethod(clf, batch_size=1, **CW).generate(data[1:2], y[1:2])
    np.testing.assert_array_equal(together[1], alone[0])


def test_cw_l2_fused_gradient_equals_art(model, data):
    from art.attacks.evasion import CarliniL2Method

    from ser_attacks.attacks.cw_l2 import FusedCarliniL2Method
    clf = clf_for(model, band_box())
    x = np.clip(data, *clf.clip_values).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(x), 1)]
    kw = dict(confidence=0.0, max_iter=4, learning_rate=0.01, binary_search_steps=3, initial_const=10.0,
              max_halving=5, max_doubling=5, batch_size=3, verbose=False)
    ref = CarliniL2Method(clf, **kw).generate(x, y)
    out = FusedCarliniL2Method(clf, **kw).generate(x, y)
    assert np.abs(out - x).max() > 1e-3
    assert np.abs(out - ref).max() <= 1e-4
    assert in_box(out, clf)


def _targets(clf, x, seed=1):
    pred = np.argmax(clf.predict(x), 1)
    shift = np.random.default_rng(seed).integers(1, 5, len(x))
    return np.eye(5, dtype=np.float32)[(pred + shift) % 5]


@pytest.mark.parametrize("theta", [1.0, -0.5])
def test_jsma_equals_art(model, data, theta):
    clf = clf_for(model, (LO, HI))
    y = _targets(clf, data)
    kw = dict(theta=theta, gamma=0.004, verbose=False)
    ref = SaliencyMapMethod(clf, batch_size=1, **kw).generate(data, y)
    ours = BatchedSaliencyMapMethod(clf, batch_size=4, **kw)
    out = ours.generate(data, y)
    assert (out != data).any()
    assert np.abs(out - ref).max() <= 1e-4
    assert ours.n_model_calls > 1


def test_jsma_per_cell_box(model, data):
    """A per-cell box equal everywhere gives the scalar box's result; a per-band box is respected."""
    kw = dict(theta=1.0, gamma=0.004, verbose=False, batch_size=4)
    scalar = clf_for(model, (LO, HI))
    y = _targets(scalar, data)
    uniform = clf_for(model, (np.full((1, SHAPE[1], 1), LO, np.float32), np.full((1, SHAPE[1], 1), HI, np.float32)))
    np.testing.assert_array_equal(BatchedSaliencyMapMethod(scalar, **kw).generate(data, y),
                                  BatchedSaliencyMapMethod(uniform, **kw).generate(data, y))
    banded = clf_for(model, band_box())
    x = np.clip(data, *banded.clip_values).astype(np.float32)
    out = BatchedSaliencyMapMethod(banded, **kw).generate(x, y)
    assert (out != x).any() and in_box(out, banded)
    hit = np.isclose(out, banded.clip_values[1]) & (out != x)
    assert hit.any(), "theta 1 pushes cells to their band's own upper bound"


BOUNDARY = dict(targeted=False, delta=0.01, epsilon=0.01, step_adapt=0.5, max_iter=5, num_trial=3, sample_size=6,
                init_size=30, verbose=False)


@pytest.mark.parametrize("box", ["scalar", "per_band"])
def test_boundary_batched_equals_seeded_art(model, data, box):
    clf = clf_for(model, boxes()[box], batch_size=16)
    x = np.clip(data, *clf.clip_values).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(x), 1)]
    ref = SeededBoundaryAttack(clf, seed=3, **BOUNDARY).generate(x, y)
    again = SeededBoundaryAttack(clf, seed=3, **BOUNDARY).generate(x, y)
    ours = BatchedBoundaryAttack(clf, seed=3, batch_size=4, **BOUNDARY).generate(x, y)
    other_seed = BatchedBoundaryAttack(clf, seed=4, batch_size=4, **BOUNDARY).generate(x, y)
    flipped = np.argmax(clf.predict(ours), 1) != np.argmax(y, 1)
    assert flipped.any(), "some sample must be attacked for the comparison to mean anything"
    np.testing.assert_array_equal(ref, again)             # seeded: the same config, the same result
    assert np.abs(ours - ref).max() <= 1e-4
    assert not np.array_equal(ours, other_seed)
    assert in_box(ours, clf)


def test_boundary_batched_mode_gives_the_same_success_set(model, data):
    clf = clf_for(model, (LO, HI), batch_size=16)
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(data), 1)]
    ref = SeededBoundaryAttack(clf, seed=3, **BOUNDARY).generate(data, y)
    out = BatchedBoundaryAttack(clf, seed=3, batch_size=4, per_sample=False, **BOUNDARY).generate(data, y)
    np.testing.assert_array_equal(np.argmax(clf.predict(out), 1) != np.argmax(y, 1),
                                  np.argmax(clf.predict(ref), 1) != np.argmax(y, 1))


def test_batched_attacks_reject_bad_parameters(model):
    clf = clf_for(model, (LO, HI))
    with pytest.raises(ValueError, match="per_sample"):
        BatchedCarliniLInfMethod(clf, per_sample="yes")
    with pytest.raises(ValueError, match="seed"):
        BatchedBoundaryAttack(clf, seed=-1)
    with pytest.raises(ValueError):
        BatchedSaliencyMapMethod(clf, gamma=0)


@pytest.mark.parametrize("th, es", [(1, 1), (5, 1), (3, 0)])
def test_pixel_windowed_prediction_gives_the_same_adversarial_examples(model, data, th, es):
    """Only the changed windows through the CNN (ser_attacks.attacks.windowed): the same logits bit for bit, hence
    the same search and result; fewer window images through the CNN."""
    from ser_attacks.attacks.pixel import SpectrogramPixelAttack
    from ser_attacks.attacks.windowed import WindowedPredictor
    clf = clf_for(model, (LO, HI), batch_size=16)
    y = np.argmax(clf.predict(data), 1)
    wp = WindowedPredictor.build(clf)
    assert wp is not None, "the test model is a windowed CNN-BLSTM"
    out = {}
    for windowed in (False, True):
        attack = SpectrogramPixelAttack(clf, th=th, es=es, max_iter=2, batch_size=16, seed=0, windowed=windowed)
        out[windowed] = (attack.generate(data, y), attack.n_predictions)
    np.testing.assert_array_equal(out[False][0], out[True][0])
    assert out[False][1] == out[True][1]
    if es == 1 and th == 1:
        assert 0 < wp.n_cnn_images < out[True][1] * wp.n_windows / 2


def test_pixel_is_seeded(model, data):
    """The same seed gives the same x_adv (DE and CMA-ES); ART's PixelAttack draws from global / unseeded state."""
    from ser_attacks.attacks.pixel import SpectrogramPixelAttack
    clf = clf_for(model, band_box(), batch_size=16)
    x = np.clip(data, *clf.clip_values).astype(np.float32)
    y = np.argmax(clf.predict(x), 1)
    for es in (1, 0):
        runs = [SpectrogramPixelAttack(clf, th=3, es=es, max_iter=2, batch_size=16, seed=s).generate(x, y)
                for s in (5, 5, 6)]
        np.testing.assert_array_equal(runs[0], runs[1])
        changed = (runs[0] != x).reshape(len(x), -1).sum(1)
        assert (changed <= 3).all() and in_box(runs[0], clf)
        if changed.any() or (runs[2] != x).any():
            assert not np.array_equal(runs[0], runs[2])
