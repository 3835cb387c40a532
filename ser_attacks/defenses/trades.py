"""TRADES (Zhang et al., ICML 2019, "Theoretically Principled Trade-off between Robustness and Accuracy")
(conf/defense/trades.yaml): the training loss is

    CE(f(x), y) + β · KL(softmax f(x) ‖ softmax f(x'))   (batch mean),

x' found by ``steps`` signed-gradient steps that ascend KL(softmax f(x) ‖ softmax f(x')) from
x + 0.001 · N(0, 1), projected on the ε ball (L∞) and the clip box (the reference code's attack, in σ units).
β trades clean accuracy for robustness (the paper: 1–6; β = 0 is clean training at the cost of the attack)."""
from __future__ import annotations

import math

from .adversarial_training import AdversarialTraining


class TRADES(AdversarialTraining):
    """``beta``: weight of the KL term (≥ 0); attack: ``steps`` (10) of ``eps_step`` (None: ε / 4) from a
    N(0, 0.001²) start. Every row of the batch is used (no ``ratio``)."""

    method = "trades"
    needs_clean_logits = True

    def __init__(self, eps: float, beta: float = 6.0, steps: int = 10, eps_step: float | None = None,
                 seed: int = 0, norm: str = "inf", name: str | None = "trades", stage: str = "training"):
        self.beta = beta
        super().__init__(eps, steps, eps_step, "normal", 1.0, seed, norm, name, stage)
        self.beta = float(beta)

    def _check_params(self) -> None:
        super()._check_params()
        b = self.beta
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not (math.isfinite(b) and b >= 0):
            raise ValueError(f"defense={self.name}: defense.beta={b}: must be a number >= 0 (weight of the KL term)")

    def default_step(self) -> float:
        return float(self.eps) / 4.0          # the reference code: 0.007 at ε = 0.031

    def describe(self) -> dict:
        return {**super().describe(), "beta": self.beta}

    @staticmethod
    def _kl(clean_logits, logits):
        """Per row KL(softmax clean ‖ softmax logits)."""
        import tensorflow as tf
        p = tf.nn.softmax(clean_logits)
        return tf.reduce_sum(p * (tf.nn.log_softmax(clean_logits) - tf.nn.log_softmax(logits)), axis=-1)

    def attack_loss(self, logits, y, clean_logits):
        import tensorflow as tf
        return tf.reduce_sum(self._kl(clean_logits, logits))

    def training_inputs(self, model, x, y, box, gen):
        """(the clean batch: the cross-entropy term's, its adversarial rows: the KL term's)."""
        return x, self.perturb(model, x, None, box, gen)

    def extra_loss(self, trainer, y_pred, aux):
        import tensorflow as tf
        adv_logits = trainer(aux, training=True)
        return self.beta * tf.reduce_mean(self._kl(y_pred, adv_logits))
