"""Smoothing of the model input along time and frequency (``defense=median_filter`` / ``mean_filter``): each cell
of the normalized log-Mel spectrogram replaced by the median (or the mean) of the ``size`` = [frames, mels]
neighbourhood around it; borders mirrored (``scipy.ndimage``'s ``mode="reflect"``, which the tests compare with).

The mean filter is linear, so differentiable: attacked through its own gradient. The median's gradient reaches one
cell per window only, so it is declared not differentiable: attacked with BPDA (``defense.bpda``), the
identity's gradient.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class _Filter(keras.layers.Layer):
    domain = "spectrogram"
    randomized = False

    def __init__(self, size=(3, 3), seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.seed = list(size) if not isinstance(size, int) else [size, size], seed
        self._check_params()

    def _check_params(self) -> None:
        if len(self.size) != 2 or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0
                                      for k in self.size):
            raise ValueError(f"size must be two odd positive integers [frames, mels], got {self.size!r}")

    def _patches(self, x):
        """(B, frames, mels, kt * kf): each cell's neighbourhood, borders mirrored."""
        kt, kf = self.size
        pad = tf.pad(x, [[0, 0], [kt // 2, kt // 2], [kf // 2, kf // 2], [0, 0]], mode="SYMMETRIC")
        return tf.image.extract_patches(pad, [1, kt, kf, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")

    def compute_output_shape(self, s):
        return s


class MeanFilter(_Filter):
    differentiable = True

    def call(self, x, training=False):
        return tf.reduce_mean(self._patches(x), axis=-1, keepdims=True)


class MedianFilter(_Filter):
    differentiable = False

    def call(self, x, training=False):
        p = self._patches(x)
        n = self.size[0] * self.size[1]
        return tf.math.top_k(p, n // 2 + 1).values[..., -1:]
