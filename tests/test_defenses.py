"""The ``defense`` config group (conf/defense ↔ ser_attacks/defenses): composition, checks before any data, the
tags and params every run logs, the model identity of a training-side defense; the inference-side transforms
(forward values, BPDA's straight-through gradient, EOT's averaging, seeds)."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ser_attacks import identity
from ser_attacks.checks import ConfigError, check_config
from tests.helpers import compose_config

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
