"""The ``defense`` config group (conf/defense ↔ ser_attacks/defenses): composition, checks before any data, the
tags and params every run logs, the model identity of a training-side defense; the inference-side transforms
(forward values, BPDA's straight-through gradient, EOT's averaging, seeds)."""
from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from ser_attacks import identity
from ser_attacks.checks import ConfigError, check_config
from tests.helpers import compose_config, seed_cache

TAGS = ("defense", "defense_stage", "defense_randomized", "defense_differentiable", "attack_eot", "attack_bpda")


def test_none_is_the_default_and_the_schema_types_the_common_keys():
    cfg = compose_config()
    assert OmegaConf.to_container(cfg.defense) == {"name": "none", "stage": "none", "eot": 1, "bpda": True}
    with pytest.raises(Exception, match="eot"):
        compose_config("defense.eot=many")


@pytest.mark.parametrize("override, message", [
    ("defense.eot=0", "defense.eot=0: must be an integer >= 1"),
    ("defense.stage=sometimes", "defense.stage=sometimes: must be one of none, inference, training"),
    ("defense.stage=inference", "needs a _target_"),
])
def test_bad_defense_configs_are_one_line_errors_before_any_data(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_config(override))


def test_defense_none_keeps_every_existing_identity_and_tags_every_run(cfg_factory):
    """defense=none adds nothing to config_hash, model_key or the logged params (identity.NEUTRAL), while every
    attack and training run is tagged with the defense it faced."""
    cfg = cfg_factory()
    old = OmegaConf.create(OmegaConf.to_container(cfg))
    del old["defense"]                                       # the config as composed before the group existed
    assert identity.config_hash(cfg) == identity.config_hash(old)
    assert identity.model_groups(cfg) == identity.model_groups(old)
    assert not [k for k in identity.logged_params(identity._container(cfg)) if k.startswith("defense")]
    for run_type in ("attack", "train"):
        tags = identity.run_tags(run_type, cfg)
        assert {k: tags[k] for k in TAGS} == {"defense": "none", "defense_stage": "none",
                                              "defense_randomized": "false", "defense_differentiable": "true",
                                              "attack_eot": "1", "attack_bpda": "false"}
    assert "defense" not in identity.run_tags("sweep", cfg)


def _data():
    from types import SimpleNamespace

    import pandas as pd
    return SimpleNamespace(corpus=SimpleNamespace(table=pd.DataFrame({"path": [], "recording_id": []})),
                           classes=["anger", "neutral"])


def _training_defense(cfg, **params):
    new = OmegaConf.create(OmegaConf.to_container(cfg))
    new.defense = {"name": "fgsm_at", "stage": "training", "_target_": "some.module.Trainer", "eot": 1,
                   "bpda": True, **params}
    return new


def test_model_key_includes_a_training_side_defense_only(cfg_factory):
    """An adversarially trained model is another cached model (key changes with the defense and its
    parameters); an inference-side defense attacks the same trained model (key unchanged)."""
    cfg = cfg_factory()
    base = identity.model_key(cfg, _data())
    trained = identity.model_key(_training_defense(cfg, eps=1.25), _data())
    assert trained != base
    assert identity.model_key(_training_defense(cfg, eps=0.5), _data()) != trained
    inference = OmegaConf.create(OmegaConf.to_container(cfg))
    inference.defense = {"name": "quantize", "stage": "inference", "_target_": "x.Y", "eot": 1, "bpda": True,
                         "bits": 4}
    assert identity.model_key(inference, _data()) == base
    assert identity.config_hash(inference) != identity.config_hash(cfg)
    tags = identity.run_tags("train", _training_defense(cfg, eps=1.25))
    assert tags["defense"] == "fgsm_at" and tags["defense_stage"] == "training"
    assert "defense.eps" in identity.logged_params(identity.model_groups(_training_defense(cfg, eps=1.25)))


# ------------------------------------------------------------------------------------- inference-side transforms
def _dense(shape, n=3, seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(n)])


def _passthrough(n: int):
    """A stand-in front end (waveform → 'spectrogram'): the identity on (n,)."""
    import keras
    layer = keras.layers.Identity(name="front")
    layer.input_shape_ = (n,)
    return layer


def test_quantize_rounds_to_the_grid_and_bpda_passes_the_identity_gradient():
    from ser_attacks.defenses.quantize import Quantize
    from ser_attacks.estimator import make_classifier
    q = Quantize(bits=2, lo=-1.5, hi=1.5)                 # levels -1.5, -0.5, 0.5, 1.5
    x = np.array([[[[-3.0]], [[-0.9]], [[0.1]], [[0.99]]]], np.float32)   # (1, 4, 1, 1)
    np.testing.assert_allclose(q(x).numpy().ravel(), [-1.5, -0.5, 0.5, 0.5])
    model = _dense((4, 1, 1))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 1, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    plain = make_classifier(model, 3, None)
    bpda = make_classifier(model, 3, None, defense={"name": "quantize", "stage": "inference", "eot": 1, "bpda": True,
                                                    "_target_": "ser_attacks.defenses.quantize.Quantize", "bits": 2,
                                                    "lo": -1.5, "hi": 1.5})
    xq = q(x).numpy()
    np.testing.assert_allclose(bpda.predict(x), plain.predict(xq), rtol=1e-6)
    np.testing.assert_allclose(bpda.loss_gradient(x, y), plain.loss_gradient(xq, y), rtol=1e-5, atol=1e-7)
    masked = make_classifier(model, 3, None, defense=_node("quantize", bpda=False, bits=2, lo=-1.5, hi=1.5))
    assert not np.any(masked.loss_gradient(x, y)), "without BPDA rounding gives the attacker no gradient"


def _node(name, **params):
    cfg = compose_config(f"defense={name}", *[f"defense.{k}={v}" for k, v in params.items()])
    return cfg.defense


@pytest.mark.parametrize("kind", ["median", "mean"])
def test_spectrogram_filters_equal_scipy(kind):
    from scipy import ndimage

    from ser_attacks.defenses.spectrogram_filter import MeanFilter, MedianFilter
    x = np.random.default_rng(1).normal(size=(2, 9, 7, 1)).astype(np.float32)
    layer = (MedianFilter if kind == "median" else MeanFilter)(size=[3, 5])
    ref = (ndimage.median_filter if kind == "median" else ndimage.uniform_filter)(x, size=(1, 3, 5, 1),
                                                                                    mode="reflect")
    np.testing.assert_allclose(layer(x).numpy(), ref, rtol=1e-5, atol=1e-6)
    assert layer.differentiable == (kind == "mean")


def test_resample_keeps_a_slow_signal_and_removes_a_fast_one():
    from ser_attacks.defenses.resample import Resample
    t = np.arange(1600) / 16000.0
    slow, fast = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 7000 * t)
    out = Resample(rate=4000, sample_rate=16000)(np.stack([slow, fast]).astype(np.float32)).numpy()
    assert out.shape == (2, 1600)
    assert np.abs(out[0, 50:-50] - slow[50:-50]).max() < 0.1           # well below the new Nyquist: kept
    assert np.sqrt(np.mean(out[1] ** 2)) < 0.2 * np.sqrt(np.mean(fast ** 2))   # above it: mostly gone


def test_gaussian_noise_is_seeded_and_eot_averages_k_draws():
    from ser_attacks.defenses.gaussian_noise import GaussianNoise
    from ser_attacks.estimator import DefenseSpec, make_classifier
    x = np.zeros((2, 8), np.float32)
    a, b, c = GaussianNoise(0.1, seed=3), GaussianNoise(0.1, seed=3), GaussianNoise(0.1, seed=4)
    first = a(x).numpy()
    np.testing.assert_array_equal(first, b(x).numpy())                   # the same seed, the same draws
    assert not np.array_equal(first, c(x).numpy()) and not np.array_equal(first, a(x).numpy())
    assert abs(np.std(GaussianNoise(0.1, seed=0)(np.zeros((100, 100), np.float32)).numpy()) - 0.1) < 0.005
    model = _dense((8,))
    xs = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    eot = make_classifier(model, 3, None, defense=DefenseSpec((GaussianNoise(0.5, seed=7),), eot=4),
                          frontend=_passthrough(8))
    z = eot.predict(xs)
    one = GaussianNoise(0.5, seed=7)                                     # the same draws, one at a time
    draws = [model(one(xs)).numpy() for _ in range(4)]
    np.testing.assert_allclose(z, np.mean(draws, 0), rtol=1e-5, atol=1e-6)
    assert eot.deployed is not eot
    single = eot.deployed.predict(xs)
    assert not np.allclose(single, z), "the deployed defense classifies with ONE draw"
    g = eot.loss_gradient(xs, np.eye(3, dtype=np.float32)[[0, 1, 2]])
    assert g.shape == xs.shape and np.all(np.isfinite(g))


def test_a_waveform_defense_needs_input_waveform():
    from ser_attacks.defenses import DefenseConfigError, check_job
    with pytest.raises(DefenseConfigError, match="needs input=waveform"):
        check_job(_node("gaussian_noise"), "spectrogram")
    check_job(_node("gaussian_noise"), "waveform")
    check_job(_node("quantize"), "spectrogram")


@pytest.mark.parametrize("name, params, message", [
    ("quantize", {"bits": 0}, "bits must be an integer"),
    ("median_filter", {"size": "[2,3]"}, "size must be two odd"),
    ("gaussian_noise", {"sigma": -1}, "sigma must be > 0"),
    ("resample", {"rate": 20000}, "rate must be below"),
])
def test_bad_defense_parameters_are_one_line_errors(name, params, message):
    from ser_attacks.defenses import DefenseConfigError, build_layers
    with pytest.raises(DefenseConfigError, match=message):
        build_layers(_node(name, **params))


@pytest.mark.parametrize("name, params, expected", [
    ("quantize", {}, ("inference", "false", "false", "1", "true")),
    ("quantize", {"bpda": "false"}, ("inference", "false", "false", "1", "false")),
    ("mean_filter", {}, ("inference", "false", "true", "1", "false")),
    ("gaussian_noise", {"eot": 8}, ("inference", "true", "true", "8", "false")),
])
def test_run_tags_say_which_defense_and_how_it_was_attacked(name, params, expected):
    cfg = compose_config(f"defense={name}", *[f"defense.{k}={v}" for k, v in params.items()])
    tags = identity.run_tags("attack", cfg)
    assert tags["defense"] == name
    assert tuple(tags[k] for k in TAGS[1:]) == expected
    assert identity.run_tags("train", cfg)["defense"] == "none"          # the trained model is the undefended one
    params_logged = identity.logged_params(identity._container(cfg))
    assert params_logged["defense.name"] == name and params_logged["defense.stage"] == "inference"


# ------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_cache):
    """One cache and tracking DB for this module's jobs; the model is the session's tiny one (``tiny_cache``)."""
    return seed_cache(tiny_cache, tmp_path_factory.mktemp("defense_jobs"))


def _npz(client, run):
    import io
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "adversarial.npz", tmp)
        return dict(np.load(io.BytesIO(open(path, "rb").read()), allow_pickle=False))


@pytest.mark.e2e
def test_the_inference_defenses_run_end_to_end_in_a_sweep(job_dir, corpus_root):
    """``python -m ser_attacks -m defense=none,<each inference defense> attack=fgsm`` (the issue's command):
    every job FINISHED, tagged and logged with its defense; the waveform ones with input=waveform (EOT on)."""
    from tests.helpers import mlflow_runs, run_cli
    run_cli(job_dir, corpus_root, "-m", "defense=none,quantize,median_filter,mean_filter", "attack=fgsm",
            "attack.n_samples=6", "input.realize=false", "report=false")
    run_cli(job_dir, corpus_root, "-m", "input=waveform", "defense=gaussian_noise,resample", "defense.eot=2",
            "attack=fgsm", "attack.snr_db=20", "attack.n_samples=4", "report=false")
    client, runs = mlflow_runs(job_dir)
    attacks = {r.data.tags["defense"]: r for r in runs["attack"]}
    assert set(attacks) == {"none", "quantize", "median_filter", "mean_filter", "gaussian_noise", "resample"}
    assert all(r.info.status == "FINISHED" for r in attacks.values())
    assert len({r.data.tags["model_key"] for r in attacks.values()}) == 1, "one trained model for every defense"
    assert attacks["quantize"].data.tags["attack_bpda"] == "true"
    assert attacks["gaussian_noise"].data.tags["attack_eot"] == "2"
    assert attacks["resample"].data.tags["attack_eot"] == "1"
    assert attacks["quantize"].data.params["defense.bits"] == "5"
    assert "defense.name" not in attacks["none"].data.params
    assert all(r.data.tags["defense"] == "none" for r in runs["train"])


@pytest.mark.e2e
@pytest.mark.parametrize("inp, target", [("spectrogram", "Zero"), ("waveform", "ZeroWave")])
def test_an_attack_job_classifies_and_attacks_through_the_defense(job_dir, corpus_root, inp, target):
    """app.attack_job: with a defense that zeroes the model input (or the audio), every clean and adversarial
    prediction of the run is the same class and FGSM has no gradient to follow (x_adv = x); a job that
    dropped the defense would classify the segments differently."""
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    from tests.helpers import tiny_overrides
    cfg = compose_config(*tiny_overrides(job_dir, corpus_root), f"input={inp}", "attack=fgsm", "attack.n_samples=6",
                         "input.realize=false", f"+defense._target_=tests.helpers.defenses.{target}",
                         "defense.name=zero", "defense.stage=inference", *(["attack.snr_db=20"] if inp == "waveform"
                                                                            else []))
    run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    r = client.search_runs([exp.experiment_id], "tags.run_type = 'attack' and tags.defense = 'zero'",
                           order_by=["start_time DESC"])[0]
    assert r.info.status == "FINISHED" and r.data.tags["defense_stage"] == "inference"
    npz = _npz(client, r)
    assert len(npz["clean_logits"]) == 6
    np.testing.assert_allclose(npz["clean_logits"], npz["clean_logits"][:1].repeat(6, 0), atol=1e-5)
    np.testing.assert_allclose(npz["adv_logits"], npz["clean_logits"], atol=1e-5)


@pytest.mark.e2e
def test_a_waveform_defense_with_spectrogram_input_stops_with_one_line(tmp_path, corpus_root):
    from tests.helpers import run_cli
    proc = run_cli(tmp_path, corpus_root, "defense=gaussian_noise", check=False)
    assert proc.returncode == 2
    assert "error: defense 'gaussian_noise' transforms the waveform: it needs input=waveform" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.keras")), "no model trained"
