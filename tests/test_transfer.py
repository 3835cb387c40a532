"""attack=transfer (ser_attacks/attacks/transfer.py, issue 28): a white-box attack crafted on the UNDEFENDED surrogate,
classified by the defended model. The crafting never passes the defense (a counting / zeroing layer shows it), a
training-side defense's surrogate is its undefended twin (the defense=none model key), with defense=none the
transfer attack is the white-box attack itself, and its runs carry the tag the checklist's flag (b) reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks import identity
from ser_attacks.attacks.transfer import TransferAttack, surrogate_classifier, surrogate_config
from ser_attacks.estimator import make_classifier
from tests.helpers import compose_config
from tests.helpers.defenses import Count, Zero

SHAPE = (16, 8, 1)
LO, HI = -3.0, 3.0
BIM = dict(source="bim", eps=0.5, eps_step=0.1, max_iter=3, verbose=False)


def _model(seed):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(5)])


@pytest.fixture(scope="module")
def model():
    return _model(0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(size=(6, *SHAPE)), LO, HI).astype(np.float32)
    return x, np.eye(5, dtype=np.float32)[rng.integers(0, 5, 6)]


def _bim(clf, x, y):
    from art.attacks.evasion import BasicIterativeMethod
    return BasicIterativeMethod(clf, eps=0.5, eps_step=0.1, max_iter=3, verbose=False).generate(x, y)


def test_transfer_crafts_on_the_undefended_model_not_through_the_defense(model, data):
    """The white-box attack's model calls pass the defense layer; the transfer attack's never do, and its examples
    are the white-box examples of the undefended model. Against a defense that zeroes the input (no gradient), the
    white-box attack moves nothing and the transfer attack still does."""
    x, y = data
    count = Count()
    clf = make_classifier(model, 5, (LO, HI), defense=[count])
    before = count.count
    _bim(clf, x, y)
    assert count.count > before, "the counter sees the white-box attack's calls"
    attack = TransferAttack(clf, **BIM)
    before = count.count
    x_adv = attack.generate(x, y)
    assert count.count == before, "the transfer attack queried the defended model while crafting"
    assert attack.surrogate is not clf and count not in attack.surrogate.model.layers
    np.testing.assert_array_equal(x_adv, _bim(make_classifier(model, 5, (LO, HI)), x, y))

    zero = make_classifier(model, 5, (LO, HI), defense=[Zero()])
    np.testing.assert_array_equal(_bim(zero, x, y), x)                  # masked: no gradient, no change
    np.testing.assert_array_equal(TransferAttack(zero, **BIM).generate(x, y), x_adv)


def test_with_no_defense_the_transfer_attack_is_the_white_box_attack(model, data):
    """defense=none: the surrogate is the attacked classifier itself; PGD (random start from NumPy's global
    generator, seeded as the app seeds it) gives the same examples as attack=pgd."""
    from art.attacks.evasion import ProjectedGradientDescent
    x, y = data
    clf = make_classifier(model, 5, (LO, HI))
    params = dict(eps=0.5, eps_step=0.1, max_iter=3, num_random_init=1, verbose=False)
    attack = TransferAttack(clf, source="pgd", **params)
    assert surrogate_classifier(clf) is clf and attack.surrogate is clf
    np.random.seed(3)
    transfer = attack.generate(x, y)
    np.random.seed(3)
    white = ProjectedGradientDescent(clf, **params).generate(x, y)
    np.testing.assert_array_equal(transfer, white)
    assert not np.array_equal(transfer, x)


def test_a_training_side_defense_is_attacked_from_its_undefended_twin(model, data):
    """Adversarial training changes the weights: the surrogate is the other (defense=none) model, set by the app as
    ``ser_surrogate_model``; the examples are that model's, not the defended model's."""
    x, y = data
    defended = make_classifier(_model(1), 5, (LO, HI))
    defended.ser_surrogate_model = model
    x_adv = TransferAttack(defended, **BIM).generate(x, y)
    np.testing.assert_array_equal(x_adv, _bim(make_classifier(model, 5, (LO, HI)), x, y))
    assert not np.array_equal(x_adv, _bim(defended, x, y))


def test_the_surrogate_config_keys_the_defense_none_model(cfg_factory):
    """The surrogate of a training-side defense is the cached model of the same config with defense=none."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf
    data = SimpleNamespace(corpus=SimpleNamespace(table=pd.DataFrame({"path": [], "recording_id": []})),
                           classes=["anger", "neutral"])
    cfg = cfg_factory("attack=transfer")
    trained = OmegaConf.create(OmegaConf.to_container(cfg))
    trained.defense = {"name": "fgsm_at", "stage": "training", "_target_": "some.module.Trainer", "eot": 1,
                       "bpda": True, "eps": 1.25}
    assert identity.model_key(trained, data) != identity.model_key(cfg, data)
    assert identity.model_key(surrogate_config(trained), data) == identity.model_key(cfg, data)


def test_the_job_loads_the_undefended_twin_for_a_training_side_defense(model, monkeypatch):
    """app.attack_job's hook (``attach_surrogate``): a training-side defense gets the defense=none model (asked of
    get_or_train, which trains it if it is not cached) as the surrogate, tagged with its key; a surrogate with
    another normalizer is refused; an inference-side defense keeps the job's own model (its key)."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from ser_attacks import train
    from ser_attacks.attacks.transfer import attach_surrogate
    from ser_attacks.normalization import Normalizer
    norm = Normalizer(state={"mean": np.zeros(3, np.float32)})
    asked = []

    def get_or_train(cfg, data, tracking=None, parent=None):
        asked.append(OmegaConf.to_container(cfg.defense))
        return SimpleNamespace(model=model, key="undefended", normalizer=norm)

    monkeypatch.setattr(train, "get_or_train", get_or_train)
    tags = {}
    tracking = SimpleNamespace(set_tag=lambda run_id, k, v: tags.__setitem__(k, v))
    cfg = compose_config("attack=transfer", "defense=fgsm_at")
    clf = make_classifier(_model(1), 5, (LO, HI))
    attach_surrogate(cfg, None, SimpleNamespace(key="defended", normalizer=norm), clf, tracking, "run")
    assert asked == [{"name": "none", "stage": "none", "eot": 1, "bpda": True}]
    assert clf.ser_surrogate_model is model and tags == {"transfer_source_model": "undefended"}
    other = Normalizer(state={"mean": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match="normalizer differs"):
        attach_surrogate(cfg, None, SimpleNamespace(key="defended", normalizer=other), clf, tracking, "run")
    clf = make_classifier(_model(1), 5, (LO, HI), defense=[Count()])
    attach_surrogate(compose_config("attack=transfer", "defense=quantize"), None,
                     SimpleNamespace(key="same", normalizer=norm), clf, tracking, "run")
    assert len(asked) == 2 and not hasattr(clf, "ser_surrogate_model") and tags["transfer_source_model"] == "same"


def test_a_waveform_surrogate_keeps_the_front_end_and_drops_the_defense():
    """input=waveform: the surrogate takes the same audio through the same front end, without the defense."""
    from types import SimpleNamespace

    from ser_attacks.data import front_end
    from ser_attacks.models import build_cnn_lstm
    from ser_attacks.waveform import waveform_classifier
    from tests.helpers.defenses import ZeroWave
    fe = front_end(compose_config().features)
    import keras
    keras.utils.set_random_seed(0)
    m = build_cnn_lstm((261, 128, 1), 5, conv=[{"filters": 2, "kernel": 5, "pool": 4, "stride": 4}], lstm_units=4)
    tm = SimpleNamespace(model=m, classes=list("abcde"), normalizer=None)
    audio = (0.1 * np.random.default_rng(1).normal(size=(2, fe.segment_samples))).astype(np.float32)
    defended = waveform_classifier(tm, fe, "compiled", 4, defense=[ZeroWave()])
    z = surrogate_classifier(defended).predict(audio)
    np.testing.assert_allclose(z, waveform_classifier(tm, fe, "compiled", 4).predict(audio), rtol=1e-5, atol=1e-6)
    assert not np.allclose(z[0], z[1])


def test_transfer_runs_are_tagged_and_flag_b_fires_when_transfer_beats_white_box():
    """run_tags marks a transfer run (attack_transfer=true) and no other; the checklist FLAGs a transfer run that
    leaves fewer segments correct than white-box PGD at the same L∞ eps (the defense masks its gradients), and
    PASSes one that does not."""
    from ser_attacks.report.checklist import MASKING, checklist
    assert identity.run_tags("attack", compose_config("attack=transfer"))["attack_transfer"] == "true"
    assert "attack_transfer" not in identity.run_tags("attack", compose_config("attack=pgd"))

    n, rng = 60, np.random.default_rng(0)
    low, high = (rng.random(n) < 0.1).astype(float), (rng.random(n) < 0.9).astype(float)

    def pooled(adv):
        return pd.DataFrame({"key": [f"k{i}" for i in range(n)], "speaker": np.repeat([f"s{i}" for i in range(6)], 10),
                             "speaker_known": True, "recording_id": [f"r{i}" for i in range(n)], "gender": "female",
                             "label": 0, "clean_ok": 1.0, "adv_ok": adv, "kept": adv, "n_runs": 1})

    def row(cid, attack, adv, **tags):
        params = {"attack.name": attack, "attack.eps": "0.25", "attack.norm": "inf",
                  **({"attack.source": "pgd"} if attack == "transfer" else {})}
        return dict(config_id=cid, setting="emodb quantize", attack=attack, config="eps=0.25", params=params,
                    adv_acc=adv.mean(), linf=np.nan, **tags)

    def verdict(transfer_adv, white_adv):
        cl = checklist(pd.DataFrame([row("t", "transfer", transfer_adv, attack_transfer="true"),
                                     row("p", "pgd", white_adv)]), {"t": pooled(transfer_adv), "p": pooled(white_adv)})
        r = cl[(cl.check == MASKING) & (cl.attack == "transfer")]
        assert len(r) == 1 and r.result.iloc[0].startswith("(b) transfer")
        return r.verdict.iloc[0], r.result.iloc[0]

    v, text = verdict(low, high)
    assert v == "FLAG" and "beats pgd" in text
    assert verdict(high, low)[0] == "PASS"


def test_the_report_keeps_a_neutral_option_apart_from_its_other_values():
    """A run at a NEUTRAL option's old-behaviour value (defense.bpda=true, defense.eot=1, ...) does not log it
    (identity.NEUTRAL); the report must read the missing key as that value, not fill in the value other runs
    logged: white-box FGSM without BPDA (masked) and with BPDA are two settings, so flag (b) compares the transfer
    run with each, not with their mean."""
    from ser_attacks.report.collect import fill_new_keys
    no_bpda = {"attack.name": "fgsm", "defense.name": "quantize", "defense.bpda": "False"}
    bpda = {"attack.name": "fgsm", "defense.name": "quantize"}
    filled = fill_new_keys([no_bpda, bpda])
    assert filled[1]["defense.bpda"] == "True" and filled[0]["defense.bpda"] == "False"
    eot = fill_new_keys([{"defense.eot": "8"}, {}])
    assert eot[1]["defense.eot"] == "1"
    assert fill_new_keys([{"mode": "attack"}, {}])[1]["mode"] == "attack"     # a new key without a neutral value


@pytest.mark.parametrize("override, message", [
    ("attack.source=cw_l2", "attack.source=cw_l2 (attack transfer): must be one of fgsm, bim, pgd"),
    ("attack.eps=-1", "attack.eps=-1.0 (attack transfer): must be >= 0"),
])
def test_bad_transfer_configs_fail_before_any_data(override, message):
    from ser_attacks.checks import ConfigError, check_config
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_config(compose_config("attack=transfer", override))


# ------------------------------------------------------------------------------------------------- end to end
def npz(client, run) -> dict:
    import io
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "adversarial.npz", tmp)
        return dict(np.load(io.BytesIO(open(path, "rb").read()), allow_pickle=False))


@pytest.mark.e2e
def test_transfer_runs_end_to_end_against_an_inference_defense(tmp_path, corpus_root):
    """``-m defense=none,quantize attack=transfer,pgd``: every job FINISHED; transfer runs tagged attack_transfer=true
    and transfer_source_model = the job's (undefended) model_key; at defense=none transfer and PGD give the same
    examples; the transfer examples against quantize are those of defense=none (crafted on the same model)."""
    from tests.helpers import mlflow_runs, run_cli
    run_cli(tmp_path, corpus_root, "-m", "defense=none,quantize", "attack=transfer,pgd", "attack.max_iter=3",
            "attack.eps_step=0.1", "attack.n_samples=4", "input.realize=false", "report=false")
    client, runs = mlflow_runs(tmp_path)
    by = {(r.data.tags["attack"], r.data.tags["defense"]): r for r in runs["attack"]}
    assert len(by) == 4 and all(r.info.status == "FINISHED" for r in by.values())
    for d in ("none", "quantize"):
        t = by["transfer", d].data.tags
        assert t["attack_transfer"] == "true" and t["transfer_source_model"] == t["model_key"]
        assert "attack_transfer" not in by["pgd", d].data.tags
    x = {k: npz(client, r)["x_adv"] for k, r in by.items()}
    np.testing.assert_array_equal(x["transfer", "none"], x["pgd", "none"])
    np.testing.assert_array_equal(x["transfer", "quantize"], x["transfer", "none"])
