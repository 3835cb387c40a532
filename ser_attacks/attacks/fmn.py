"""Fast Minimum-Norm attack (FMN; Pintor, Roli, Brendel, Biggio, NeurIPS 2021), ``conf/attack/fmn.yaml``.

A fixed-budget attack answers "is the model still right at ε?" for one ε; a minimum-norm attack returns,
per segment, the SMALLEST perturbation it found that changes the prediction away from the true label, so
one run gives the whole robustness curve: accuracy at ε = share of segments whose minimal perturbation is
larger than ε (0 for a segment the model already gets wrong), for every ε at once.

Algorithm (FMN, untargeted, L∞ or L2), all segments of a batch in lock step, ``max_iter`` steps k:

- margin m = z_y − z_j of the logits at x + δ and its gradient g = ∂m/∂δ, in ONE compiled call
  (``estimator.graph``; the model evaluated one sample at a time inside it by default, ``per_sample``). The
  class j is chosen once per segment, at x, as the class whose LINEARISED boundary is nearest in the
  attack's norm (DeepFool's choice; one Jacobian per segment). Pintor et al. use the runner-up class
  (max_{j≠y} z_j), which on a linear 3-class model stops at the runner-up's boundary even where another
  class's is nearer (tests/test_min_norm.py);
- the point is adversarial where arg max z ≠ y (by a relative margin of 1e-5, so that the estimator's own
  ``predict`` agrees); the smallest adversarial δ so far is kept (its norm: ``best``);
- the norm constraint ε_k: adversarial → min(ε(1 − γ_k), ‖best‖); not adversarial and an adversarial point
  already found → ε(1 + γ_k); never adversarial yet → ‖δ‖ + |m| / ‖g‖_dual (the linearised distance to the
  boundary; dual norm: L1 for L∞, L2 for L2); γ_k cosine-annealed from ``gamma`` to 0.001;
- a step DOWN the margin, α_k · ε_k · s(g) with s(g) = sign(g) (L∞) or g / ‖g‖₂ (L2), α_k cosine-annealed
  from ``learning_rate`` to ``learning_rate``/100; then projection onto the ε_k ball and into the
  estimator's box (``clip_values``: per band or global).

The step is scaled by ε_k (foolbox's FMN takes an absolute step for images in [0, 1]): the inputs here are
in per-band standard deviations, and a relative step needs no tuning per corpus or normalization.
``generate`` returns x + (the smallest adversarial δ found), or x unchanged where none was found in
``max_iter`` steps (its minimal perturbation is then unknown: +∞ in the per-segment columns).
Deterministic: no random start, nothing to seed.

Why not foolbox's ``LInfFMNAttack`` / ``L2FMNAttack`` (foolbox 3.3.4 installs here without changing a
pinned package): it clips to ONE scalar box ``model.bounds``, while the estimator's box is per Mel band;
its L2 projection, as read in bethgelab/foolbox ``attacks/fast_minimum_norm.py``, scales by
``min(1, norms / norms)`` (= 1: no projection); and it would run outside the compiled estimator's
per-sample evaluation (``ser_attacks.estimator``). docs/attacks-and-estimator.md, "Minimum-norm attack".
"""
from __future__ import annotations

import math

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.classification import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from ..estimator import check_per_sample, graph, map_samples

NORMS = {"inf": np.inf, "2": 2}
GAMMA_FINAL = 0.001
MARGIN_TOL = 1e-5         # relative: a point counts as adversarial only past this margin (see _adversarial)


def parse_norm(norm) -> float:
    """``"inf"`` / ``np.inf`` / ``2`` / ``"2"`` → ``np.inf`` or 2; anything else is an error."""
    key = "inf" if (isinstance(norm, float) and math.isinf(norm)) else str(norm)
    if key not in NORMS:
        raise ValueError(f"`norm` must be 'inf' or 2, got {norm!r}")
    return NORMS[key]


def _build(model, per_sample: bool, input_shape, nb_classes: int):
    import tensorflow as tf

    def one(x, y, j):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = model(x, training=False)
            margin = tf.gather(z, y, axis=1, batch_dims=1) - tf.gather(z, j, axis=1, batch_dims=1)
        return z, margin, tape.gradient(margin, x)

    out = (tf.TensorSpec((nb_classes,), tf.float32), tf.TensorSpec((), tf.float32),
           tf.TensorSpec(tuple(input_shape), tf.float32))
    label = tf.TensorSpec((None,), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32), label, label],
                 reduce_retracing=True)
    def evaluate(x, y, j):
        return map_samples(one, (x, y, j), per_sample, out)

    return evaluate


def cosine(start: float, end: float, k: int, steps: int) -> float:
    """Cosine annealing from ``start`` (k = 0) towards ``end`` (k = steps)."""
    return end + (start - end) * (1 + math.cos(math.pi * k / steps)) / 2


class FastMinimumNorm(EvasionAttack):
    """FMN (module docstring). ``y``: true labels (indices or one-hot); None = the model's predictions."""

    attack_params = EvasionAttack.attack_params + ["norm", "max_iter", "learning_rate", "gamma", "batch_size",
                                                   "per_sample", "verbose"]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(self, estimator, norm="inf", max_iter: int = 100, learning_rate: float = 1.0,
                 gamma: float = 0.05, batch_size: int = 32, per_sample: bool = True, verbose: bool = True) -> None:
        super().__init__(estimator=estimator)
        self.norm, self.max_iter, self.learning_rate, self.gamma = norm, max_iter, learning_rate, gamma
        self.batch_size, self.per_sample, self.verbose = batch_size, per_sample, verbose
        self._check_params()
        self.p = parse_norm(norm)
        self.n_steps = 0                     # compiled calls made (one per step and batch)

    def _check_params(self) -> None:
        parse_norm(self.norm)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"`max_iter` must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate <= 10:
            raise ValueError(f"`learning_rate` (initial relative step) must be in (0, 10], got {self.learning_rate!r}")
        if not isinstance(self.gamma, (int, float)) or not GAMMA_FINAL <= self.gamma < 1:
            raise ValueError(f"`gamma` (FMN's epsilon update rate) must be in [{GAMMA_FINAL}, 1), got {self.gamma!r}")
        bs = self.batch_size
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {self.batch_size!r}")
        check_per_sample(self.per_sample)

    def _norm(self, d: np.ndarray) -> np.ndarray:
        flat = d.reshape(len(d), -1).astype(np.float64)
        return np.abs(flat).max(1) if self.p == np.inf else np.linalg.norm(flat, axis=1)

    def _dual(self, g: np.ndarray) -> np.ndarray:
        flat = g.reshape(len(g), -1).astype(np.float64)
        return np.abs(flat).sum(1) if self.p == np.inf else np.linalg.norm(flat, axis=1)

    def _project(self, d: np.ndarray, eps: np.ndarray) -> np.ndarray:
        e = eps.reshape((-1,) + (1,) * (d.ndim - 1))
        if self.p == np.inf:
            return np.clip(d, -e, e)
        n = self._norm(d).reshape(e.shape)
        return d * np.minimum(1.0, e / np.maximum(n, 1e-12))

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if y is None:
            labels = self.estimator.predict(x).argmax(1)
        else:
            y = np.asarray(y)
            labels = y.argmax(1) if y.ndim == 2 else y
        labels = labels.astype(np.int32)
        clf = self.estimator
        fn = graph(clf, f"fmn:{self.per_sample}",
                   lambda m: _build(m, self.per_sample, clf.input_shape, clf.nb_classes))
        out = x.copy()
        for i in range(0, len(x), int(self.batch_size)):
            out[i:i + self.batch_size] = self._batch(fn, x[i:i + self.batch_size], labels[i:i + self.batch_size])
        return out

    def _nearest_other(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per sample, the class j != y whose linearised boundary at x is nearest in the attack's norm:
        argmin_j |z_y − z_j| / ‖∇z_y − ∇z_j‖_dual (DeepFool's choice; one Jacobian per sample)."""
        z = self.estimator.predict(x).astype(np.float64)
        jac = self.estimator.class_gradient(x).astype(np.float64)          # (n, classes, *input_shape)
        n = len(x)
        rows = np.arange(n)
        diff = (jac[rows, y][:, None] - jac).reshape(n, jac.shape[1], -1)
        dual = np.abs(diff).sum(-1) if self.p == np.inf else np.linalg.norm(diff, axis=-1)
        dist = np.abs(z[rows, y][:, None] - z) / np.maximum(dual, 1e-12)
        dist[rows, y] = np.inf
        return dist.argmin(1).astype(np.int32)

    def _adversarial(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """arg max z != y by a margin (relative ``MARGIN_TOL``) that the estimator's own ``predict``, whose
        rounding differs from the attack's graph by ~1e-7, also sees."""
        z = z.astype(np.float64)
        rows = np.arange(len(z))
        other = np.where(np.eye(z.shape[1], dtype=bool)[y], -np.inf, z).max(1)
        return z[rows, y] - other < -MARGIN_TOL * np.maximum(1.0, np.abs(z[rows, y]))

    def _batch(self, fn, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = len(x)
        box = self.estimator.clip_values
        lo, hi = (None, None) if box is None else (np.asarray(box[0], np.float32), np.asarray(box[1], np.float32))
        j = self._nearest_other(x, y)
        delta = np.zeros_like(x)
        best = np.full(n, np.inf)
        best_delta = np.zeros_like(x)
        found = np.zeros(n, bool)
        eps = np.full(n, np.inf)
        steps = int(self.max_iter)
        shape = (-1,) + (1,) * (x.ndim - 1)
        for k in range(steps + 1):          # the last round only judges the last step's point
            z, margin, g = (t.numpy() for t in fn(x + delta, y, j))
            self.n_steps += 1
            size = self._norm(delta)
            adv = self._adversarial(z, y)
            better = adv & (size <= best)
            best = np.where(better, size, best)
            best_delta[better] = delta[better]
            found |= adv
            if k == steps:
                break
            alpha = cosine(self.learning_rate, self.learning_rate / 100, k, steps)
            gamma = cosine(self.gamma, GAMMA_FINAL, k, steps)
            # the linearised distance to a point past the boundary by the margin _adversarial asks for
            z_y = np.abs(z.astype(np.float64)[np.arange(n), y])
            to_boundary = (np.abs(margin.astype(np.float64)) + 2 * MARGIN_TOL * np.maximum(1.0, z_y)) \
                / np.maximum(self._dual(g), 1e-12)
            eps = np.where(adv, np.minimum(eps * (1 - gamma), best),
                           np.where(found, eps * (1 + gamma), size + to_boundary))
            direction = np.sign(g) if self.p == np.inf else \
                g / np.maximum(np.linalg.norm(g.reshape(n, -1), axis=1), 1e-12).reshape(shape)
            step = (alpha * eps).reshape(shape).astype(np.float32)
            delta = self._project(delta - step * direction.astype(np.float32), eps).astype(np.float32)
            if lo is not None:
                delta = np.clip(x + delta, lo, hi) - x
        return x + best_delta
