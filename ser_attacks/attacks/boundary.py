"""Boundary attack, seeded and batched (``conf/attack/boundary.yaml``).

ART's ``BoundaryAttack`` is not reproducible: its initial random images come from a fresh, unseeded
``np.random.RandomState()`` and its random-walk directions from NumPy's global generator, so the same
config gives different adversarial examples on every run (and a resumed sweep mixes runs that cannot
be compared). Here every sample gets its own generator, ``numpy.random.default_rng([seed, i])`` for the
i-th sample of ``generate``'s input, used for exactly the draws ART makes for that sample, in ART's order.

- ``SeededBoundaryAttack``: ART's class and loop unchanged, only with those generators. This is "stock
  ART" for the benchmark and the reference of the tests.
- ``BatchedBoundaryAttack``: the same per-sample algorithm (ART's ``_init_sample`` / ``_attack`` logic,
  step-size adaptation, ``_best_adv``, the same draws) as one coroutine per sample, all samples of a
  batch in lock step (``ser_attacks.attacks.lockstep``), the candidate predictions of a round in one pass.
  With ``per_sample=True`` (default) each sample's candidate set is predicted as its own batch, exactly
  the batches ART predicts, so the result equals ``SeededBoundaryAttack``'s bit for bit
  (``tests/test_fast_attacks.py``); ``per_sample=False`` predicts all candidates of a round together
  (faster on a GPU; float32 rounding of a batch then differs, which can flip a candidate lying within
  ~1e-7 of the decision boundary and change the walk from there).

``clip_values`` may be floats or per-cell arrays (``np.clip`` and ``Generator.uniform`` broadcast them).

The walk's NumPy work is small (a few norms and dot products of one spectrogram per candidate), but
BLAS's own threads fight TensorFlow's for the cores on every such call: in a profile of 20 iterations
on the 2-core CPU, 690 ``np.dot`` calls of 33k floats took 4.6 s (6.6 ms each) with OpenBLAS's default
threads, and too little to be listed with one. Both classes therefore run with one BLAS thread
(``threadpoolctl``), which also keeps their dot products bit-identical to each other.
"""
from __future__ import annotations

import logging

import numpy as np
from art.attacks.evasion import BoundaryAttack
from art.config import ART_NUMPY_DTYPE
from art.utils import check_and_transform_label_format, get_labels_np_array
from tqdm.auto import tqdm

from ..estimator import check_per_sample
from . import lockstep

log = logging.getLogger(__name__)


def sample_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """One independent generator per sample (its position in ``generate``'s input)."""
    return [np.random.default_rng([int(seed), i]) for i in range(n)]


class SeededBoundaryAttack(BoundaryAttack):
    """ART's BoundaryAttack with one seeded generator per sample (``seed``; None = the job's seed is
    expected, and 0 is used)."""

    attack_params = BoundaryAttack.attack_params + ["seed"]

    def __init__(self, estimator, batch_size: int = 64, targeted: bool = True, delta: float = 0.01,
                 epsilon: float = 0.01, step_adapt: float = 0.667, max_iter: int = 5000, num_trial: int = 25,
                 sample_size: int = 20, init_size: int = 100, min_epsilon: float = 0.0, verbose: bool = True,
                 seed: int | None = 0) -> None:
        self.seed = 0 if seed is None else seed
        super().__init__(estimator, batch_size=batch_size, targeted=targeted, delta=delta, epsilon=epsilon,
                         step_adapt=step_adapt, max_iter=max_iter, num_trial=num_trial, sample_size=sample_size,
                         init_size=init_size, min_epsilon=min_epsilon, verbose=verbose)
        self._rngs: list[np.random.Generator] = []
        self._rng: np.random.Generator | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {self.seed!r}")

    # --- ART's draws, from the sample's generator --------------------------------------------------------
    def _random_image(self, rng, x, clip_min, clip_max) -> np.ndarray:
        return rng.uniform(clip_min, clip_max, size=x.shape).astype(x.dtype)

    def _orthogonal(self, rng, delta: float, current_sample: np.ndarray, original_sample: np.ndarray) -> np.ndarray:
        """ART's ``_orthogonal_perturb`` (same expressions) with the sample's generator."""
        perturb = rng.standard_normal(self.estimator.input_shape, dtype=np.float32)
        perturb /= np.linalg.norm(perturb)
        perturb *= delta * np.linalg.norm(original_sample - current_sample)
        direction = original_sample - current_sample
        direction_flat = direction.flatten()
        perturb_flat = perturb.flatten()
        direction_flat /= np.linalg.norm(direction_flat)
        perturb_flat -= np.dot(perturb_flat, direction_flat.T) * direction_flat
        perturb = perturb_flat.reshape(self.estimator.input_shape)
        hypotenuse = np.sqrt(1 + delta**2)
        return ((1 - hypotenuse) * (current_sample - original_sample) + perturb) / hypotenuse

    def _orthogonal_perturb(self, delta, current_sample, original_sample):
        return self._orthogonal(self._rng, delta, current_sample, original_sample)

    def _perturb(self, x, y, y_p, init_pred, adv_init, clip_min, clip_max):
        self._rng = self._rngs.pop(0)
        return super()._perturb(x, y, y_p, init_pred, adv_init, clip_min, clip_max)

    def _init_sample(self, x, y, y_p, init_pred, adv_init, clip_min, clip_max):
        """ART's ``_init_sample`` with the sample's generator instead of an unseeded ``RandomState()``."""
        if self.targeted:
            if y == y_p:
                return None
            if adv_init is not None and init_pred == y:
                return adv_init.astype(ART_NUMPY_DTYPE), init_pred
        elif adv_init is not None and init_pred != y_p:
            return adv_init.astype(ART_NUMPY_DTYPE), init_pred
        for _ in range(self.init_size):
            random_img = self._random_image(self._rng, x, clip_min, clip_max)
            random_class = np.argmax(self.estimator.predict(np.array([random_img]), batch_size=self.batch_size),
                                     axis=1)[0]
            if (random_class == y) if self.targeted else (random_class != y_p):
                return random_img, random_class
        log.warning("Failed to draw a random image that is adversarial, attack failed.")
        return None

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        from threadpoolctl import threadpool_limits
        self._rngs = sample_rngs(self.seed, len(x))
        with threadpool_limits(limits=1, user_api="blas"):
            return super().generate(x, y, **kwargs)


class BatchedBoundaryAttack(SeededBoundaryAttack):
    """``SeededBoundaryAttack`` (same results) with all samples of a batch in lock step."""

    attack_params = SeededBoundaryAttack.attack_params + ["per_sample"]

    def __init__(self, estimator, batch_size: int = 64, targeted: bool = True, delta: float = 0.01,
                 epsilon: float = 0.01, step_adapt: float = 0.667, max_iter: int = 5000, num_trial: int = 25,
                 sample_size: int = 20, init_size: int = 100, min_epsilon: float = 0.0, verbose: bool = True,
                 seed: int | None = 0, per_sample: bool = True) -> None:
        self.per_sample = per_sample
        super().__init__(estimator, batch_size=batch_size, targeted=targeted, delta=delta, epsilon=epsilon,
                         step_adapt=step_adapt, max_iter=max_iter, num_trial=num_trial, sample_size=sample_size,
                         init_size=init_size, min_epsilon=min_epsilon, verbose=verbose, seed=seed)
        self.n_model_calls = 0
        self.n_predictions = 0

    def _check_params(self) -> None:
        super()._check_params()
        check_per_sample(self.per_sample)

    def _adapt(self, step: float, ratio: float) -> float:
        """ART's trust-region rule: smaller steps when < 20 % of the candidates are adversarial, larger > 50 %."""
        if ratio < 0.2:
            return step * self.step_adapt
        if ratio > 0.5:
            return step / self.step_adapt
        return step

    def _satisfied(self, preds, target, y_p):
        return preds == target if self.targeted else preds != y_p

    def _flow(self, rng, x, y, y_p, init_pred, adv_init, clip_min, clip_max):
        """ART's ``_perturb`` for one sample; ``yield`` candidates (n, *input_shape), receive their classes."""
        # _init_sample
        initial = None
        if self.targeted and y == y_p:
            return x
        if adv_init is not None and ((init_pred == y) if self.targeted else (init_pred != y_p)):
            initial = adv_init.astype(ART_NUMPY_DTYPE), init_pred
        else:
            for _ in range(self.init_size):
                random_img = self._random_image(rng, x, clip_min, clip_max)
                random_class = (yield np.array([random_img]))[0]
                if (random_class == y) if self.targeted else (random_class != y_p):
                    initial = random_img, random_class
                    break
            else:
                log.warning("Failed to draw a random image that is adversarial, attack failed.")
        if initial is None:
            return x
        # _attack
        original_sample, target = x, initial[1]
        x_adv = initial[0]
        curr_delta, curr_epsilon = self.delta, self.epsilon
        for _ in range(self.max_iter):
            for _ in range(self.num_trial):
                potential_advs_list = []
                for _ in range(self.sample_size):
                    potential_adv = x_adv + self._orthogonal(rng, curr_delta, x_adv, original_sample)
                    potential_advs_list.append(np.clip(potential_adv, clip_min, clip_max))
                preds = yield np.array(potential_advs_list)
                satisfied = self._satisfied(preds, target, y_p)
                delta_ratio = np.mean(satisfied)
                curr_delta = self._adapt(curr_delta, delta_ratio)
                if delta_ratio > 0:
                    x_advs = np.array(potential_advs_list)[np.where(satisfied)[0]]
                    break
            else:
                log.warning("Adversarial example found but not optimal.")
                return x_adv
            for _ in range(self.num_trial):
                perturb = np.repeat(np.array([original_sample]), len(x_advs), axis=0) - x_advs
                perturb *= curr_epsilon
                potential_advs = np.clip(x_advs + perturb, clip_min, clip_max)
                preds = yield potential_advs
                satisfied = self._satisfied(preds, target, y_p)
                epsilon_ratio = np.mean(satisfied)
                curr_epsilon = self._adapt(curr_epsilon, epsilon_ratio)
                if epsilon_ratio > 0:
                    x_adv = self._best_adv(original_sample, potential_advs[np.where(satisfied)[0]])
                    break
            else:
                log.warning("Adversarial example found but not optimal.")
                return self._best_adv(original_sample, x_advs)
            if curr_epsilon < self.min_epsilon:
                return x_adv
        return x_adv

    def _evaluate(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        """Predicted classes of each sample's candidates: each set as its own batch (``per_sample``, as
        ART predicts them), or all sets in one pass."""
        self.n_model_calls += 1
        self.n_predictions += sum(len(r) for r in requests)
        if self.per_sample:
            return [np.argmax(self.estimator.predict(r, batch_size=self.batch_size), axis=1) for r in requests]
        preds = np.argmax(self.estimator.predict(np.concatenate(requests),
                                                 batch_size=max(self.batch_size, self.sample_size)), axis=1)
        return np.split(preds, np.cumsum([len(r) for r in requests])[:-1])

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """ART's ``generate`` (labels, clip box, ``x_adv_init``), all samples of a batch at once."""
        if y is None:
            if self.targeted:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            y = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
        y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes, return_one_hot=False)
        if self.estimator.clip_values is not None:
            clip_min, clip_max = self.estimator.clip_values
        else:
            clip_min, clip_max = np.min(x), np.max(x)
        preds = np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        x_adv_init = kwargs.get("x_adv_init")
        if x_adv_init is not None:
            init_preds = np.argmax(self.estimator.predict(x_adv_init, batch_size=self.batch_size), axis=1)
        else:
            init_preds, x_adv_init = [None] * len(x), [None] * len(x)
        x_adv = x.astype(ART_NUMPY_DTYPE)
        rngs = sample_rngs(self.seed, len(x))
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"), \
                tqdm(total=len(x), desc="Boundary attack (batched)", disable=not self.verbose) as bar:
            for s in range(0, len(x), self.batch_size):
                ids = range(s, min(s + self.batch_size, len(x)))
                flows = [self._flow(rngs[i], x_adv[i], y[i] if self.targeted else -1, preds[i], init_preds[i],
                                    x_adv_init[i], clip_min, clip_max) for i in ids]
                for i, adv in zip(ids, lockstep.run(flows, self._evaluate, bar)):
                    x_adv[i] = adv
        log.info("Boundary attack: %d rounds, %d candidates predicted", self.n_model_calls, self.n_predictions)
        return x_adv
