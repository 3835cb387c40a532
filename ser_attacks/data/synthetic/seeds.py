"""Seeds of the synthetic corpus: every random draw is keyed by the names of what it renders.

``stable_int(seed, layout, speaker, ...)`` hashes its parts with BLAKE2b, so the same arguments give the
same draws on every platform and Python version (``hash()`` is salted per process).
"""
from __future__ import annotations

import hashlib

import numpy as np


def stable_int(*parts: object) -> int:
    """A platform-independent 63-bit integer hash of ``parts``."""
    text = "|".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def rng(*parts: object) -> np.random.Generator:
    """A generator seeded by :func:`stable_int` of ``parts``."""
    return np.random.default_rng(stable_int(*parts))
