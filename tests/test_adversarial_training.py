"""Adversarial training (``ser_attacks.defenses``: pgd_at, fast_at, fgsm_at, trades): parameter checks before any
work, the attack inside the training step (L∞ ball, clip box, FGSM = one signed step, ratio, seeding), the
training step on the shared weights (TRADES with β = 0 is plain training), the budget in SNR dB, the configs."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.defenses.adversarial_training import DefenseConfigError, eps_snr_db, from_config
from ser_attacks.defenses.fast_at import FastAdversarialTraining
from ser_attacks.defenses.fgsm_at import FGSMAdversarialTraining
from ser_attacks.defenses.pgd_at import PGDAdversarialTraining
from ser_attacks.defenses.trades import TRADES

SHAPE = (36, 16, 1)
N_CLASSES = 3
BOX = (np.full((1, 16, 1), -1.5, np.float32), np.full((1, 16, 1), 1.5, np.float32))


def make_model(seed=0):
    """A small windowed CNN-BLSTM (BatchNorm, dropout) in its fast form, as training uses it."""
    import keras

    from ser_attacks.fast_model import maybe_fast
    from ser_attacks.models import build_cnn_lstm
    keras.utils.set_random_seed(seed)
    model = build_cnn_lstm(SHAPE, N_CLASSES, n_windows=3, conv=[{"filters": 3, "kernel": 3, "batchnorm": True,
                                                                 "pool": 2}], dropout=0.1, lstm_units=4)
    return maybe_fast(model)


def batch(n=10, seed=0):
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(size=(n, *SHAPE)), -1.5, 1.5).astype(np.float32)
    return x, np.eye(N_CLASSES, dtype=np.float32)[rng.integers(0, N_CLASSES, n)]


def perturb(defense, model, x, y, box=BOX):
    from ser_attacks.defenses.adversarial_training import box_tensors
    out, _ = defense.training_inputs(model, x, y, box_tensors(box), defense.generator())
    return np.asarray(out)


def input_gradient(model, x, y):
    import tensorflow as tf
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=model(x, training=False)))
    return tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("make, match", [
    (lambda: PGDAdversarialTraining(0), "defense.eps=0: must be a number > 0"),
    (lambda: PGDAdversarialTraining(-0.1), "defense.eps=-0.1"),
    (lambda: PGDAdversarialTraining(float("nan")), "defense.eps=nan"),
    (lambda: PGDAdversarialTraining(0.25, steps=0), "defense.steps=0: must be an integer >= 1"),
    (lambda: PGDAdversarialTraining(0.25, steps=2.5), "defense.steps=2.5"),
    (lambda: PGDAdversarialTraining(0.25, eps_step=0), "defense.eps_step=0"),
    (lambda: PGDAdversarialTraining(0.25, ratio=0), r"defense.ratio=0: must lie in \(0, 1\]"),
    (lambda: PGDAdversarialTraining(0.25, ratio=1.2), "defense.ratio=1.2"),
    (lambda: PGDAdversarialTraining(0.25, random_start="gauss"), "defense.random_start='gauss'"),
    (lambda: PGDAdversarialTraining(0.25, norm="2"), "only 'inf'"),
    (lambda: PGDAdversarialTraining(0.25, stage="inference"), "adversarial training acts at training"),
    (lambda: FastAdversarialTraining(0.0), "defense.eps=0.0"),
    (lambda: FGSMAdversarialTraining(ratio=0), "defense.ratio=0"),
    (lambda: TRADES(0.25, beta=-1), "defense.beta=-1: must be a number >= 0"),
    (lambda: TRADES(0.25, steps=0), "defense.steps=0"),
])
def test_bad_parameters_are_refused_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_configs_compose_check_and_refuse_in_one_line(cfg_factory):
    from ser_attacks.checks import ConfigError, check_config
    got = {d: from_config(cfg_factory(f"defense={d}")).describe() for d in ("pgd_at", "fast_at", "fgsm_at", "trades")}
    assert got["pgd_at"] == {"method": "pgd", "eps": 0.25, "steps": 7, "eps_step": 2.5 * 0.25 / 7,
                             "random_start": "uniform", "ratio": 1.0, "seed": 42}
    assert (got["fast_at"]["steps"], got["fast_at"]["eps_step"], got["fast_at"]["random_start"]) == (1, 1.25 * 0.25,
                                                                                                      "uniform")
    assert got["fgsm_at"] == {"method": "fgsm", "eps": 1.25, "steps": 1, "eps_step": 1.25, "random_start": "none",
                              "ratio": 0.6, "seed": 42}          # the notebook's setting
    assert got["trades"]["beta"] == 6.0 and got["trades"]["steps"] == 10
    assert from_config(cfg_factory()) is None                   # defense=none: nothing at training
    assert from_config(cfg_factory("defense=pgd_at", "seed=7")).seed == 7     # every draw from cfg.seed
    for overrides, match in ((("defense=pgd_at", "defense.steps=0"), "defense.steps=0"),
                             (("defense=fast_at", "+defense.epz=0.5"), "defense.epz: not a parameter of")):
        with pytest.raises(DefenseConfigError, match=match) as info:
            from_config(cfg_factory(*overrides))
        assert "\n" not in str(info.value)
        with pytest.raises(ConfigError, match=match):
            check_config(cfg_factory(*overrides))


def test_fgsm_is_one_signed_step_of_eps_clipped_to_the_box():
    """ART's FastGradientMethod: x + ε · sign(∇x CE(f(x), y)) (inference mode), clipped to the clip box."""
    model = make_model()
    x, y = batch()
    want = np.clip(x + 0.3 * np.sign(input_gradient(model, x, y)), *BOX)
    np.testing.assert_allclose(perturb(FGSMAdversarialTraining(0.3, ratio=1.0), model, x, y), want, atol=1e-6)


@pytest.mark.parametrize("defense", [PGDAdversarialTraining(0.2, steps=4, seed=3), FastAdversarialTraining(0.2, seed=3),
                                     TRADES(0.2, steps=3, seed=3)], ids=["pgd", "fast", "trades"])
def test_iterates_stay_in_the_eps_ball_and_the_clip_box(defense):
    model = make_model()
    x, y = batch()
    x[:, :2] = 1.5                                              # cells on the box's upper edge
    if isinstance(defense, TRADES):
        from ser_attacks.defenses.adversarial_training import box_tensors
        _, adv = defense.training_inputs(model, x, y, box_tensors(BOX), defense.generator())
        adv = np.asarray(adv)
    else:
        adv = perturb(defense, model, x, y)
    d = adv - x
    assert np.abs(d).max() <= 0.2 + 1e-6 and np.abs(d).max() > 0.1
    assert (adv >= BOX[0] - 1e-7).all() and (adv <= BOX[1] + 1e-7).all()
    assert (adv[:, :2] <= 1.5).all()


def test_pgd_ascends_the_loss_and_beats_its_random_start():
    import tensorflow as tf
    model = make_model()
    x, y = batch(16)

    def loss(z):
        return float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=model(z))))
    start_only = PGDAdversarialTraining(0.3, steps=1, eps_step=1e-12, seed=0)    # the random start, (nearly) no step
    pgd = PGDAdversarialTraining(0.3, steps=5, seed=0)
    assert loss(perturb(pgd, model, x, y)) > loss(perturb(start_only, model, x, y)) > 0
    assert loss(perturb(pgd, model, x, y)) > loss(x)


def test_ratio_replaces_ceil_ratio_rows_drawn_per_seed():
    model = make_model()
    x, y = batch(10)
    rows = {}
    for seed in (0, 1):
        adv = perturb(FGSMAdversarialTraining(0.3, ratio=0.6, seed=seed), model, x, y)
        changed = np.flatnonzero(np.abs(adv - x).reshape(10, -1).max(1) > 0)
        assert len(changed) == 6                                 # ceil(0.6 · 10), as ART's AdversarialTrainer
        rows[seed] = tuple(changed)
    assert rows[0] != rows[1]
    single = perturb(FGSMAdversarialTraining(0.3, ratio=0.01), model, x, y)
    assert (np.abs(single - x).reshape(10, -1).max(1) > 0).sum() == 1      # ceil: never zero rows


def test_every_draw_is_seeded():
    model = make_model()
    x, y = batch()
    a, b = (perturb(FastAdversarialTraining(0.2, seed=5), model, x, y) for _ in range(2))
    c = perturb(FastAdversarialTraining(0.2, seed=6), model, x, y)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _one_step(defense, seed=0):
    """Loss of one training step and the stock model's trainable weights before and after it (BatchNorm's
    moving statistics also see TRADES' adversarial forward pass, as in its reference code)."""
    import keras

    from ser_attacks.fast_model import stock_form
    from ser_attacks.train import compile_for_training
    model = make_model(seed)
    before = [w.numpy().copy() for w in stock_form(model).trainable_weights]
    x, y = batch(8, seed=1)
    if defense is None:
        keras.utils.set_random_seed(seed)
        trainer = compile_for_training(model, 1e-3)
    else:
        trainer = compile_for_training(defense.trainer(model, BOX), 1e-3)
    loss = trainer.train_on_batch(x, y, return_dict=True)["loss"]
    return loss, before, [w.numpy() for w in stock_form(model).trainable_weights]


def _learned(before, after) -> bool:
    """The saved (stock) model's weights moved."""
    return max(np.abs(a - b).max() for a, b in zip(before, after)) > 0


@pytest.mark.e2e          # trains (one compiled step per method: tracing takes most of its time)
@pytest.mark.parametrize("defense", [PGDAdversarialTraining(0.2, steps=2), FastAdversarialTraining(0.2),
                                     FGSMAdversarialTraining(0.5)], ids=["pgd_at", "fast_at", "fgsm_at"])
def test_training_step_trains_the_shared_weights(defense):
    """(TRADES' step, β = 6: test_trades_with_beta_zero_is_plain_training_and_the_kl_term_adds.)"""
    loss, before, after = _one_step(defense)
    assert np.isfinite(loss)
    assert _learned(before, after)


@pytest.mark.e2e
def test_trades_with_beta_zero_is_plain_training_and_the_kl_term_adds():
    """The custom training step is Keras' step: with β = 0 TRADES is the undefended step (same loss, same
    trained weights after it); with β > 0 the KL term only adds, and the step trains the shared weights."""
    plain, _, w_plain = _one_step(None)
    zero, _, w_zero = _one_step(TRADES(0.2, beta=0.0, steps=2))
    six, before, after = _one_step(TRADES(0.2, beta=6.0, steps=2))
    assert zero == pytest.approx(plain, rel=1e-6)
    for a, b in zip(w_plain, w_zero):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.isfinite(six) and six > zero
    assert _learned(before, after)


def test_eps_in_snr_db_falls_with_eps():
    from ser_attacks.normalization import Normalizer
    rng = np.random.default_rng(0)
    X = rng.uniform(-60, 0, size=(12, 36, 16)).astype(np.float32)            # log-Mel dB
    norm = Normalizer(method="original", standardize=True, clip=True)
    norm.fit(X)
    Z = norm.transform(X)
    snr = [eps_snr_db(norm, X, Z, eps, seed=0) for eps in (0.05, 0.25, 1.25)]
    assert all(np.isfinite(snr)) and snr[0] > snr[1] > snr[2]
    assert eps_snr_db(norm, X, Z, 0.25, seed=0) == snr[1]                     # seeded


@pytest.mark.e2e
def test_an_adversarially_trained_model_is_trained_not_reused(tmp_path, corpus_root):
    """``python -m ser_attacks mode=train defense=fast_at`` after the undefended model is cached trains a second
    model (a model key that ignored the defense would reuse the undefended one), logs the defense (tags,
    params, the budget in σ and SNR dB) and keeps it in the cached model's meta.json."""
    import json
    from pathlib import Path

    from tests.helpers import mlflow_runs, run_cli
    short = ("mode=train", "train.max_epochs=2")
    run_cli(tmp_path, corpus_root, *short)
    out = run_cli(tmp_path, corpus_root, *short, "defense=fast_at")
    assert "Adversarial training fast_at: eps 0.25 σ" in out.stdout + out.stderr
    client, runs = mlflow_runs(tmp_path)
    train = runs["train"]
    assert len(train) == 2 and len({r.data.tags["model_key"] for r in train}) == 2
    (fast,) = [r for r in train if r.data.tags.get("defense") == "fast_at"]
    assert fast.data.tags["defense_stage"] == "training"
    assert fast.data.params["defense.eps"] == "0.25" and fast.data.params["defense.name"] == "fast_at"
    assert fast.data.metrics["defense_eps"] == 0.25 and fast.data.metrics["defense_eps_step"] == 0.3125
    assert 0 < fast.data.metrics["defense_eps_snr_db"] < 80
    versions = client.search_model_versions()
    assert sorted(v.tags.get("defense", "none") for v in versions) == ["fast_at", "none"]   # the registry says it
    (plain,) = [r for r in train if r is not fast]
    assert plain.data.tags["defense"] == "none" and not any(k.startswith("defense") for k in plain.data.params)
    models = sorted(Path(tmp_path, "cache", "models").iterdir())
    metas = [json.loads((m / "meta.json").read_text()) for m in models if (m / "meta.json").exists()]
    assert sorted(m.get("defense", "none") for m in metas) == ["fast_at", "none"]
    assert [m["defense_method"] for m in metas if "defense" in m] == ["fast"]


@pytest.mark.e2e
def test_the_training_step_compiles_under_xla():
    """Keras picks XLA on a GPU (``jit_compile="auto"``): the step, with its random subset of rows (ratio < 1)
    and the attack's while loop, compiles there too (here on the CPU), for two batch sizes."""
    import keras
    model = make_model()
    trainer = FGSMAdversarialTraining(0.5, ratio=0.6).trainer(model, BOX)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                    jit_compile=True)
    for n in (10, 7):
        assert np.isfinite(trainer.train_on_batch(*batch(n, seed=n), return_dict=True)["loss"])
