"""Square attack (``conf/attack/square.yaml``): ART's ``SquareAttack`` (Andriushchenko et al., ECCV 2020), a
score-based BLACK-BOX attack: random search over square-shaped L∞ changes of ±2·eps, a change kept when it lowers
the margin (true-class logit minus the highest other) of the model's outputs. No gradient: it is the issue 28
check that a defense's robustness is not an artefact of its gradients (checklist flag (b)).

What this module adds to ART's class:

* it queries the defense **as deployed**: ``estimator.deployed`` (``estimator.make_classifier``), i.e. one draw of a
  randomized defense per query and no EOT averaging — what a black-box attacker sees; the defense layers are in
  front of the model as for every attack (``tests/test_square.py`` counts the samples that pass them);
* **seeded**: ART draws from NumPy's global generator (and Python's ``random`` for L2); ``generate`` seeds both
  from ``seed`` (default the job's seed) and restores them afterwards: the same config gives the same examples;
* ``queries``: the model evaluations (samples) the last ``generate`` made; the job logs ``queries_per_segment``.
  ART's loop evaluates each still-robust sample three times per iteration (the criterion, the current margin, the
  candidate's margin), so the cost is about ``3 · max_iter`` evaluations per segment that resists;
* clear errors for what ART's class would get wrong on a spectrogram (261 frames × 128 bands): only ``norm=inf``
  (ART's L2 version assumes square inputs, its L1 returns the inputs unchanged) and a ``p_init`` whose first
  square fits the input (ART draws its corner with ``randint(0, width - side)``, an error once the side reaches
  the 128 bands: ``p_init`` < 0.49 here).

ART's loop draws ONE square (position and signs) per iteration for all samples of a batch, each sample keeping it
or not by its own margin: a segment's result depends on the other segments attacked with it (the attacked set is
fixed by ``attack.n_samples`` / ``attack.sample_seed``, so the same config still gives the same numbers).
Spectrogram input only (``input=waveform`` is refused before any data is read: ``inputs.check``).
"""
from __future__ import annotations

import math
import random

import numpy as np
from art.attacks.evasion import SquareAttack

NORMS = (np.inf, "inf")


class SeededSquareAttack(SquareAttack):
    """ART's ``SquareAttack`` on the deployed defense, seeded, counting its queries."""
    attack_params = SquareAttack.attack_params + ["seed"]

    def __init__(self, estimator, norm="inf", max_iter: int = 1000, eps: float = 0.25, p_init: float = 0.05,
                 nb_restarts: int = 1, batch_size: int = 32, verbose: bool = True, seed: int = 0):
        self.seed = seed
        self.queries = 0
        super().__init__(getattr(estimator, "deployed", estimator), norm=norm, max_iter=max_iter, eps=eps,
                         p_init=p_init, nb_restarts=nb_restarts, batch_size=batch_size, verbose=verbose)

    def _check_params(self) -> None:
        super()._check_params()
        if self.norm not in NORMS:
            raise ValueError(f"`norm` must be inf (L∞): ART's L2 Square assumes square inputs and its L1 changes "
                             f"nothing, got {self.norm!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {self.seed!r}")
        shape = tuple(self.estimator.input_shape)
        if len(shape) != 3:
            raise ValueError(f"the square attack needs (frames, mels, channels) inputs (input=spectrogram), got "
                             f"{shape}")
        h, w = (shape[1], shape[2]) if self.estimator.channels_first else (shape[0], shape[1])
        side = max(int(round(math.sqrt(self.p_init * h * w))), 1)
        if side >= min(h, w):
            raise ValueError(f"`p_init`={self.p_init} makes the first square {side} cells wide, not less than the "
                             f"input's {min(h, w)}: p_init must be below {min(h, w) ** 2 / (h * w):.3g}")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        est = self.estimator
        predict, own = est.predict, est.__dict__.get("predict")
        np_state, py_state = np.random.get_state(), random.getstate()
        self.queries = 0

        def counted(z, *args, **kw):
            self.queries += len(z)
            return predict(z, *args, **kw)

        np.random.seed(int(self.seed))
        random.seed(int(self.seed))
        est.predict = counted
        try:
            return super().generate(np.asarray(x, np.float32), y, **kwargs)
        finally:
            if own is None:
                del est.predict                         # the class's own method again
            else:
                est.predict = own
            np.random.set_state(np_state)
            random.setstate(py_state)
