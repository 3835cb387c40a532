"""ser-attacks: adversarial attacks on speech emotion recognition, swept with Hydra, tracked in MLflow."""
from __future__ import annotations

import os
import warnings
from pathlib import Path


def numba_cache_dir() -> Path:
    """Where numba keeps compiled kernels (librosa's) for this project's processes.

    ``NUMBA_CACHE_DIR`` when the user set it, else ``$XDG_CACHE_HOME/ser-attacks/numba`` (default
    ``~/.cache``). Set before numba is imported (importing ``ser_attacks`` does it), so every process of
    the platform, joblib and cluster workers included (they inherit the environment), shares one cache
    that only ``ser_attacks.data.audio.ensure_librosa_kernels`` writes, under a lock.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ser-attacks" / "numba"


os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))

# Quiet defaults for every entry point (CLI, tune, data, report, export), set before TensorFlow, MLflow or ART
# are imported; a user's own setting wins (setdefault).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")                      # TensorFlow's C++ INFO/WARNING lines
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per logged artifact
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")      # ART's import-time notice
