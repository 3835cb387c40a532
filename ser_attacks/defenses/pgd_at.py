"""PGD adversarial training (Madry et al., ICLR 2018, "Towards Deep Learning Models Resistant to Adversarial
Attacks"): every batch attacked by PGD-k from a uniform random start in the ε ball (conf/defense/pgd_at.yaml)."""
from __future__ import annotations

from .adversarial_training import AdversarialTraining


class PGDAdversarialTraining(AdversarialTraining):
    """k = ``steps`` steps of size ``eps_step`` (None: 2.5 · ε / k) from U[-ε, ε]; ``ratio`` of each batch
    (Madry et al.: 1, the whole batch)."""

    method = "pgd"

    def __init__(self, eps: float, steps: int = 7, eps_step: float | None = None, random_start: str = "uniform",
                 ratio: float = 1.0, seed: int = 0, norm: str = "inf", name: str | None = "pgd_at",
                 stage: str = "training"):
        super().__init__(eps, steps, eps_step, random_start, ratio, seed, norm, name, stage)
