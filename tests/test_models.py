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


# Paper supplementary Tables 11-17 and the final model. Where the paper's table disagrees with the layer
# arithmetic (= Keras' count of the listed layers), the computed count is asserted and the table noted.
PAPER_COUNTS = {
    "m1": (43_652, 43_652),      # (asserted, paper's table)
    "m2": (63_683, 63_383),      # table typo: BiLSTM(3) on 1664 features = 40,032 + CNN 23,616 + Dense 35
    "m3": (63_755, 63_775),      # table typo: LSTM(6) on 1664 features = 40,104 + CNN 23,616 + Dense 35
    "final": (3_960_389, 3_960_389),
}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_model_zoo_parameter_counts(name):
    m = _model(name)
    assert m.count_params() == PAPER_COUNTS[name][0]
    assert m.get_layer("windows").output.shape[1:] == (9, 29, 128, 1)
    assert m.layers[-1].activation.__name__ == "linear"      # logits


@pytest.mark.parametrize("name,count", [("m4", 64_900), ("m5", None), ("m6", 133_316), ("m7", None)])
def test_unrecovered_models_are_not_shipped(name, count):
    """m4-m7 (paper Tables 14-17) could not be recovered exactly from the available sources, so no config
    pretends to be them; this fails as soon as one is added without its paper count being asserted above."""
    from pathlib import Path
    from ser_attacks.app import CONF_DIR
    assert not (Path(CONF_DIR) / "model" / f"{name}.yaml").exists(), \
        f"conf/model/{name}.yaml exists: assert its parameter count ({count or 'see the paper'}) in PAPER_COUNTS"


def test_m1_to_m3_share_the_final_models_cnn():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        convs = {n: compose("config", overrides=[f"model={n}"]).model.conv for n in ("m1", "m2", "m3", "final")}
    assert convs["m1"] == convs["m2"] == convs["m3"] == convs["final"]
