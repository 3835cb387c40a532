"""AutoAttack (Croce & Hein, 2020) as ART's ``AutoAttack`` with an attack list sized from the config.

ART's default list (APGD-CE and APGD-DLR with 5 restarts × 100 iterations, DeepFool 100, Square 5000 × 5
restarts) takes hours per segment on a CPU, and its Square attack refuses anything but 4-D image batches, so
AutoAttack could not run on waveforms. Here the list is built at ``generate`` time from the current
parameters (so a per-sample ``eps``, as ``attack.snr_db`` sets it, reaches every member):

* APGD with cross-entropy and with the difference-of-logits-ratio loss (``max_iter``, ``nb_random_init``),
* DeepFool (ART keeps its result only where it lies within ``eps``),
* Square (``square_max_iter`` iterations, ``0`` = off), only for 4-D inputs (spectrograms).

They run in order, each on the samples not yet fooled, keeping a result only if it lies within ``eps`` (ART's
``run_attack``), as in the original untargeted AutoAttack.
"""
from __future__ import annotations

import numpy as np
from art.attacks.evasion import AutoAttack as _ArtAutoAttack


class AutoAttack(_ArtAutoAttack):
    attack_params = _ArtAutoAttack.attack_params + ["max_iter", "nb_random_init", "square_max_iter"]

    def __init__(self, estimator, norm: int | float | str = np.inf, eps: float = 0.3, eps_step: float = 0.1,
                 max_iter: int = 100, nb_random_init: int = 1, square_max_iter: int = 1000, batch_size: int = 32,
                 targeted: bool = False):
        from art.attacks.evasion import DeepFool
        self.max_iter, self.nb_random_init, self.square_max_iter = int(max_iter), int(nb_random_init), \
            int(square_max_iter)
        placeholder = [DeepFool(classifier=estimator, verbose=False)]      # replaced in generate()
        super().__init__(estimator, norm=norm, eps=eps, eps_step=eps_step, attacks=placeholder,
                         batch_size=batch_size, targeted=targeted)

    def _check_params(self) -> None:
        super()._check_params()
        if self.targeted:
            raise ValueError("this AutoAttack is untargeted (the standard evaluation); targeted=True is not supported")
        if self.max_iter < 1 or self.nb_random_init < 1 or self.square_max_iter < 0:
            raise ValueError("max_iter and nb_random_init must be >= 1 and square_max_iter >= 0")

    def members(self, ndim: int) -> list:
        from art.attacks.evasion import AutoProjectedGradientDescent, DeepFool, SquareAttack
        est, kw = self.estimator, dict(norm=self.norm, eps=self.eps, eps_step=self.eps_step, max_iter=self.max_iter,
                                       targeted=False, nb_random_init=self.nb_random_init,
                                       batch_size=self.batch_size, verbose=False)
        out = [AutoProjectedGradientDescent(estimator=est, loss_type="cross_entropy", **kw),
               AutoProjectedGradientDescent(estimator=est, loss_type="difference_logits_ratio", **kw),
               DeepFool(classifier=est, max_iter=self.max_iter, epsilon=1e-3, nb_grads=10,
                        batch_size=self.batch_size, verbose=False)]
        if self.square_max_iter > 0 and ndim == 4:
            out.append(SquareAttack(estimator=est, norm=self.norm, max_iter=self.square_max_iter, eps=self.eps,
                                    p_init=0.8, nb_restarts=1, batch_size=self.batch_size, verbose=False))
        return out

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """ART's untargeted AutoAttack loop (``run_attack`` per member on the samples still classified
        correctly), without ART's ``generate``, which imports ``multiprocess`` for its parallel mode."""
        from art.attacks.evasion.auto_attack import run_attack
        from art.utils import check_and_transform_label_format, get_labels_np_array
        self.attacks = self.members(np.ndim(x))
        x_adv = np.asarray(x, np.float32).copy()
        y = get_labels_np_array(self.estimator.predict(x_adv, batch_size=self.batch_size)) if y is None else \
            check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)
        robust = self.estimator.predict(x_adv).argmax(1) == y.argmax(1)
        self.best_attacks = np.where(robust, self.SAMPLE_DEFAULT, self.SAMPLE_MISCLASSIFIED)
        for k, attack in enumerate(self.attacks):
            if not robust.any():
                break
            x_adv, now_robust = run_attack(x=x_adv, y=y, sample_is_robust=robust, attack=attack,
                                           estimator_orig=self.estimator, norm=self.norm, eps=self.eps, **kwargs)
            self.best_attacks[robust & ~now_robust] = k
            robust = now_robust
        return x_adv
