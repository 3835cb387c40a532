"""Feature normalization (config group ``normalization``), fitted on the training split only.

The input is a batch of log-Mel spectrograms in dB, ``X`` of shape (n, frames, n_mels). A
normalization is a *method* (step 1) optionally followed by *standardization* (step 2), then a clip:

step 1, ``method``
  ``original``         X unchanged (dB).
  ``norm_sum``         each spectrogram's POWER is divided by its total power, expressed in dB:
                       ``X - 10*log10(sum(10**(X/10)))`` over that spectrogram's frames and bands.
                       A per-recording loudness normalization; values are <= 0 dB. (The paper does
                       not say in which domain it divides; dividing dB values by their sum is
                       ill-defined because they have both signs, so we use the power domain.)
  ``norm_max_global``  ``X / M`` with one scalar ``M = max |X|`` over the TRAIN split (fitted).
                       Values in about [-1, 1].
  ``norm_max_local``   each spectrogram divided by its own ``max |X|`` → exactly within [-1, 1].
step 2, ``standardize``
  per Mel band: subtract the mean and divide by the std of the step-1 output over all TRAIN
  frames (fitted).
clip
  to [min, max] of the TRAIN split after steps 1-2 (fitted). That range is also the
  ``clip_values`` given to ART, so an attack works in the same box the data lives in.

Step 1's ``norm_max_global`` is a global scale, so ``norm_max_global`` + standardization gives the
same model inputs as ``original`` + standardization (up to float rounding); the option is kept
because the paper lists it. Everything fitted is in ``state`` and saved next to the model
(``normalizer.npz``), so attacks and inference apply exactly the transform used in training.

Legacy names: ``standard`` = ``original`` + standardization, ``none`` = ``original`` alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METHODS = ("original", "norm_sum", "norm_max_global", "norm_max_local")
ALIASES = {"standard": ("original", True), "none": ("original", False)}
_EPS = 1e-6


@dataclass
class Normalizer:
    method: str = "original"
    standardize: bool = True
    clip: bool = True
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if self.method in ALIASES:
            self.method, self.standardize = ALIASES[self.method]
        if self.method not in METHODS:
            raise ValueError(f"Unknown normalization {self.method!r}; choose one of "
                             f"{METHODS + tuple(ALIASES)}")

    @classmethod
    def from_cfg(cls, node) -> "Normalizer":
        return cls(method=str(node.method), standardize=bool(node.get("standardize", True)),
                   clip=bool(node.get("clip", True)))

    @property
    def name(self) -> str:
        return self.method + ("_std" if self.standardize else "")

    # -- step 1 ------------------------------------------------------------------------------
    def _method(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if self.method == "original":
            return X
        if self.method == "norm_sum":
            a = X.astype(np.float64) * (np.log(10.0) / 10.0)            # dB → natural log of power
            m = a.max(axis=(1, 2), keepdims=True)
            log_total = m + np.log(np.exp(a - m).sum(axis=(1, 2), keepdims=True))   # log-sum-exp
            return (X - (10.0 / np.log(10.0)) * log_total).astype(np.float32)
        if self.method == "norm_max_global":
            return X / self.state["global_max"]
        # norm_max_local
        return X / np.maximum(np.abs(X).max(axis=(1, 2), keepdims=True), _EPS)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        Z = self._method(X)
        if self.standardize:
            Z = (Z - self.state["mean"]) / self.state["std"]
        return Z

    def fit(self, X: np.ndarray) -> "Normalizer":
        """Fit on the TRAIN split only: (n, frames, n_mels) log-Mel dB."""
        self.state = {}
        if self.method == "norm_max_global":
            self.state["global_max"] = np.float32(max(float(np.abs(X).max()), _EPS))
        if self.standardize:     # one mean/std per Mel band, over all train frames
            Z = self._method(X)
            self.state["mean"] = Z.mean(axis=(0, 1)).astype(np.float32)
            self.state["std"] = (Z.std(axis=(0, 1)) + _EPS).astype(np.float32)
        Z = self._scale(X)
        self.state["min"] = np.float32(Z.min())
        self.state["max"] = np.float32(Z.max())
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, frames, n_mels) → (n, frames, n_mels, 1) float32, in the model's input space."""
        if "min" not in self.state:
            raise RuntimeError("Normalizer.transform before fit (or load)")
        Z = self._scale(X)
        if self.clip:
            Z = np.clip(Z, self.state["min"], self.state["max"])
        return Z[..., None].astype(np.float32)

    @property
    def clip_values(self) -> tuple[float, float]:
        return float(self.state["min"]), float(self.state["max"])

    def save(self, path: Path) -> None:
        np.savez(path, method=self.method, standardize=self.standardize, clip=self.clip, **self.state)

    @classmethod
    def load(cls, path: Path) -> "Normalizer":
        with np.load(path) as z:
            meta = ("method", "standardize", "clip")
            state = {k: z[k] for k in z.files if k not in meta}
            method = str(z["method"])
            standardize = bool(z["standardize"]) if "standardize" in z.files else ALIASES.get(method, (method, False))[1]
            return cls(method=method, standardize=standardize, clip=bool(z["clip"]), state=state)
