"""Issue 28, "a place for a defense": ONE builder (``estimator.make_classifier``) puts the defense in front of the
model on every attack path, or refuses; a test per path fails if that path drops the defense.

The defenses here (``tests.helpers.defenses``) make a dropped defense visible: ``Zero`` replaces the input by
zeros (the defended model gives every input the same logits, and zero gradients), ``Count`` counts the samples
that pass through it (a fused graph built on the undefended model would leave the count at 0)."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.defenses import DefenseConfigError
from ser_attacks.estimator import make_classifier
from tests.helpers.defenses import Count, Zero, ZeroWave

SHAPE = (261, 128, 1)
LO, HI = -3.0, 3.0


@pytest.fixture(scope="module")
def model():
    import keras

    from ser_attacks.models import build_cnn_lstm
    keras.utils.set_random_seed(0)
    return build_cnn_lstm(SHAPE, 5, conv=[{"filters": 4, "kernel": 5, "pool": 4, "stride": 4}], lstm_units=8)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(size=(3, *SHAPE)), LO, HI).astype(np.float32)


def _constant(clf, x) -> bool:
    z = clf.predict(x)
    return bool(np.allclose(z, z[:1], atol=1e-6))


@pytest.mark.parametrize("kind", ["compiled", "stock"])
def test_spectrogram_classifier_applies_the_defense(model, data, kind):
    """predict, loss_gradient and class_gradient all go through the defense, for both estimator kinds."""
    plain = make_classifier(model, 5, (LO, HI), kind, batch_size=4)
    assert not _constant(plain, data), "without a defense the inputs give different logits"
    clf = make_classifier(model, 5, (LO, HI), kind, batch_size=4, defense=[Zero()])
    assert _constant(clf, data)
    y = np.eye(5, dtype=np.float32)[[0, 1, 2]]
    assert not np.any(clf.loss_gradient(data, y))
    assert not np.any(clf.class_gradient(data, label=1))
    assert clf.deployed is clf


def test_the_app_builds_its_estimator_with_the_defense(model, data):
    """app.attack_job instantiates conf/estimator, then calls it with ``defense=`` (given to ``instantiate``
    itself, Hydra would turn the DefenseSpec into a config node): the layers reach make_classifier."""
    from hydra.utils import instantiate

    from ser_attacks.estimator import DefenseSpec
    from tests.helpers import compose_config
    cfg = compose_config()
    clf = instantiate(cfg.estimator, _partial_=True)(model, 5, (LO, HI), defense=DefenseSpec((Zero(),)))
    assert _constant(clf, data)
    with pytest.raises(Exception, match="not a defense node"):   # Hydra converts it: refused, never dropped
        instantiate(cfg.estimator, model, 5, (LO, HI), defense=DefenseSpec((Zero(),)))


def test_a_waveform_defense_on_a_spectrogram_classifier_is_refused(model):
    with pytest.raises(DefenseConfigError, match="needs input=waveform"):
        make_classifier(model, 5, (LO, HI), defense=[ZeroWave()])


@pytest.fixture(scope="module")
def wave_tm(model):
    """A 'trained model' for the waveform path: the random model, no normalizer, the default front end."""
    from types import SimpleNamespace

    from ser_attacks.data import front_end
    from tests.helpers import compose_config
    fe = front_end(compose_config().features)
    return SimpleNamespace(model=model, classes=["a", "b", "c", "d", "e"], normalizer=None), fe


def test_waveform_classifier_puts_each_domain_in_its_place(wave_tm):
    """input=waveform: waveform-domain layers before the front end, spectrogram-domain ones after it."""
    from ser_attacks.waveform import waveform_classifier
    tm, fe = wave_tm
    audio = (0.1 * np.random.default_rng(1).normal(size=(2, fe.segment_samples))).astype(np.float32)
    plain = waveform_classifier(tm, fe, "compiled", 4)
    assert not _constant(plain, audio)
    wave, spec = Count("waveform"), Count("spectrogram")
    clf = waveform_classifier(tm, fe, "compiled", 4, defense=[spec, wave])
    clf.predict(audio)
    assert wave.seen_shape == (fe.segment_samples,) and spec.seen_shape == SHAPE
    assert wave.count == spec.count == 2
    assert _constant(waveform_classifier(tm, fe, "compiled", 4, defense=[ZeroWave()]), audio)
    zero_spec = waveform_classifier(tm, fe, "compiled", 4, defense=[Zero()])
    assert _constant(zero_spec, audio)
    assert not np.any(zero_spec.loss_gradient(audio, np.eye(5, dtype=np.float32)[[0, 1]]))


def test_autoattack_dlr_copy_keeps_the_defense(model, data):
    from ser_attacks.attacks.autoattack import SpectrogramAutoAttack
    clf = make_classifier(model, 5, (LO, HI), defense=[Zero()])
    attack = SpectrogramAutoAttack(clf, eps=0.5, max_iter=2)
    dlr = attack.apgd_dlr.estimator
    assert dlr is not clf and _constant(dlr, data)
    assert not np.any(dlr.loss_gradient(data, np.eye(5, dtype=np.float32)[[0, 1, 2]]))


def _fused(name, clf, max_iter=2):
    from ser_attacks.attacks.boundary import BatchedBoundaryAttack
    from ser_attacks.attacks.cw_l2 import FusedCarliniL2Method
    from ser_attacks.attacks.cw_linf import BatchedCarliniLInfMethod
    from ser_attacks.attacks.fmn import FastMinimumNorm
    from ser_attacks.attacks.jsma import BatchedSaliencyMapMethod
    from ser_attacks.attacks.pixel import SpectrogramPixelAttack
    return {
        "jsma": lambda: BatchedSaliencyMapMethod(clf, theta=1.0, gamma=0.002, batch_size=4, verbose=False),
        "cw_linf": lambda: BatchedCarliniLInfMethod(clf, max_iter=2, batch_size=4, verbose=False),
        "cw_l2": lambda: FusedCarliniL2Method(clf, max_iter=2, binary_search_steps=1, verbose=False),
        "fmn": lambda: FastMinimumNorm(clf, max_iter=max_iter, batch_size=4),
        "boundary": lambda: BatchedBoundaryAttack(clf, targeted=False, max_iter=2, num_trial=2, sample_size=2,
                                                  init_size=10, batch_size=4, verbose=False),
        "pixel": lambda: SpectrogramPixelAttack(clf, th=2, es=1, max_iter=1, batch_size=8),
    }[name]()


def _count_during(name, model, x, **kw) -> int:
    count = Count()
    clf = make_classifier(model, 5, (LO, HI), defense=[count])
    y = np.eye(5, dtype=np.float32)[np.argmax(clf.predict(x), 1)]
    attack = _fused(name, clf, **kw)
    before = count.count
    np.random.seed(0)
    attack.generate(x, y if name != "jsma" else np.roll(y, 1, axis=1))
    return count.count - before


@pytest.mark.parametrize("name", ["jsma", "cw_linf", "cw_l2", "boundary", "pixel"])
def test_fused_and_batched_attacks_run_through_the_defense(model, data, name):
    """The fused graphs are built on ``clf.model``, which is the defended model: the attack's model calls pass
    the defense (the counter moves by more than one predict of the batch during ``generate``)."""
    assert _count_during(name, model, data[:2]) > 2, f"{name} evaluated the model without the defense"


def test_fmn_graph_runs_through_the_defense(model, data):
    """FMN's predict / class_gradient calls are the same for any max_iter; only its fused graph runs once
    more per iteration: more iterations, more samples through the defense."""
    assert _count_during("fmn", model, data[:2], max_iter=3) > _count_during("fmn", model, data[:2], max_iter=1)


def test_graphs_are_built_on_the_defended_model(model):
    from ser_attacks.estimator import graph
    count = Count()
    clf = make_classifier(model, 5, (LO, HI), defense=[count])
    built = graph(clf, "probe", lambda m: m)
    assert built is clf.model and count in built.layers


def test_windowed_prediction_never_bypasses_a_defense(model):
    """The windowed predictor re-runs the stock model's own layers; on a defended model it must not be used."""
    from ser_attacks.attacks.windowed import WindowedPredictor
    assert WindowedPredictor.build(make_classifier(model, 5, (LO, HI))) is not None
    assert WindowedPredictor.build(make_classifier(model, 5, (LO, HI), defense=[Count()])) is None
