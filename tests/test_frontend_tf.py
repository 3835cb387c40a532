"""The audio behind the cached features, and the differentiable TF front end that reproduces them."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.data.audio import Augmentation, BadAudio, FrontEnd, log_mel, segment_audio
from ser_attacks.data.corpora import load_corpus
from ser_attacks.data.features import load_or_extract
from ser_attacks.normalization import METHODS, Normalizer

FE = FrontEnd()


@pytest.fixture(scope="module")
def cached(corpus_root, tmp_path_factory):
    """Cached features (originals + two augmentations) of 10 recordings of the embedded corpus."""
    table = load_corpus("emodb", corpus_root).table.iloc[::6].reset_index(drop=True)
    cache = tmp_path_factory.mktemp("fe_cache")
    augs = (Augmentation("pitch", -1.5), Augmentation("stretch", 0.9))
    orig = load_or_extract(table, FE, cache, progress=False)
    aug = load_or_extract(table, FE, cache, progress=False, augment=augs)
    return orig, aug, augs


def test_segment_audio_reproduces_cached_features_exactly(cached):
    orig, aug, augs = cached
    for feats, known in ((orig, ()), (aug, augs)):
        for i, row in feats.segments.iterrows():
            y = segment_audio(row.path, FE, row.segment, row.augment, known)
            assert y.shape == (FE.segment_samples,) and y.dtype == np.float32
            np.testing.assert_array_equal(log_mel(y, FE), np.asarray(feats.X[i]),
                                          err_msg=f"{row.path} {row.augment} segment {row.segment}")
    assert set(aug.segments.augment) == {"pitch-1.5", "stretch0.9"}
    # the label alone (no configured list) parses to the same augmentation
    row = aug.segments.iloc[-1]
    np.testing.assert_array_equal(log_mel(segment_audio(row.path, FE, row.segment, row.augment), FE),
                                  np.asarray(aug.X[len(aug.X) - 1]))


def test_segment_audio_bad_index_and_label(cached):
    row = cached[0].segments.iloc[0]
    with pytest.raises(BadAudio, match="not segment 7"):
        segment_audio(row.path, FE, 7)
    with pytest.raises(ValueError, match="Unknown augmentation label"):
        segment_audio(row.path, FE, 0, "reverb")
    assert Augmentation.from_label("pitch+3") == Augmentation("pitch", 3.0)
    assert Augmentation.from_label("none") is None


def _generated(n: int) -> np.ndarray:
    """Noise, a pure tone, a chirp, a burst then near-silence, near-silence, clipping-loud noise, zeros."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / FE.sample_rate
    return np.stack([rng.standard_normal(n) * 0.1, 0.5 * np.sin(2 * np.pi * 440 * t),
                     0.3 * np.sin(2 * np.pi * (100 + 1500 * t) * t),
                     np.where(t < 1, rng.standard_normal(n) * 0.3, 1e-6 * rng.standard_normal(n)),
                     rng.standard_normal(n) * 1e-5, np.clip(rng.standard_normal(n), -1, 1), np.zeros(n)]
                    ).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("standardize", [True, False])
def test_tf_front_end_matches_librosa_features(cached, method, standardize):
    from ser_attacks.frontend_tf import TFFrontEnd
    orig = cached[0]
    speech = np.stack([segment_audio(r.path, FE, r.segment) for r in orig.segments.itertuples()])
    audio = np.concatenate([speech, _generated(FE.segment_samples)])
    X = np.stack([log_mel(a, FE) for a in audio])
    np.testing.assert_array_equal(X[:len(speech)], np.asarray(orig.X))      # the cached features
    norm = Normalizer(method, standardize).fit(X[:len(speech)])
    front = TFFrontEnd(FE, norm)
    Z_tf = front.features(audio)
    Z = norm.transform(X)
    assert Z_tf.shape == Z.shape == (len(audio), *FE.feature_shape)
    diff = np.abs(Z_tf - Z).max()
    assert diff <= 1e-3, f"{norm.name}: max |diff| {diff:.3g}"
    db = np.abs(front.log_mel(audio).numpy() - X).max()
    assert db <= 1e-3, f"log-Mel dB max |diff| {db:.3g}"


def test_waveform_model_gives_the_spectrogram_models_logits_and_gradients(cached):
    import keras
    import tensorflow as tf

    from ser_attacks.frontend_tf import waveform_model
    from ser_attacks.models import build_cnn_lstm
    orig = cached[0]
    audio = np.stack([segment_audio(r.path, FE, r.segment) for r in orig.segments.itertuples()][:4])
    keras.utils.set_random_seed(0)
    model = build_cnn_lstm(list(FE.feature_shape), 5, n_windows=9, conv=[dict(filters=4, kernel=5, pool=4, stride=4)],
                           lstm_units=8)
    norm = Normalizer().fit(np.asarray(orig.X))
    wm = waveform_model(model, FE, norm)
    assert tuple(wm.input_shape[1:]) == (FE.segment_samples,)
    z_spec = model(norm.transform(np.stack([log_mel(a, FE) for a in audio]))).numpy()
    z_wave = wm(audio).numpy()
    np.testing.assert_allclose(z_wave, z_spec, atol=1e-4)
    x = tf.constant(audio)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(wm(x)[:, 0])
    g = tape.gradient(out, x).numpy()
    assert np.isfinite(g).all() and np.abs(g).max() > 0, "the gradient reaches the waveform"
