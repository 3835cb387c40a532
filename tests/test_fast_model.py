"""The fast form of the CNN-(B)LSTM (``ser_attacks.fast_model``) computes what the stock model computes.

Bounds (float32, random weights, BatchNorm statistics made non-trivial):
* inference logits: identical (each convolution runs in calls of TimeDistributed's batch size);
* gradient of the loss w.r.t. the input (what the attacks use): within 1e-6 + 1e-4 x its largest entry;
* training mode: the forward pass is the same: BatchNorm's per-window statistics and its 9 moving-average
  updates identical, the loss to float32 rounding (identical on Intel CPUs with AVX-512, 2 ulps apart on an AMD
  EPYC with AVX2 only); weight gradients differ only by the backward pass's summation order (relative 1e-3);
* in float64 every one of these agrees to 1e-10 relative: the same function, not an approximation of it.
"""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.fast_model import fast_form, is_fast, maybe_fast, stock_form

SHAPE = (261, 128, 1)
# the final model's CNN (conv 5x5 + BN, overlapping 4x4 / stride-2 pool, conv 3x3, pools) at few filters
CONV = [{"filters": 4, "kernel": 5, "batchnorm": True, "pool": 4, "stride": 2},
        {"filters": 6, "kernel": 3, "pool": 2, "stride": 2},
        {"filters": 8, "kernel": 3, "pool": 2, "stride": 1}]


def make(seed=0, dropout=0.3, lstm_dropout=0.2):
    import keras

    from ser_attacks.models import build_cnn_lstm
    keras.utils.set_random_seed(seed)
    model = build_cnn_lstm(SHAPE, 5, conv=CONV, dropout=dropout, lstm_units=8, lstm_dropout=lstm_dropout)
    bn = model.get_layer("bn0").layer                   # BatchNorm away from its identity initialisation
    rng = np.random.default_rng(seed)
    for var, value in ((bn.gamma, rng.uniform(0.5, 2, 4)), (bn.beta, rng.normal(size=4)),
                       (bn.moving_mean, rng.uniform(0, 0.5, 4)), (bn.moving_variance, rng.uniform(0.05, 2, 4))):
        var.assign(value.astype(var.dtype))
    return model


def data(n, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(size=(n, *SHAPE)), -3, 3).astype(dtype), rng.integers(0, 5, n)


def test_same_layers_weights_and_parameter_count():
    model = make()
    fast = fast_form(model)
    assert is_fast(fast) and not is_fast(model) and stock_form(fast) is model and stock_form(model) is model
    assert fast_form(model) is fast and fast_form(fast) is fast             # made once, idempotent
    # the same variables in the same order: get_weights / set_weights are interchangeable between the forms
    assert [id(v) for v in fast.weights] == [id(v) for v in model.weights]
    assert fast.count_params() == model.count_params()
    assert fast.input_shape == model.input_shape and fast.output_shape == model.output_shape


def test_final_model_keeps_its_parameter_count():
    from omegaconf import OmegaConf

    from ser_attacks.train import build_model
    from tests.helpers import CONF_DIR
    model = build_model(OmegaConf.load(f"{CONF_DIR}/model/final.yaml"), SHAPE, 5)
    assert fast_form(model).count_params() == model.count_params() == 3_960_389


def test_saved_weights_load_into_both_forms(tmp_path):
    import keras
    trained = make(seed=1)
    trained.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    x, _ = data(3)
    ref = trained(x, training=False).numpy()
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), ref)
    np.testing.assert_array_equal(fast_form(loaded)(x, training=False).numpy(), ref)
    other = fast_form(make(seed=2))                      # weights set through the fast form
    other.set_weights(trained.get_weights())
    np.testing.assert_array_equal(other(x, training=False).numpy(), ref)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_inference_and_input_gradient_agree(n):
    from ser_attacks.estimator import make_classifier
    model = make()
    x, y = data(n)
    onehot = np.eye(5, dtype=np.float32)[y]
    stock = make_classifier(model, 5, (-3.0, 3.0), "compiled", batch_size=n, fast=False)
    fast = make_classifier(model, 5, (-3.0, 3.0), "compiled", batch_size=n)
    assert is_fast(fast.model) and fast.model is not stock.model
    np.testing.assert_array_equal(fast.predict(x), stock.predict(x))
    g_stock, g_fast = stock.loss_gradient(x, onehot), fast.loss_gradient(x, onehot)
    assert np.abs(g_stock).max() > 0
    np.testing.assert_allclose(g_fast, g_stock, rtol=0, atol=1e-6 + 1e-4 * np.abs(g_stock).max())
    np.testing.assert_allclose(fast.class_gradient(x, label=y), stock.class_gradient(x, label=y), rtol=0,
                               atol=1e-6 + 1e-4 * np.abs(g_stock).max() * 10)


def _train_step(fast: bool, x, onehot, dtype="float32"):
    """One SGD step on a freshly built model (dropout on): loss, weight gradients, weights and BN statistics."""
    import keras
    import tensorflow as tf
    model = make()
    run = fast_form(model) if fast else model
    with tf.GradientTape() as tape:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)(onehot, run(x, training=True))
    grads = tape.gradient(loss, run.trainable_weights)
    bn = model.get_layer("bn0").layer
    return (float(loss), [g.numpy() for g in grads], bn.moving_mean.numpy(), bn.moving_variance.numpy())


def test_training_step_agrees():
    x, y = data(6)
    onehot = np.eye(5, dtype=np.float32)[y]
    (ls, gs, ms, vs), (lf, gf, mf, vf) = (_train_step(f, x, onehot) for f in (False, True))
    # the same forward pass, dropout masks included: equal on the Intel machines this was written on, 2 ulps apart
    # (1.5e-7 relative) on an AMD EPYC without AVX-512, where the two shapes take different float32 kernels; a
    # wrong mask or window would move it by far more
    assert lf == pytest.approx(ls, rel=1e-6, abs=0)
    np.testing.assert_array_equal(mf, ms)                # per-window statistics, 9 updates in order
    np.testing.assert_array_equal(vf, vs)
    assert not np.allclose(ms, make().get_layer("bn0").layer.moving_mean.numpy())   # they were updated
    for a, b in zip(gs, gf):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3 * np.abs(a).max() + 1e-9)


def test_float64_same_function():
    """In float64 the two forms agree to 1e-10 relative in training mode (loss, every weight gradient, BN
    statistics) and at inference (logits, input gradient): what differs in float32 is rounding only."""
    import keras
    import tensorflow as tf
    policy = keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")     # (once a model was built, layers follow the policy, not floatx)
    try:
        x, y = data(4, dtype=np.float64)
        onehot = np.eye(5)[y]
        (ls, gs, ms, vs), (lf, gf, mf, vf) = (_train_step(f, x, onehot) for f in (False, True))
        assert abs(lf - ls) <= 1e-12 * abs(ls)
        for a, b in zip(gs + [ms, vs], gf + [mf, vf]):
            assert np.abs(a - b).max() <= 1e-10 * np.abs(a).max()
        model = make()
        xt = tf.constant(x)
        outs = []
        for run in (model, fast_form(model)):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                z = run(xt, training=False)
                loss = keras.losses.CategoricalCrossentropy(from_logits=True)(onehot, z)
            outs.append((z.numpy(), tape.gradient(loss, xt).numpy()))
        for a, b in zip(*outs):
            assert np.abs(a - b).max() <= 1e-10 * np.abs(a).max()
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy(policy)


def test_training_uses_the_fast_form_and_saves_the_stock_model():
    import keras
    from omegaconf import OmegaConf

    from ser_attacks.train import compiled_model
    cfg = OmegaConf.create({"_target_": "ser_attacks.models.build_cnn_lstm", "conv": CONV, "lstm_units": 8})
    model = compiled_model(cfg, OmegaConf.create({"lr": 1e-3}), 0, SHAPE, 5)
    assert is_fast(model) and model.optimizer is not None
    x, y = data(4)
    model.fit(x, np.eye(5, dtype=np.float32)[y], batch_size=4, epochs=1, verbose=0)
    stock = stock_form(model)
    assert any(isinstance(layer, keras.layers.TimeDistributed) for layer in stock.layers)
    np.testing.assert_array_equal(stock.predict(x, verbose=0), model.predict(x, verbose=0))


def test_training_can_run_the_stock_form():
    """``compiled_model(fast=False)``: the stock model itself, compiled (benchmarks/model_speed.py --fold-epochs)."""
    import keras
    from omegaconf import OmegaConf

    from ser_attacks.train import compiled_model
    cfg = OmegaConf.create({"_target_": "ser_attacks.models.build_cnn_lstm", "conv": CONV, "lstm_units": 8})
    model = compiled_model(cfg, OmegaConf.create({"lr": 1e-3}), 0, SHAPE, 5, fast=False)
    assert not is_fast(model) and stock_form(model) is model and model.optimizer is not None
    assert any(isinstance(layer, keras.layers.TimeDistributed) for layer in model.layers)


def test_other_models_are_left_alone():
    import keras
    inp = keras.Input((4,))
    plain = keras.Model(inp, keras.layers.Dense(2)(inp))
    assert maybe_fast(plain) is plain
    with pytest.raises(ValueError, match="not a windowed CNN"):
        fast_form(plain)
