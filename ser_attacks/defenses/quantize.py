"""Feature squeezing by bit depth (Xu et al. 2018) on the model input (``defense=quantize``): every cell of the
normalized log-Mel spectrogram rounded to one of ``2^bits`` levels evenly spaced on [``lo``, ``hi``] (σ units,
values outside clipped to the range first).

Not differentiable (rounding has zero gradient almost everywhere): attacked with BPDA (``defense.bpda``, the
default) the gradient is the identity's, i.e. the model's gradient at the quantized input.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class Quantize(keras.layers.Layer):
    domain = "spectrogram"
    randomized = False
    differentiable = False

    def __init__(self, bits: int = 5, lo: float = -5.0, hi: float = 5.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.bits, self.lo, self.hi, self.seed = bits, lo, hi, seed
        self._check_params()
        self.step = (float(hi) - float(lo)) / (2 ** int(bits) - 1)

    def _check_params(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be an integer in [1, 16], got {self.bits!r}")
        if not float(self.hi) > float(self.lo):
            raise ValueError(f"hi must be > lo, got lo={self.lo}, hi={self.hi}")

    def call(self, x, training=False):
        lo = tf.cast(self.lo, x.dtype)
        q = tf.round((tf.clip_by_value(x, lo, tf.cast(self.hi, x.dtype)) - lo) / self.step)
        return lo + q * tf.cast(self.step, x.dtype)

    def compute_output_shape(self, s):
        return s
