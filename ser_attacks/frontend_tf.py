"""A differentiable TensorFlow copy of the feature front end and the saved normalizer.

waveform (batch, ``fe.segment_samples``) at ``fe.sample_rate``
  → centred STFT (``n_fft`` 368, hop 184, periodic Hann; ``n_fft // 2`` zeros padded at both ends, as
    librosa's ``center=True, pad_mode="constant"``) → power ``|S|²``
  → Mel filterbank: the matrix of ``librosa.filters.mel`` (Slaney scale and norm), the same numbers
  → dB: ``10·log10(max(power, 1e-10))`` (``ref=1.0``), then librosa's ``top_db=80`` floor, which is relative
    to the maximum of EACH spectrogram (``max(S_db, S_db.max() - 80)`` over that segment's frames × bands)
  → the saved ``Normalizer`` (method → per-band standardization → clip to the training range)
  → (batch, frames, n_mels, 1), the model's input.

It matches ``ser_attacks.data.audio.log_mel`` + ``Normalizer.transform`` to float32 round-off
(``tests/test_frontend_tf.py``: max |diff| ≤ 1e-3 in normalized units on synthetic speech, noise, tones
and near-silent segments; measured ≤ 2e-5 dB before normalization). Where it differs, and why:

* Precision: librosa multiplies the frames by a float64 window, runs its FFT and rounds the spectrum to
  complex64; here window, FFT, power, Mel projection and log run in float64 and the dB are rounded to float32.
  On the generated test signals it gave the same float32 dB as librosa on float64 input, and it differs from
  the float32 librosa features by librosa's own complex64 rounding (≤ ~2e-5 dB). A float32 window or a float32 TF FFT is
  NOT good enough: their round-off floor (~1e-7 of a frame's magnitude, on every bin) put Mel cells 70-80 dB
  below a pure tone's maximum up to 8e-4 dB off.
* Cells within round-off of the ``top_db`` floor can land on either side of it (difference ≤ that round-off).
Padding, framing, window, Mel matrix and the dB/floor/clip rules are identical by construction.

Gradients: ``max(power, 1e-10)``, the ``top_db`` floor and the normalizer's clip have zero gradient where they
are active (floored / clipped cells), exactly as a perturbation there has no effect on the model's input.
"""
from __future__ import annotations

import numpy as np

from .data.audio import FrontEnd, ensure_librosa_kernels
from .normalization import Normalizer

AMIN = 1e-10      # librosa.power_to_db defaults (amin), with ref=1.0 as in ser_attacks.data.audio.log_mel
TOP_DB = 80.0


def mel_matrix(fe: FrontEnd) -> np.ndarray:
    """librosa's Mel filterbank for this front end, (n_mels, 1 + n_fft // 2) float32."""
    import librosa

    ensure_librosa_kernels()
    return librosa.filters.mel(sr=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels).astype(np.float32)


def stft_window(fe: FrontEnd) -> np.ndarray:
    """The window librosa's stft uses (``get_window("hann", n_fft, fftbins=True)``: periodic Hann)."""
    from scipy.signal import get_window
    return get_window("hann", fe.n_fft, fftbins=True)          # float64, as librosa multiplies it


class TFFrontEnd:
    """waveform → log-Mel dB → normalized model input, as TensorFlow ops (differentiable).

    ``normalizer=None`` stops after the log-Mel dB (``log_mel``)."""

    def __init__(self, fe: FrontEnd, normalizer: Normalizer | None = None):
        import tensorflow as tf
        self.fe, self.normalizer = fe, normalizer
        self._mel_t = tf.constant(mel_matrix(fe).T.astype(np.float64))   # (bins, n_mels), librosa's float32 values
        self._window = tf.constant(stft_window(fe))
        st = normalizer.state if normalizer is not None else {}
        self._state = {k: tf.constant(np.asarray(v, dtype=np.float32)) for k, v in st.items()}

    # -- librosa.feature.melspectrogram + power_to_db -------------------------------------------------
    def power_spectrogram(self, y):
        """(b, samples) → (b, frames, 1 + n_fft // 2) power, centred frames as librosa."""
        import tensorflow as tf
        fe = self.fe
        pad = fe.n_fft // 2
        y = tf.pad(tf.cast(tf.convert_to_tensor(y), tf.float64), [[0, 0], [pad, pad]])
        S = tf.signal.stft(y, frame_length=fe.n_fft, frame_step=fe.hop_length, fft_length=fe.n_fft,
                           window_fn=lambda n, dtype: tf.cast(self._window, dtype), pad_end=False)
        return tf.math.square(tf.math.real(S)) + tf.math.square(tf.math.imag(S))

    def log_mel(self, y):
        """(b, samples) → (b, frames, n_mels) log-Mel power in dB, floored at each spectrogram's max − 80 dB."""
        import tensorflow as tf
        mel = tf.linalg.matmul(self.power_spectrogram(y), self._mel_t)
        db = tf.cast((10.0 / np.log(10.0)) * tf.math.log(tf.maximum(mel, AMIN)), tf.float32)
        floor = tf.reduce_max(db, axis=[1, 2], keepdims=True) - TOP_DB
        return tf.maximum(db, floor)

    # -- Normalizer.transform -------------------------------------------------------------------------
    def normalize(self, X):
        """(b, frames, n_mels) dB → (b, frames, n_mels, 1), as ``Normalizer.transform``."""
        import tensorflow as tf
        norm, st = self.normalizer, self._state
        if norm is None:
            return X[..., None]
        if norm.method == "norm_sum":
            a = X * (np.log(10.0) / 10.0)
            X = X - (10.0 / np.log(10.0)) * tf.reduce_logsumexp(a, axis=[1, 2], keepdims=True)
        elif norm.method == "norm_max_global":
            X = X / st["global_max"]
        elif norm.method == "norm_max_local":
            X = X / tf.maximum(tf.reduce_max(tf.abs(X), axis=[1, 2], keepdims=True), 1e-6)
        if norm.standardize:
            X = (X - st["mean"]) / st["std"]
        if norm.clip:       # the normalizer's box: per band (n_mels,) when it has one, else the global range
            lo, hi = (st["band_min"], st["band_max"]) if "band_min" in st else (st["min"], st["max"])
            X = tf.clip_by_value(X, lo, hi)
        return X[..., None]

    def __call__(self, y):
        return self.normalize(self.log_mel(y))

    def features(self, y: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """NumPy in, NumPy out: model inputs for a batch of waveforms."""
        y = np.asarray(y, dtype=np.float32).reshape(-1, self.fe.segment_samples)
        return np.concatenate([self(y[i:i + batch_size]).numpy() for i in range(0, len(y), batch_size)]) \
            if len(y) else np.zeros((0, *self.fe.feature_shape), np.float32)


def frontend_layer(fe: FrontEnd, normalizer: Normalizer):
    """The TF front end and normalizer as a Keras layer (waveforms → model inputs); ``input_shape_`` is the
    waveform's shape, for ``estimator.make_classifier(..., frontend=...)``."""
    import keras
    front = TFFrontEnd(fe, normalizer)

    class FrontEndLayer(keras.layers.Layer):
        input_shape_ = (fe.segment_samples,)

        def call(self, y):
            return front(y)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *fe.feature_shape)

    return FrontEndLayer(name="tf_front_end", trainable=False)


def waveform_model(model, fe: FrontEnd, normalizer: Normalizer):
    """A Keras model on waveforms: the TF front end + normalizer, then the trained ``model`` (logits). (The
    attacked waveform model is built by ``estimator.make_classifier``, with the defense where there is one.)"""
    import keras
    inp = keras.Input((fe.segment_samples,), name="waveform")
    return keras.Model(inp, model(frontend_layer(fe, normalizer)(inp)), name=f"waveform_{model.name}")
