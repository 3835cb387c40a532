"""defense=mp3 (ser_attacks/defenses/mp3.py, issue 28): MP3 compression of the waveform with the soundfile wheel's
codec. The round trip keeps the segment's length and alignment, keeps a voice-band tone and removes a tone above
LAME's low-pass, is deterministic; the bitrates the docs state per compression_level; BPDA gives the attacker the
identity's gradient at the compressed input (without it, zeros); bad parameters are one-line errors."""
from __future__ import annotations

import io

import numpy as np
import pytest

from ser_attacks.defenses.mp3 import Mp3Compression, compress
from tests.helpers import compose_config

SR = 16000
T = np.arange(3 * SR) / SR


def _tone(f):
    return (0.3 * np.sin(2 * np.pi * f * T)).astype(np.float32)


def test_the_round_trip_keeps_the_voice_band_and_removes_the_top_of_the_band():
    x = np.stack([_tone(440), _tone(7800)])
    y = Mp3Compression(0.75, SR)(x).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.corrcoef(y[0], x[0])[0, 1] > 0.99, "a 440 Hz tone, in the same place (gapless)"
    assert np.sqrt(np.mean(y[1] ** 2)) < 0.01 * np.sqrt(np.mean(x[1] ** 2)), "7.8 kHz: above LAME's low-pass"
    assert not np.array_equal(y[0], x[0])
    np.testing.assert_array_equal(compress(x, SR, 0.75), y)              # deterministic


@pytest.mark.parametrize("level, kbps", [(0.0, 160), (0.25, 128), (0.5, 80), (0.75, 48), (0.8, 40)])
def test_compression_levels_are_the_bitrates_the_docs_state(level, kbps):
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, _tone(440), SR, format="MP3", compression_level=level, bitrate_mode="CONSTANT")
    assert abs(buf.tell() * 8 / 3 / 1000 - kbps) < 0.08 * kbps


def _passthrough(n: int):
    import keras
    layer = keras.layers.Identity(name="front")
    layer.input_shape_ = (n,)
    return layer


@pytest.mark.parametrize("bpda", [True, False])
def test_bpda_attacks_through_the_compression(bpda):
    """The classifier classifies the compressed audio; with BPDA its gradient is the model's at the compressed
    audio (straight through the codec), without it zero (an encoder has no gradient)."""
    import keras

    from ser_attacks.estimator import make_classifier
    n = 4800
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((n,)), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x = (0.2 * rng.normal(size=(2, n))).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    node = compose_config("input=waveform", "defense=mp3", f"defense.bpda={str(bpda).lower()}").defense
    defended = make_classifier(model, 3, (-1.0, 1.0), defense=node, frontend=_passthrough(n))
    plain = make_classifier(model, 3, (-1.0, 1.0), frontend=_passthrough(n))
    xc = compress(x, SR, 0.75)
    np.testing.assert_allclose(defended.predict(x), plain.predict(xc), rtol=1e-5, atol=1e-6)
    g = defended.loss_gradient(x, y)
    if bpda:
        np.testing.assert_allclose(g, plain.loss_gradient(xc, y), rtol=1e-5, atol=1e-7)
        assert np.any(g)
    else:
        assert not np.any(g), "without BPDA the codec gives the attacker no gradient"


@pytest.mark.parametrize("overrides, message", [
    (["defense.compression_level=0.9"], "compression_level must be in [0, 0.8]"),
    (["defense.sample_rate=0"], "sample_rate must be a positive integer"),
])
def test_bad_parameters_are_one_line_errors(overrides, message):
    from ser_attacks.defenses import DefenseConfigError, build_layers
    with pytest.raises(DefenseConfigError) as exc:
        build_layers(compose_config("input=waveform", "defense=mp3", *overrides).defense)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_mp3_needs_the_waveform_and_is_tagged_as_attacked_with_bpda():
    from ser_attacks import identity
    from ser_attacks.defenses import DefenseConfigError, check_job
    with pytest.raises(DefenseConfigError, match="needs input=waveform"):
        check_job(compose_config("defense=mp3").defense, "spectrogram")
    tags = identity.run_tags("attack", compose_config("input=waveform", "defense=mp3", "attack.snr_db=30"))
    assert (tags["defense"], tags["defense_differentiable"], tags["attack_bpda"]) == ("mp3", "false", "true")
