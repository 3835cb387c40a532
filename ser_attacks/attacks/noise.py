"""Random-noise baseline (``conf/attack/noise.yaml``): uniform L∞ noise of the same budget as an attack.

``x_adv = clip(x + U(-eps, eps))`` per cell, drawn from ``numpy.random.default_rng(seed)`` (``attack.seed``,
default the job's ``seed``), clipped to the estimator's ``clip_values`` (per band or global; none when
``normalization.clip=false``). Carlini et al.'s checklist asks every attack to beat this: an attack whose
accuracy is not below random noise of the same L∞ budget measures noise sensitivity, not adversarial
vulnerability. ``eps=0`` returns ``x`` unchanged.

**Sparse noise** (``attack.cells=k``): the reference of the Pixel attack, which changes at most ``th`` cells.
Per segment ``k`` distinct cells, drawn at random, are each overwritten by a value drawn uniformly from that
cell's data box (``clip_values``, per band or global): the same number of cells as Pixel with ``th = k`` and the
same magnitudes Pixel's search ranges over (it sets a changed cell to any value of the box), with no search.
``eps`` is not used then; ``clip_values`` are required (as for Pixel). The checklist judges Pixel with
``th = k`` against it (``report/checklist.py``, "beats noise").
"""
from __future__ import annotations

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator


class UniformNoise(EvasionAttack):
    attack_params = EvasionAttack.attack_params + ["eps", "seed", "batch_size", "cells"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(self, estimator, eps: float = 0.25, seed: int = 0, batch_size: int = 32,
                 cells: int | None = None) -> None:
        super().__init__(estimator=estimator)
        self.eps, self.seed, self.batch_size, self.cells = eps, seed, batch_size, cells
        self._check_params()

    def _check_params(self) -> None:
        if not isinstance(self.eps, (int, float)) or self.eps < 0:
            raise ValueError(f"`eps` must be a non-negative number, got {self.eps!r}")
        if not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an integer, got {self.seed!r}")
        if self.cells is not None:
            if isinstance(self.cells, bool) or not isinstance(self.cells, (int, np.integer)) or self.cells < 1:
                raise ValueError(f"`cells` must be a positive integer (sparse noise) or null, got {self.cells!r}")
            if self.estimator.clip_values is None:
                raise ValueError("sparse noise (attack.cells) needs clip_values: the box a changed cell is drawn from")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.cells is not None:
            return self._sparse(x)
        if self.eps == 0:
            return x.copy()
        rng = np.random.default_rng(int(self.seed))
        x_adv = x + rng.uniform(-self.eps, self.eps, size=x.shape).astype(np.float32)
        if self.estimator.clip_values is not None:
            x_adv = np.clip(x_adv, *self.estimator.clip_values)
        return x_adv.astype(np.float32)

    def _sparse(self, x: np.ndarray) -> np.ndarray:
        """``cells`` random cells per segment, each set to a uniform draw from its own data box."""
        rng = np.random.default_rng(int(self.seed))
        n, size = len(x), int(np.prod(x.shape[1:]))
        k = min(int(self.cells), size)
        lo, hi = (np.broadcast_to(np.asarray(v, np.float32), x.shape[1:]).reshape(-1)
                  for v in self.estimator.clip_values)
        flat = x.reshape(n, size).copy()
        for i in range(n):
            idx = rng.choice(size, size=k, replace=False)
            flat[i, idx] = lo[idx] + rng.random(k, dtype=np.float32) * (hi[idx] - lo[idx])
        return flat.reshape(x.shape).astype(np.float32)
