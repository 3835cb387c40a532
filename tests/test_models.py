"""Model builder: the paper's final model has exactly 3,960,389 parameters and outputs logits."""
from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ser_attacks.app import CONF_DIR
from ser_attacks.train import build_model


def _model(name):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={name}"])
    return build_model(cfg.model, (261, 128, 1), 5)


def test_final_model_parameter_count_matches_paper():
    m = _model("final")
    assert m.count_params() == 3_960_389
    assert m.get_layer("windows").output.shape[1:] == (9, 29, 128, 1)
    assert m.get_layer("flatten").output.shape[1:] == (9, 1664)


def test_tiny_model_outputs_logits():
    m = _model("tiny")
    assert m.count_params() < 50_000
    z = m.predict(np.random.default_rng(0).normal(size=(4, 261, 128, 1)).astype("float32"), verbose=0)
    assert z.shape == (4, 5)
    assert not np.allclose(z.sum(1), 1.0), "the model must output logits, not probabilities"
    assert m.layers[-1].activation.__name__ == "linear"


def test_windows_must_divide_frames():
    from ser_attacks.models import build_cnn_lstm
    with pytest.raises(ValueError, match="equal windows"):
        build_cnn_lstm((260, 128, 1), 5, n_windows=9)
