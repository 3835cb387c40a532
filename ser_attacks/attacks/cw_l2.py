"""Carlini & Wagner L2 with a fused gradient (``conf/attack/cw_l2.yaml``).

ART's ``CarliniL2Method`` is already batched over samples; per optimisation step it computes the
gradient of ``z_add - z_sub`` (the target logit against the best other one) as two class gradients,
i.e. two forward and two backward passes. ``FusedCarliniL2Method`` computes the gradient of the
difference in one compiled forward + backward pass (the backward pass is linear, so this is the same
gradient up to float32 rounding, ~1e-7 relative); everything else is ART's code. On the trained final
model two thirds of the time of ART's class (compiled estimator) went to these two gradients and the
rest to the line search's predictions, which stay as they are.

C&W-L2 takes plain gradient steps with a line search (no per-cell normalisation as in C&W-L-inf's Adam),
so such rounding differences stay of their own size: results agree with ART's within 1e-4
(``tests/test_fast_attacks.py``).
"""
from __future__ import annotations

import numpy as np
from art.attacks.evasion import CarliniL2Method

from ..estimator import graph, is_compiled


def _build(model, input_shape):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32), tf.TensorSpec((None,), tf.int32),
                                  tf.TensorSpec((None,), tf.int32)])
    def diff_gradient(x, add, sub):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = model(x, training=False)
            d = tf.gather(z, add, axis=1, batch_dims=1) - tf.gather(z, sub, axis=1, batch_dims=1)
        return tape.gradient(d, x)

    return diff_gradient


class FusedCarliniL2Method(CarliniL2Method):
    """ART's C&W L2 (same parameters and loop), the two class gradients of a step fused into one pass."""

    def _loss_gradient(self, z_logits, target, x, x_adv, x_adv_tanh, c_weight, clip_min, clip_max):
        """ART's ``_loss_gradient`` (same expressions) with ``d(z_add - z_sub)/dx`` in one pass."""
        if not is_compiled(self.estimator):
            return super()._loss_gradient(z_logits, target, x, x_adv, x_adv_tanh, c_weight, clip_min, clip_max)
        other = np.argmax(z_logits * (1 - target) + (np.min(z_logits, axis=1) - 1)[:, np.newaxis] * target, axis=1)
        if self.targeted:
            i_add, i_sub = other, np.argmax(target, axis=1)
        else:
            i_add, i_sub = np.argmax(target, axis=1), other
        est = self.estimator
        fn = graph(est, "cw_l2/diff_gradient", lambda model: _build(model, tuple(est.input_shape)))
        loss_gradient = fn(np.asarray(x_adv, np.float32), i_add.astype(np.int32), i_sub.astype(np.int32)).numpy()
        loss_gradient = loss_gradient.reshape(x.shape)

        c_mult = c_weight
        for _ in range(len(x.shape) - 1):
            c_mult = c_mult[:, np.newaxis]

        loss_gradient *= c_mult
        loss_gradient += 2 * (x_adv - x)
        loss_gradient *= clip_max - clip_min
        loss_gradient *= (1 - np.square(np.tanh(x_adv_tanh))) / (2 * self._tanh_smoother)
        return loss_gradient
