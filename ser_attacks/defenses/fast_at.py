"""Fast adversarial training (Wong, Rice & Kolter, ICLR 2020, "Fast is better than free: revisiting adversarial
training"): one FGSM step of size α = 1.25 ε from a uniform random start in [-ε, ε], projected back on the ε
ball (conf/defense/fast_at.yaml). The random start is what keeps single-step training from the catastrophic
overfitting of plain FGSM training (``fgsm_at``)."""
from __future__ import annotations

from .adversarial_training import AdversarialTraining


class FastAdversarialTraining(AdversarialTraining):
    """FGSM with a random start: one step (``steps`` = 1) of ``eps_step`` (None: 1.25 · ε) from U[-ε, ε]."""

    method = "fast"

    def __init__(self, eps: float, eps_step: float | None = None, ratio: float = 1.0, seed: int = 0,
                 norm: str = "inf", name: str | None = "fast_at", stage: str = "training"):
        super().__init__(eps, 1, eps_step, "uniform", ratio, seed, norm, name, stage)

    def default_step(self) -> float:
        return 1.25 * float(self.eps)
