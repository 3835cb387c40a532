"""MP3 compression of the waveform (``defense=mp3``, ``input=waveform``): each 3 s segment encoded to MP3 at a
constant bitrate and decoded back, before the front end (the lossy-compression defense of Das et al. 2018 for
speech, ART's ``Mp3Compression``). The codec is libsndfile's (LAME to encode, mpg123 to decode), shipped inside the
``soundfile`` wheel the project already pins: no pydub, no ffmpeg binary.

``compression_level`` is libsndfile's (0 = best quality); at 16 kHz, constant bitrate, it gives 160 kbps at 0,
128 at 0.25, 80 at 0.5, 48 at 0.75, 40 at 0.8 (measured: ``tests/test_mp3.py``). Above 0.8 LAME changes the
stream's sample rate and the decoded segment no longer lines up with the input: refused. The decoded segment has
the input's length (gapless); LAME's low-pass removes the top of the band (a 7.8 kHz tone is gone).

Not differentiable (an encoder is no TensorFlow op): attacked with BPDA (``defense.bpda``, default true: the
forward pass compresses, the gradient is the identity's); with ``defense.bpda=false`` the attacker gets zero
gradients, the masking the checklist flags. Deterministic (no randomness; ``seed`` is accepted and unused).
"""
from __future__ import annotations

import io

import keras
import numpy as np
import tensorflow as tf

MAX_LEVEL = 0.8


def compress(audio: np.ndarray, sample_rate: int, compression_level: float) -> np.ndarray:
    """(n, samples) float waveforms → MP3 (constant bitrate) → decoded, same shape, float32."""
    import soundfile as sf
    audio = np.asarray(audio, np.float32)
    out = np.empty_like(audio)
    for i, y in enumerate(audio.reshape(-1, audio.shape[-1])):
        buf = io.BytesIO()
        sf.write(buf, np.clip(y, -1.0, 1.0), int(sample_rate), format="MP3", compression_level=float(compression_level),
                 bitrate_mode="CONSTANT")
        buf.seek(0)
        z, sr = sf.read(buf, dtype="float32")
        if sr != sample_rate or len(z) != len(y):
            raise RuntimeError(f"MP3 round trip changed the segment: {len(y)} samples at {sample_rate} Hz in, "
                               f"{len(z)} at {sr} Hz out")
        out.reshape(-1, audio.shape[-1])[i] = z
    return out


class Mp3Compression(keras.layers.Layer):
    domain = "waveform"
    randomized = False
    differentiable = False

    def __init__(self, compression_level: float = 0.75, sample_rate: int = 16000, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.compression_level, self.sample_rate, self.seed = compression_level, sample_rate, seed
        self._check_params()

    def _check_params(self) -> None:
        v = self.compression_level
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_LEVEL:
            raise ValueError(f"compression_level must be in [0, {MAX_LEVEL}] (0 = 160 kbps, {MAX_LEVEL} = 40 kbps at "
                             f"16 kHz; above it the MP3 stream changes its sample rate), got {v!r}")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {self.sample_rate!r}")

    def call(self, x, training=False):
        y = tf.numpy_function(lambda a: compress(a, self.sample_rate, self.compression_level), [x], tf.float32,
                              stateful=False)
        y.set_shape(x.shape)
        return y

    def compute_output_shape(self, s):
        return s
