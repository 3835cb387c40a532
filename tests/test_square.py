"""attack=square (ser_attacks/attacks/square.py, issue 28): ART's score-based black-box SquareAttack against the defense
as deployed. Every query passes the defense (a counting layer sees exactly the attack's queries), a randomized
defense is queried one draw at a time (no EOT average), the attack is seeded (same seed, same examples; NumPy's
and Python's global generators left as they were), and bad settings are one-line errors before any data."""
from __future__ import annotations

import random

import numpy as np
import pytest

from ser_attacks.attacks.square import SeededSquareAttack
from ser_attacks.estimator import DefenseSpec, make_classifier
from tests.helpers import compose_config
from tests.helpers.defenses import Count

SHAPE = (16, 8, 1)
LO, HI = -3.0, 3.0


class RandomCount(Count):
    """A 'randomized' counting identity: make_classifier averages ``eot`` copies of it for the attacker."""
    randomized = True


@pytest.fixture(scope="module")
def model():
    import keras
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(5)])


@pytest.fixture(scope="module")
def x():
    return np.clip(np.random.default_rng(0).normal(size=(6, *SHAPE)), LO, HI).astype(np.float32)


def _square(clf, **kw):
    return SeededSquareAttack(clf, **{"eps": 0.5, "max_iter": 20, "p_init": 0.1, "verbose": False, **kw})


def test_every_query_passes_the_defense(model, x):
    count = Count()
    clf = make_classifier(model, 5, (LO, HI), defense=[count])
    attack = _square(clf)
    before = count.count
    x_adv = attack.generate(x)
    assert attack.queries > len(x) and count.count - before == attack.queries
    assert np.abs(x_adv - x).max() <= 0.5 + 1e-6 and not np.array_equal(x_adv, x)


def test_a_randomized_defense_is_queried_as_deployed_one_draw_per_query(model, x):
    """With defense.eot=4 the white-box attacker's model averages 4 draws (4 passes of the layer per sample); the
    black-box attack queries clf.deployed: one pass per query."""
    count = RandomCount()
    clf = make_classifier(model, 5, (LO, HI), defense=DefenseSpec((count,), eot=4))
    assert clf.deployed is not clf
    before = count.count
    clf.predict(x[:1])
    assert count.count - before == 4
    attack = _square(clf)
    assert attack.estimator is clf.deployed
    before = count.count
    attack.generate(x)
    assert count.count - before == attack.queries


def test_square_is_seeded_and_leaves_the_global_generators_alone(model, x):
    clf = make_classifier(model, 5, (LO, HI))
    np.random.seed(1)
    random.seed(1)
    a = _square(clf, seed=7).generate(x)
    after = np.random.random(), random.random()
    np.random.seed(2)                               # another global state: the same examples
    b = _square(clf, seed=7).generate(x)
    np.testing.assert_array_equal(a, b)
    np.random.seed(1)
    random.seed(1)
    assert (np.random.random(), random.random()) == after, "generate changed NumPy's / Python's global generator"
    assert not np.array_equal(_square(clf, seed=8).generate(x), a)


@pytest.mark.parametrize("kw, message", [
    ({"p_init": 0.6}, "makes the first square 9 cells wide, not less than the input's 8: p_init must be below 0.5"),
    ({"norm": 2}, "`norm` must be inf"),
    ({"seed": -1}, "`seed` must be a non-negative integer"),
])
def test_settings_art_would_get_wrong_are_clear_errors(model, kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _square(make_classifier(model, 5, (LO, HI)), **kw)


@pytest.mark.parametrize("overrides, message", [
    (["attack.norm=2"], "attack.norm=2 (attack square): must be one of inf"),
    (["attack.p_init=1.5"], "attack.p_init=1.5 (attack square): must be in (0, 1)"),
    (["input=waveform"], "attack square perturbs (frames, mels) spectrograms: it needs input=spectrogram"),
])
def test_bad_square_configs_fail_before_any_data(overrides, message):
    from ser_attacks.checks import ConfigError, check_config
    with pytest.raises(ConfigError) as exc:
        check_config(compose_config("attack=square", *overrides))
    assert message in str(exc.value)


def test_the_shipped_config_fits_the_spectrogram():
    """conf/attack/square.yaml builds on the 261 x 128 model input (validate builds on a 2 x 2 dummy only)."""
    import keras
    from omegaconf import OmegaConf

    from ser_attacks.attacks import build_attack
    cfg = compose_config("attack=square")
    m = keras.Sequential([keras.Input((261, 128, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    attack = build_attack(OmegaConf.merge(cfg.attack, {"verbose": False}), make_classifier(m, 2, (LO, HI)))
    assert isinstance(attack, SeededSquareAttack) and attack.seed == cfg.seed and attack.norm == "inf"


# ------------------------------------------------------------------------------------------------- end to end
@pytest.mark.e2e
def test_square_runs_end_to_end_against_a_defense(tmp_path, corpus_root):
    """``defense=quantize attack=square``: FINISHED, tagged with the defense (not as a transfer run), queries logged,
    the perturbation within eps (seeding and the deployed defense: the unit tests above)."""
    from tests.helpers import mlflow_runs, run_cli
    run_cli(tmp_path, corpus_root, "defense=quantize", "attack=square", "attack.max_iter=10", "attack.eps=0.2",
            "attack.n_samples=6", "input.realize=false", "report=false")
    _, runs = mlflow_runs(tmp_path)
    (r,) = runs["attack"]
    assert r.info.status == "FINISHED" and r.data.tags["defense"] == "quantize"
    assert r.data.tags["attack"] == "square" and "attack_transfer" not in r.data.tags
    q, m = r.data.metrics["queries_per_segment"], r.data.metrics
    assert q >= 1 and (q > 1 or m["clean_acc"] == 0), "a segment classified correctly is queried again"
    assert m["linf"] <= 0.2 + 1e-5
