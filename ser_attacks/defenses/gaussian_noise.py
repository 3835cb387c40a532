"""Additive Gaussian noise on the waveform (``defense=gaussian_noise``, ``input=waveform``): every call adds
fresh noise N(0, ``sigma``²) (full-scale amplitude units) to each 3 s segment before the front end.

Randomized: attacked with EOT (``defense.eot`` = k draws averaged in the attacked model); a run's clean and
adversarial predictions are one draw each (``clf.deployed``), as the deployed defense classifies. Seeded: a
``tf.random.Generator`` from ``seed``, so the same job draws the same noise.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class GaussianNoise(keras.layers.Layer):
    domain = "waveform"
    randomized = True
    differentiable = True

    def __init__(self, sigma: float = 0.01, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.sigma, self.seed = sigma, seed
        self._check_params()
        self._rng = [tf.random.Generator.from_seed(int(seed))]    # in a list: Keras does not track it

    def _check_params(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not self.sigma > 0:
            raise ValueError(f"sigma must be > 0 (full-scale amplitude), got {self.sigma!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    def call(self, x, training=False):
        return x + float(self.sigma) * self._rng[0].normal(tf.shape(x), dtype=x.dtype)

    def compute_output_shape(self, s):
        return s
