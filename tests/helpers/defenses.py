"""Defense layers for tests (``defense._target_=tests.helpers.defenses.<Class>``): transforms whose effect no
attack path can hide, so a test fails if a path drops the defense."""
from __future__ import annotations

import keras
import tensorflow as tf


class Zero(keras.layers.Layer):
    """Replaces the input by zeros: the defended model's logits are the same for every input, its gradients 0."""
    domain = "spectrogram"
    randomized = False
    differentiable = True

    def __init__(self, domain: str = "spectrogram", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.domain = domain

    def call(self, x, training=False):
        return x * 0.0            # connected: ART's stock gradients need a tensor, not None

    def compute_output_shape(self, s):
        return s


class ZeroWave(Zero):
    domain = "waveform"

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__("waveform", seed, **kwargs)


class Count(keras.layers.Layer):
    """The identity, counting the samples that pass through it (``n``), and the shape it last saw."""
    domain = "spectrogram"
    randomized = False
    differentiable = True

    def __init__(self, domain: str = "spectrogram", **kwargs):
        super().__init__(**kwargs)
        self.domain = domain
        self.n = self.add_weight(shape=(), initializer="zeros", trainable=False, dtype="float32", name="n")
        self.seen_shape = None

    def call(self, x, training=False):
        self.seen_shape = tuple(x.shape[1:])
        self.n.assign_add(tf.cast(tf.shape(x)[0], tf.float32))
        return tf.identity(x)

    def compute_output_shape(self, s):
        return s

    @property
    def count(self) -> int:
        return int(self.n.numpy())
