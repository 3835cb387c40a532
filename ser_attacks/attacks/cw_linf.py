"""Carlini & Wagner L-inf, batched and compiled (``conf/attack/cw_linf.yaml``): ART's numbers, fewer passes.

ART's ``CarliniLInfMethod`` attacks one sample at a time. For each sample it lowers ``tau`` (x
``decrease_factor``) while an attack inside the box succeeds; for each ``tau`` it raises ``const`` (x
``const_factor``) from ``initial_const`` to ``largest_const``; for each ``const`` it runs ART's NumPy Adam
for up to ``max_iter`` steps. Every Adam step costs ART 4 forward and 2 backward passes (``predict`` +
``class_gradient`` twice for the gradient, ``predict`` again for the loss), and every ``const`` 2 more
forward passes after the run.

``BatchedCarliniLInfMethod`` runs exactly that per-sample algorithm -- ART's loops, ART's ``Adam`` object,
ART's loss and gradient formulas as the same float32/float64 NumPy expressions -- written as one
coroutine per sample (``ser_attacks.attacks.lockstep``). All samples of a batch advance together, and each round
is ONE compiled call that, per sample, runs
- one forward pass whose logits serve both the loss after a step and the gradient of the next step
  (ART evaluates each point twice),
- the two class gradients, only where the step's loss says Adam goes on (computed in the graph; NumPy
  still decides, and asks again in the rare case the two disagree),
and the starting point's logits and gradients, the same for every ``(tau, const)`` of a sample, are
computed once. Nothing else changes: with the same estimator the adversarial examples equal ART's bit
for bit (``tests/test_fast_attacks.py``).

The model is evaluated one sample at a time inside the call (``per_sample=True``, see
``ser_attacks.estimator``): ART's Adam divides every cell's step by ``sqrt(v) + 1e-8``, so a cell whose
gradient is ~1e-8 moves by a step proportional to the gradient's last bits; the ~1e-9 gradient
differences that batch-size-dependent rounding causes would move such cells by up to ~1e-3.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from art.attacks.evasion import CarliniLInfMethod
from art.config import ART_NUMPY_DTYPE
from art.optimizers import Adam
from art.utils import check_and_transform_label_format, get_labels_np_array, original_to_tanh, tanh_to_original
from tqdm.auto import tqdm

from ..estimator import check_per_sample, graph, is_compiled, map_samples
from . import lockstep

log = logging.getLogger(__name__)

LOGITS, GRADS_IF_GOING_ON, GRADS = 0, 1, 2      # what a request asks for
LOSS_CONVERGED = 0.001                          # ART's Adam.optimize(loss_converged=0.001) in _generate_single


@dataclass
class _Request:
    x_adv: np.ndarray           # (1, *input_shape): the point
    mode: int
    target: np.ndarray          # (1, nb_classes) one-hot
    x: np.ndarray               # (1, *input_shape): the original sample
    tau: float
    const: float


@dataclass
class _Answer:
    z: np.ndarray               # (1, nb_classes) logits
    other: int                  # the best class other than target (ART's i_sub / i_add)
    grad_target: np.ndarray | None   # (1, 1, *input_shape), like ART's class_gradient(label=...)
    grad_other: np.ndarray | None


def _build(model, confidence: float, targeted: bool, per_sample: bool, input_shape, nb_classes: int):
    import tensorflow as tf

    def one(x_adv, target, x, tau, const, mode):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x_adv)
            z = model(x_adv, training=False)
            masked = z * (1 - target) + (tf.reduce_min(z, axis=1) - 1)[:, None] * target
            other = tf.argmax(masked, axis=1, output_type=tf.int32)
            label = tf.argmax(target, axis=1, output_type=tf.int32)
            z_label = tf.gather(z, label, axis=1, batch_dims=1)      # as the compiled estimator's class_gradient
            z_other = tf.gather(z, other, axis=1, batch_dims=1)
        # the loss after a step (float32 here; NumPy recomputes it exactly as ART and has the last word)
        z_t, z_o = tf.reduce_sum(z * target, axis=1), tf.reduce_max(masked, axis=1)
        loss_1 = tf.maximum(((z_o - z_t) if targeted else (z_t - z_o)) + confidence, 0.0)
        excess = tf.maximum(0.0, tf.abs(x_adv - x) - tf.reshape(tau, [-1] + [1] * len(input_shape)))
        loss = loss_1 * const + tf.reduce_sum(tf.reshape(excess, [tf.shape(x)[0], -1]), axis=1)
        need = (mode == GRADS) | ((mode == GRADS_IF_GOING_ON) & (loss >= LOSS_CONVERGED))
        grads = tf.cond(tf.reduce_any(need), lambda: (tape.gradient(z_label, x_adv), tape.gradient(z_other, x_adv)),
                        lambda: (tf.zeros_like(x_adv), tf.zeros_like(x_adv)))
        return z, other, grads[0], grads[1], need

    spec = tf.TensorSpec((None, *input_shape), tf.float32)
    out = (tf.TensorSpec((nb_classes,), tf.float32), tf.TensorSpec((), tf.int32),
           tf.TensorSpec(input_shape, tf.float32), tf.TensorSpec(input_shape, tf.float32), tf.TensorSpec((), tf.bool))

    @tf.function(input_signature=[spec, tf.TensorSpec((None, nb_classes), tf.float32), spec,
                                  tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32),
                                  tf.TensorSpec((None,), tf.int32)])
    def evaluate(x_adv, target, x, tau, const, mode):
        return map_samples(one, (x_adv, target, x, tau, const, mode), per_sample, out)

    return evaluate


class BatchedCarliniLInfMethod(CarliniLInfMethod):
    """ART's C&W L-inf (same parameters, same results) with all samples of a batch in lock step and one
    fused, compiled model call per round. ``per_sample``: evaluate the model one sample at a time inside
    the call (results independent of the batch composition and equal to ART's); False = whole batches
    (faster on a GPU; float32 rounding then differs from ART's per-sample calls)."""

    attack_params = CarliniLInfMethod.attack_params + ["per_sample"]

    def __init__(self, classifier, confidence: float = 0.0, targeted: bool = False, learning_rate: float = 0.01,
                 max_iter: int = 10, decrease_factor: float = 0.9, initial_const: float = 1e-5,
                 largest_const: float = 20.0, const_factor: float = 2.0, batch_size: int = 32, verbose: bool = True,
                 per_sample: bool = True) -> None:
        self.per_sample = per_sample
        super().__init__(classifier, confidence=confidence, targeted=targeted, learning_rate=learning_rate,
                         max_iter=max_iter, decrease_factor=decrease_factor, initial_const=initial_const,
                         largest_const=largest_const, const_factor=const_factor, batch_size=batch_size,
                         verbose=verbose)
        self.n_model_calls = 0            # compiled calls (rounds), for tests and logs
        self.n_points = 0                 # points evaluated (forward passes)
        self.n_gradients = 0              # points whose two class gradients were computed

    def _check_params(self) -> None:
        super()._check_params()
        check_per_sample(self.per_sample)

    # --- ART's formulas, from given logits / gradients instead of estimator calls ------------------------
    def _loss_from(self, z_predicted, x_adv, target, x, const, tau):
        """ART's ``_loss`` (same expressions) with the logits already known."""
        z_target = np.sum(z_predicted * target, axis=1)
        z_other = np.max(z_predicted * (1 - target) + (np.min(z_predicted, axis=1) - 1)[:, np.newaxis] * target,
                         axis=1)
        if self.targeted:
            loss_1 = np.maximum(z_other - z_target + self.confidence, np.zeros(x_adv.shape[0]))
        else:
            loss_1 = np.maximum(z_target - z_other + self.confidence, np.zeros(x_adv.shape[0]))
        loss_2 = np.sum(np.maximum(0.0, np.abs(x_adv - x) - tau))
        return loss_1 * const + loss_2

    def _other_label(self, z_logits, target) -> int:
        return int(np.argmax(z_logits * (1 - target) + (np.min(z_logits, axis=1) - 1)[:, np.newaxis] * target,
                             axis=1)[0])

    def _loss_gradient_from(self, answer: _Answer, x_adv, x_adv_tanh, clip_min, clip_max, x, tau):
        """ART's ``_loss_gradient`` (same expressions) with the two class gradients already known."""
        if self.targeted:
            g_add, g_sub = answer.grad_other, answer.grad_target
        else:
            g_add, g_sub = answer.grad_target, answer.grad_other
        loss_gradient = g_add.copy()
        loss_gradient -= g_sub
        loss_gradient = loss_gradient.reshape(x_adv.shape)

        loss_gradient_2 = np.sign(np.maximum(0.0, np.abs(x_adv - x) - tau)) * np.sign(x_adv - x)
        loss_gradient_2 *= clip_max - clip_min
        loss_gradient_2 *= (1 - np.square(np.tanh(x_adv_tanh))) / (2 * self._tanh_smoother)

        loss_gradient *= clip_max - clip_min
        loss_gradient *= (1 - np.square(np.tanh(x_adv_tanh))) / (2 * self._tanh_smoother)
        return loss_gradient + loss_gradient_2

    # --- one sample: ART's generate loop body, with `yield` where ART calls the model ---------------------
    def _flow(self, x_i, y_i, clip_min, clip_max):
        x_adv_i = x_i.astype(ART_NUMPY_DTYPE)
        x_tanh_0 = original_to_tanh(x_i, clip_min, clip_max, self._tanh_smoother)
        start = None                     # (point, answer) at the start of every Adam run: the same each time

        def ask(point, mode, const, tau):
            return _Request(point, mode, y_i, x_i, tau, const)

        sample_done = False
        tau = 1.0
        delta_i_best = 1.0
        while tau > 1.0 / 256.0 and not sample_done:
            sample_done = True
            const = self.initial_const
            while const < self.largest_const:
                # _generate_single: Adam.optimize(func, jac, x_0, max_iter, loss_converged=0.001)
                adam = Adam(alpha=self.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
                x_0 = x_tanh_0.copy()
                if start is None:
                    point = tanh_to_original(x_0, clip_min, clip_max)
                    start = (point, (yield ask(point, GRADS, const, tau)))
                point, answer = start
                num_iter, converged = 1, False
                while not converged and num_iter <= self.max_iter:
                    if answer.grad_target is None:                   # the graph skipped them: ask again
                        answer = yield ask(point, GRADS, const, tau)
                    if answer.other != self._other_label(answer.z, y_i):
                        raise RuntimeError("graph and NumPy disagree on the competing class")  # pragma: no cover
                    delta_x = self._loss_gradient_from(answer, point, x_0, clip_min, clip_max, x_i, tau)
                    x_0 = adam.update(num_iter, x=x_0, delta_x=delta_x)
                    point = tanh_to_original(x_0, clip_min, clip_max)
                    answer = yield ask(point, GRADS_IF_GOING_ON if num_iter < self.max_iter else LOGITS, const, tau)
                    if self._loss_from(answer.z, point, y_i, x_i, const, tau) < LOSS_CONVERGED:
                        converged = True
                    num_iter += 1
                x_adv_batch = point                      # = tanh_to_original(Adam's result), as ART returns it
                delta_i = np.max(np.abs(x_adv_batch - x_i[0]))
                if np.argmax(answer.z, axis=1) != np.argmax(y_i, axis=1) and delta_i < delta_i_best:
                    x_adv_i[0] = x_adv_batch
                    delta_i_best = delta_i
                    sample_done = False
                const *= self.const_factor
            tau_actual = np.max(np.abs(x_adv_i[0] - x_i[0]))
            if tau_actual < tau:
                tau = tau_actual
            tau *= self.decrease_factor
        return x_adv_i[0]

    # --- model calls -----------------------------------------------------------------------------------------
    def _evaluate(self, requests: list[_Request]) -> list[_Answer]:
        self.n_model_calls += 1
        self.n_points += len(requests)
        est = self.estimator
        if not is_compiled(est):                          # e.g. estimator=stock: ART's own calls, per sample
            out = []
            for r in requests:
                z = est.predict(np.array(r.x_adv, dtype=ART_NUMPY_DTYPE), batch_size=self.batch_size)
                other = self._other_label(z, r.target)
                need = r.mode == GRADS or (r.mode == GRADS_IF_GOING_ON and
                                           self._loss_from(z, r.x_adv, r.target, r.x, r.const, r.tau) >= LOSS_CONVERGED)
                label = int(np.argmax(r.target, axis=1)[0])
                grads = (est.class_gradient(r.x_adv, label=np.array([label])),
                         est.class_gradient(r.x_adv, label=np.array([other]))) if need else (None, None)
                self.n_gradients += int(need)
                out.append(_Answer(z, other, *grads))
            return out
        fn = graph(est, f"cw_linf/{self.confidence}/{self.targeted}/{self.per_sample}",
                   lambda model: _build(model, float(self.confidence), bool(self.targeted), self.per_sample,
                                        tuple(est.input_shape), est.nb_classes))
        cat = lambda key: np.concatenate([getattr(r, key) for r in requests]).astype(np.float32)  # noqa: E731
        z, other, g_t, g_o, need = (t.numpy() for t in fn(
            cat("x_adv"), cat("target"), cat("x"), np.array([r.tau for r in requests], np.float32),
            np.array([r.const for r in requests], np.float32), np.array([r.mode for r in requests], np.int32)))
        self.n_gradients += int(need.sum())
        return [_Answer(z[k:k + 1], int(other[k]), g_t[k][None, None] if need[k] else None,
                        g_o[k][None, None] if need[k] else None) for k in range(len(requests))]

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """ART's ``generate`` (same checks, labels and clip box), all samples of a batch at once."""
        if y is not None:
            y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)
        x_adv = x.astype(ART_NUMPY_DTYPE)
        if self.estimator.clip_values is not None:
            clip_min, clip_max = self.estimator.clip_values
        else:
            clip_min, clip_max = np.amin(x), np.amax(x)
        if self.targeted and y is None:
            raise ValueError("Target labels `y` need to be provided for a targeted attack.")
        if y is None:
            y = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
        if self.estimator.nb_classes == 2 and y.shape[1] == 1:
            raise ValueError("This attack has not yet been tested for binary classification with a single output "
                             "classifier.")
        with tqdm(total=len(x), desc="C&W L_inf (batched)", disable=not self.verbose) as bar:
            for s in range(0, len(x), self.batch_size):
                ids = range(s, min(s + self.batch_size, len(x)))
                flows = [self._flow(x[[i]], y[[i]], clip_min, clip_max) for i in ids]
                for i, adv in zip(ids, lockstep.run(flows, self._evaluate, bar)):
                    x_adv[i] = adv
        log.debug("C&W L_inf: %d compiled calls, %d points, %d with gradients", self.n_model_calls,
                  self.n_points, self.n_gradients)
        return x_adv
