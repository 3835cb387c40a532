"""The strong reference attack (``conf/attack/autoattack.yaml``): ART's ``AutoAttack`` with APGD-CE and
APGD-DLR (Croce & Hein 2020), L∞, at the same eps as the attacks it checks.

ART's default AutoAttack adds DeepFool and Square and, given ``loss_type``, rewraps the estimator into a
stock ``TensorFlowV2Classifier`` (slow, un-chunked predict). Here both APGD runs use the project's own
estimator: cross-entropy through the estimator's loss (the model gives logits), and the difference-of-logits
ratio through a copy of the estimator with a DLR loss object (``estimator.with_loss``: rebuilt by the one
builder, with the same defense and attacker options), so the compiled gradients are used.

Seeded: APGD's random start draws from NumPy's global generator (``art.utils.random_sphere``), so ``generate``
seeds it with ``seed`` (``attack.seed``, default the job's seed) and restores the previous state afterwards.
The first step size is ``eps_step`` (default 2·eps, as in Croce & Hein); ``max_iter`` iterations per restart,
``num_random_init`` restarts. AutoAttack attacks only samples still classified correctly (given true labels),
in order: APGD-CE, then APGD-DLR on the survivors; a sample counts only if its perturbation is within eps.
"""
from __future__ import annotations

import numpy as np
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent

from ..estimator import with_loss


def _dlr_loss():
    import keras
    import tensorflow as tf

    class DLRLoss(keras.losses.Loss):
        """-(z_y - max_{i != y} z_i) / (z_(1) - z_(3)), per sample (needs >= 3 classes)."""

        def call(self, y_true, y_pred):
            z = tf.cast(y_pred, tf.float32)
            y = tf.cast(y_true, tf.float32)
            top = tf.sort(z, axis=1, direction="DESCENDING")
            z_y = tf.reduce_sum(z * y, axis=1)
            z_other = tf.reduce_max(z - 1e9 * y, axis=1)
            return -(z_y - z_other) / (top[:, 0] - top[:, 2] + 1e-12)

    return DLRLoss(name="dlr")


class SpectrogramAutoAttack(AutoAttack):
    """AutoAttack = APGD-CE + APGD-DLR (untargeted, L∞ by default) on the project's estimator, seeded."""

    def __init__(self, estimator, eps: float = 0.25, eps_step: float | None = None, norm="inf",
                 max_iter: int = 100, num_random_init: int = 1, batch_size: int = 32, seed: int = 0,
                 verbose: bool = False) -> None:
        if not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"`eps` must be a positive number, got {eps!r}")
        eps_step = 2.0 * eps if eps_step is None else eps_step
        norm = np.inf if norm in ("inf", np.inf) else int(norm)
        common = dict(norm=norm, eps=eps, eps_step=eps_step, max_iter=max_iter, targeted=False,
                      nb_random_init=num_random_init, batch_size=batch_size, loss_type=None, verbose=verbose)
        self.apgd_ce = AutoProjectedGradientDescent(estimator, **common)
        self.apgd_dlr = AutoProjectedGradientDescent(with_loss(estimator, _dlr_loss()), **common)
        super().__init__(estimator, norm=norm, eps=eps, eps_step=eps_step, attacks=[self.apgd_ce, self.apgd_dlr],
                         batch_size=batch_size)
        self.seed = int(seed)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """ART's sequential AutoAttack loop (``AutoAttack.generate`` without its parallel branch, which
        imports the optional ``multiprocess`` package): each attack runs on the samples still robust, and a
        result counts only when it is misclassified within eps (``art...auto_attack.run_attack``)."""
        from art.attacks.evasion.auto_attack import run_attack
        from art.utils import check_and_transform_label_format, get_labels_np_array
        if self.estimator.nb_classes < 3:
            raise ValueError("APGD-DLR needs at least 3 classes")
        x_adv = np.asarray(x, np.float32).copy()
        y = (get_labels_np_array(self.estimator.predict(x_adv, batch_size=self.batch_size)) if y is None
             else check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes))
        robust = self.estimator.predict(x_adv).argmax(1) == y.argmax(1)
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            for attack in self.attacks:
                if not robust.any():
                    break
                x_adv, robust = run_attack(x=x_adv, y=y, sample_is_robust=robust, attack=attack,
                                           estimator_orig=self.estimator, norm=self.norm, eps=self.eps, **kwargs)
        finally:
            np.random.set_state(state)
        return x_adv.astype(np.float32)
