"""The compiled estimator gives the same adversarial examples as ART's stock classifier."""
from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ser_attacks.app import CONF_DIR
from ser_attacks.attacks import build_attack
from ser_attacks.estimator import CompiledTFClassifier, make_classifier

ATTACKS = {
    "fgsm": ["attack.eps=0.5"],
    "bim": ["attack.eps=0.5", "attack.max_iter=10"],
    "deepfool": ["attack.max_iter=5"],
}


@pytest.fixture(scope="module")
def model_and_data():
    import keras
    from ser_attacks.models import build_cnn_lstm
    keras.utils.set_random_seed(0)
    model = build_cnn_lstm((261, 128, 1), 5, conv=[{"filters": 4, "kernel": 5, "pool": 4, "stride": 4}],
                           lstm_units=8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 261, 128, 1)).astype(np.float32)
    return model, np.clip(x, -3, 3), rng.integers(0, 5, 6)


def _attack_cfg(name, overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[f"attack={name}", "attack.verbose=false", *overrides]).attack


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "deepfool"] + ["deepfool"])
def test_compiled_equals_stock(model_and_data, name):
    from pathlib import Path
    if not (Path(CONF_DIR) / "attack" / f"{name}.yaml").exists():
        pytest.skip(f"attack config {name} not present yet")
    model, x, y = model_and_data
    cfg = _attack_cfg(name, ATTACKS[name])
    out = {}
    for kind in ("stock", "compiled"):
        clf = make_classifier(model, 5, (-3.0, 3.0), kind, batch_size=4)
        out[kind] = build_attack(cfg, clf).generate(x=x, y=np.eye(5, dtype=np.float32)[y])
    assert np.abs(out["stock"] - out["compiled"]).max() <= 1e-4
    assert np.abs(out["compiled"] - x).max() > 0, "the attack must change the input"


def test_compiled_gradients_match_stock(model_and_data):
    model, x, y = model_and_data
    stock = make_classifier(model, 5, (-3.0, 3.0), "stock", batch_size=4)
    comp = make_classifier(model, 5, (-3.0, 3.0), "compiled", batch_size=4)
    assert isinstance(comp, CompiledTFClassifier)
    onehot = np.eye(5, dtype=np.float32)[y]
    np.testing.assert_allclose(comp.predict(x), stock.predict(x), atol=1e-5)
    np.testing.assert_allclose(comp.loss_gradient(x, onehot), stock.loss_gradient(x, onehot), atol=1e-6)
    np.testing.assert_allclose(comp.class_gradient(x), stock.class_gradient(x), atol=1e-5)
    np.testing.assert_allclose(comp.class_gradient(x, label=2), stock.class_gradient(x, label=2), atol=1e-5)
    np.testing.assert_allclose(comp.class_gradient(x, label=y), stock.class_gradient(x, label=y), atol=1e-5)


def test_predict_is_chunked(model_and_data):
    model, x, _ = model_and_data
    clf = make_classifier(model, 5, (-3.0, 3.0), "compiled", batch_size=4)
    calls = []
    orig = clf._predict_chunk
    clf._predict_chunk = lambda c, t: calls.append(len(c)) or orig(c, t)
    clf.predict(x)
    assert calls == [4, 2]
