"""FGSM adversarial training as the paper's unfinished defenses notebook ran it (ART's ``AdversarialTrainer``
with ``FastGradientMethod``: x + ε · sign(∇x loss) on the true labels, no random start, clipped to the clip box,
on a random share ``ratio`` of each batch; the notebook: ε 1.25, ratio 0.6), in the model's input units
(conf/defense/fgsm_at.yaml). Kept to reproduce that setting: single-step training without a random start is
the textbook case of gradient masking (robust to FGSM at its own ε, not to smaller ε or iterative attacks)."""
from __future__ import annotations

from .adversarial_training import AdversarialTraining


class FGSMAdversarialTraining(AdversarialTraining):
    """One step of exactly ε from the clean input (``steps`` = 1, ``eps_step`` = ε, no random start)."""

    method = "fgsm"

    def __init__(self, eps: float = 1.25, ratio: float = 0.6, seed: int = 0, norm: str = "inf",
                 name: str | None = "fgsm_at", stage: str = "training"):
        super().__init__(eps, 1, None, "none", ratio, seed, norm, name, stage)

    def default_step(self) -> float:
        return float(self.eps)
