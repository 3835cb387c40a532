"""Attack classes for tests (``attack._target_=tests.helpers.attacks.<Class>``)."""
from __future__ import annotations

from art.attacks.evasion import FastGradientMethod


class FailingAttack(FastGradientMethod):
    """FGSM that fails while attacking: a runtime error that no check of the configuration can see."""

    def generate(self, x, y=None, **kwargs):
        raise RuntimeError("the attack failed while attacking (tests.helpers.attacks.FailingAttack)")
