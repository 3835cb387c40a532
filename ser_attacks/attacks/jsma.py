"""JSMA, compiled and fused (``conf/attack/jsma.yaml``): ART's ``SaliencyMapMethod``, one pass per step.

ART's JSMA changes the two most salient cells per step until the target class is predicted. Each step
costs it a class gradient of the active samples (with ART's stock estimator: one full backward pass per
distinct target class among them) and then a prediction of the WHOLE batch, finished samples included.

``BatchedSaliencyMapMethod`` runs the same steps (ART's saliency selection with ``argpartition``, the
same updates, clipping, search space and stopping rule, as NumPy code on the same arrays) with ONE
compiled call per step on the samples changed in that step: one forward pass, whose logits decide
whether a sample goes on, and the gradient of its target logit only where it does (decided in the
graph). The gradient a step uses is the one computed at the end of the previous step at the same point.

Each sample is evaluated alone inside the call (``per_sample=True``): its result depends neither on the
batch size nor on which samples share its batch, and equals ART's ``SaliencyMapMethod`` run with
``batch_size=1`` bit for bit (``tests/test_fast_attacks.py``). JSMA picks cells by ``argpartition`` over
~33k gradient values, so the ~1e-9 differences that batch-size-dependent float32 rounding makes can
swap the choice of two near-equal cells; ART with ``batch_size > 1`` therefore follows the same rule
with different rounding. ``per_sample=False`` evaluates whole batches (faster on a GPU).

``clip_values`` may be two floats or two arrays of the input's shape (per-band boxes): a cell is
clipped to its own bound, and leaves the search space when it reaches it.
"""
from __future__ import annotations

import numpy as np
from art.attacks.evasion import SaliencyMapMethod
from art.config import ART_NUMPY_DTYPE
from art.utils import check_and_transform_label_format
from tqdm.auto import trange

from ..estimator import check_per_sample, graph, is_compiled, map_samples


def _build(model, per_sample: bool, input_shape, nb_classes: int):
    import tensorflow as tf

    def one(x, label, want):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = model(x, training=False)
            z_label = tf.gather(z, label, axis=1, batch_dims=1)      # as the compiled estimator's class_gradient
        need = want & (tf.argmax(z, axis=1, output_type=tf.int32) != label)
        grad = tf.cond(tf.reduce_any(need), lambda: tape.gradient(z_label, x), lambda: tf.zeros_like(x))
        return z, grad, need

    out = (tf.TensorSpec((nb_classes,), tf.float32), tf.TensorSpec(input_shape, tf.float32), tf.TensorSpec((), tf.bool))

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32), tf.TensorSpec((None,), tf.int32),
                                  tf.TensorSpec((None,), tf.bool)])
    def evaluate(x, label, want):
        return map_samples(one, (x, label, want), per_sample, out)

    return evaluate


class BatchedSaliencyMapMethod(SaliencyMapMethod):
    """ART's JSMA (same parameters and selection rule) with one fused compiled call per step."""

    attack_params = SaliencyMapMethod.attack_params + ["per_sample"]

    def __init__(self, classifier, theta: float = 0.1, gamma: float = 1.0, batch_size: int = 32,
                 verbose: bool = True, per_sample: bool = True) -> None:
        self.per_sample = per_sample
        super().__init__(classifier, theta=theta, gamma=gamma, batch_size=batch_size, verbose=verbose)
        self.n_model_calls = 0
        self.n_gradients = 0

    def _check_params(self) -> None:
        super()._check_params()
        check_per_sample(self.per_sample)

    def _evaluate(self, x: np.ndarray, label: np.ndarray, want: np.ndarray):
        """(logits, gradient of the label's logit or None per sample) at the points ``x`` (n, *input_shape)."""
        self.n_model_calls += 1
        est = self.estimator
        if not is_compiled(est):                      # e.g. estimator=stock: ART's own calls
            z = est.predict(x, batch_size=self.batch_size)
            need = want & (np.argmax(z, axis=1) != label)
            grads = np.zeros_like(x)
            if need.any():
                grads[need] = est.class_gradient(x[need], label=label[need])[:, 0]
        else:
            fn = graph(est, f"jsma/{self.per_sample}",
                       lambda model: _build(model, self.per_sample, tuple(est.input_shape), est.nb_classes))
            z, grads, need = (t.numpy() for t in fn(x.astype(np.float32), label.astype(np.int32), want))
        self.n_gradients += int(need.sum())
        return z, grads.reshape(len(x), -1), need

    def _select(self, grads: np.ndarray, search_space: np.ndarray) -> np.ndarray:
        """ART's ``_saliency_map`` on given gradients (n, nb_features): the two cells to change."""
        grads = grads.copy()
        used_features = 1 - search_space
        coeff = 2 * int(self.theta > 0) - 1
        grads[used_features == 1] = -np.inf * coeff
        if self.theta > 0:
            return np.argpartition(grads, -2, axis=1)[:, -2:]
        return np.argpartition(-grads, -2, axis=1)[:, -2:]

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if y is not None:
            y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)
        dims = list(x.shape[1:])
        self._nb_features = np.prod(dims)
        x_adv = np.reshape(x.astype(ART_NUMPY_DTYPE), (-1, self._nb_features))
        if y is None:
            from art.utils import random_targets
            preds = np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
            targets = np.argmax(random_targets(preds, self.estimator.nb_classes), axis=1)
        else:
            targets = np.argmax(y, axis=1)
        clip = self.estimator.clip_values
        if clip is not None:          # floats, or one bound per cell (flattened like the samples)
            clip_min, clip_max = (np.broadcast_to(np.asarray(c, ART_NUMPY_DTYPE), dims).reshape(-1)
                                  if np.ndim(c) else c for c in clip)
        for s in trange(0, len(x_adv), self.batch_size, desc="JSMA (fused)", disable=not self.verbose):
            batch = x_adv[s:s + self.batch_size]
            target = targets[s:s + self.batch_size].astype(np.int32)
            if clip is not None:
                search_space = np.zeros(batch.shape)
                if self.theta > 0:
                    search_space[batch < clip_max] = 1
                else:
                    search_space[batch > clip_min] = 1
            else:
                search_space = np.ones(batch.shape)
            all_feat = np.zeros_like(batch)
            z, grads, _ = self._evaluate(np.reshape(batch, [len(batch)] + dims), target, np.ones(len(batch), bool))
            current_pred = np.argmax(z, axis=1)
            active_indices = np.where(current_pred != target)[0]
            while active_indices.size != 0:
                feat_ind = self._select(grads[active_indices], search_space[active_indices])
                all_feat[active_indices, feat_ind[:, 0]] = 1
                all_feat[active_indices, feat_ind[:, 1]] = 1
                tmp_batch = batch[active_indices]
                n_act = np.arange(len(active_indices))
                if clip is not None:
                    if self.theta > 0:
                        clip_func, clip_value = np.minimum, clip_max
                    else:
                        clip_func, clip_value = np.maximum, clip_min
                    for k in (0, 1):
                        cells = feat_ind[:, k]
                        bound = clip_value[cells] if np.ndim(clip_value) else clip_value
                        tmp_batch[n_act, cells] = clip_func(bound, tmp_batch[n_act, cells] + self.theta)
                    batch[active_indices] = tmp_batch
                    search_space[batch == clip_value] = 0
                else:
                    tmp_batch[n_act, feat_ind[:, 0]] += self.theta
                    tmp_batch[n_act, feat_ind[:, 1]] += self.theta
                    batch[active_indices] = tmp_batch
                # only the changed samples can change their prediction: evaluate those, with the gradient
                # of the next step where they go on
                going = (np.sum(all_feat[active_indices], axis=1) / self._nb_features <= self.gamma) \
                    & (np.sum(search_space[active_indices], axis=1) > 0)
                z, g, _ = self._evaluate(np.reshape(batch[active_indices], [len(active_indices)] + dims),
                                         target[active_indices], going)
                current_pred[active_indices] = np.argmax(z, axis=1)
                grads[active_indices] = g
                active_indices = np.where((current_pred != target) * (np.sum(all_feat, axis=1) / self._nb_features
                                          <= self.gamma) * (np.sum(search_space, axis=1) > 0))[0]
            x_adv[s:s + self.batch_size] = batch
        return np.reshape(x_adv, x.shape)
