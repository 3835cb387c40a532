"""Config composition and validation: bad keys and types fail at compose time, bad values before any data."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ValidationError

from ser_attacks.attacks import AttackConfigError, attack_kwargs, validate
from tests.helpers import CONF_DIR, compose_config

ATTACKS = sorted(p.stem for p in (Path(CONF_DIR) / "attack").glob("*.yaml"))


def test_defaults_compose():
    cfg = compose_config()
    assert cfg.dataset.name == "synthetic" and cfg.model.name == "final" and cfg.attack.name == "fgsm"
    assert cfg.split.mode == "recording" and (cfg.split.val, cfg.split.test) == (0.16, 0.2)
    assert (cfg.features.n_mels, cfg.features.n_fft, cfg.features.hop_length) == (128, 368, 184)


@pytest.mark.parametrize("attack", ATTACKS)
def test_shared_sweep_keys_exist_in_every_attack(attack):
    cfg = compose_config(f"attack={attack}", "attack.n_samples=3")
    for key in ("eps", "eps_step", "max_iter", "batch_size", "n_samples"):
        assert key in cfg.attack
    assert cfg.attack.n_samples == 3


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_attack_config_builds_its_art_class(attack):
    cfg = compose_config(f"attack={attack}")
    cls, kwargs = attack_kwargs(cfg.attack)
    from art.attacks.attack import EvasionAttack
    assert issubclass(cls, EvasionAttack)         # an ART class (or our fix of one, see ser_attacks/attacks/pixel.py)
    validate(cfg.attack)   # ART's own _check_params accept the defaults


def test_unknown_attack_key_rejected_at_compose():
    with pytest.raises(ConfigCompositionException) as exc:
        compose_config("attack.epz=0.1")
    assert isinstance(exc.value.__cause__, ConfigAttributeError)
    assert "epz" in str(exc.value.__cause__)


def test_wrong_type_rejected_at_compose():
    with pytest.raises(ConfigCompositionException) as exc:
        compose_config("attack.eps=big")
    assert isinstance(exc.value.__cause__, ValidationError)


def test_unknown_key_in_other_groups_rejected():
    with pytest.raises(ConfigCompositionException):
        compose_config("train.epochs=3")
    with pytest.raises(ConfigCompositionException):
        compose_config("split.test=much")


def test_art_rejects_negative_eps_with_its_message():
    cfg = compose_config("attack=fgsm", "attack.eps=-1")
    with pytest.raises(AttackConfigError, match="nonnegative"):
        validate(cfg.attack)


def test_parameter_the_attack_does_not_take_is_dropped_and_reported(caplog):
    cfg = compose_config("attack=fgsm", "attack.max_iter=10")
    unused: list[str] = []
    cls, kwargs = attack_kwargs(cfg.attack, unused)
    assert "max_iter" not in kwargs and unused == ["max_iter"]
    assert "does not take 'max_iter'" in caplog.text
    assert validate(cfg.attack) == ["max_iter"]
