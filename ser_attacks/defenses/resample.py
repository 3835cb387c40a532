"""Resampling down and up on the waveform (``defense=resample``, ``input=waveform``): each 3 s segment low-passed
by a moving average over ``sample_rate / rate`` samples (a crude anti-aliasing filter), sampled at ``rate`` Hz by
linear interpolation, and brought back to ``sample_rate`` by linear interpolation. Every step is linear in the
waveform, so the transform is differentiable and attacked through its own gradient (no BPDA needed).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def _lerp_matrix_parts(n_in: int, n_out: int, step: float):
    """Indices and weights of a linear interpolation at positions k * step (k < n_out) of a signal of n_in."""
    pos = np.minimum(np.arange(n_out) * step, n_in - 1)
    i0 = np.floor(pos).astype(np.int32)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


class Resample(keras.layers.Layer):
    domain = "waveform"
    randomized = False
    differentiable = True

    def __init__(self, rate: int = 8000, sample_rate: int = 16000, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.sample_rate, self.seed = rate, sample_rate, seed
        self._check_params()

    def _check_params(self) -> None:
        for key in ("rate", "sample_rate"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be a positive integer (Hz), got {v!r}")
        if not self.rate < self.sample_rate:
            raise ValueError(f"rate must be below sample_rate ({self.sample_rate} Hz), got {self.rate}")

    def call(self, x, training=False):
        n = int(x.shape[-1])
        ratio = self.sample_rate / self.rate
        width = max(1, int(round(ratio)))
        smooth = tf.nn.avg_pool1d(x[..., None], width, 1, "SAME")[..., 0] if width > 1 else x
        n_low = int(np.floor((n - 1) / ratio)) + 1
        i0, i1, w = _lerp_matrix_parts(n, n_low, ratio)
        low = tf.gather(smooth, i0, axis=-1) * (1 - w) + tf.gather(smooth, i1, axis=-1) * w
        j0, j1, v = _lerp_matrix_parts(n_low, n, 1.0 / ratio)
        return tf.gather(low, j0, axis=-1) * (1 - v) + tf.gather(low, j1, axis=-1) * v

    def compute_output_shape(self, s):
        return s
