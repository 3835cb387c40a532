"""Random-noise baseline (``conf/attack/noise.yaml``): uniform L∞ noise of the same budget as an attack.

``x_adv = clip(x + U(-eps, eps))`` per cell, drawn from ``numpy.random.default_rng(seed)`` (``attack.seed``,
default the job's ``seed``), clipped to the estimator's ``clip_values`` (per band or global; none when
``normalization.clip=false``). Carlini et al.'s checklist asks every attack to beat this: an attack whose
accuracy is not below random noise of the same L∞ budget measures noise sensitivity, not adversarial
vulnerability. ``eps=0`` returns ``x`` unchanged.
"""
from __future__ import annotations

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator


class UniformNoise(EvasionAttack):
    attack_params = EvasionAttack.attack_params + ["eps", "seed", "batch_size"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(self, estimator, eps: float = 0.25, seed: int = 0, batch_size: int = 32) -> None:
        super().__init__(estimator=estimator)
        self.eps, self.seed, self.batch_size = eps, seed, batch_size
        self._check_params()

    def _check_params(self) -> None:
        if not isinstance(self.eps, (int, float)) or self.eps < 0:
            raise ValueError(f"`eps` must be a non-negative number, got {self.eps!r}")
        if not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an integer, got {self.seed!r}")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.eps == 0:
            return x.copy()
        rng = np.random.default_rng(int(self.seed))
        x_adv = x + rng.uniform(-self.eps, self.eps, size=x.shape).astype(np.float32)
        if self.estimator.clip_values is not None:
            x_adv = np.clip(x_adv, *self.estimator.clip_values)
        return x_adv.astype(np.float32)
