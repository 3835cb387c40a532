"""Feature normalization (config group ``normalization``), fitted on the training split only.

The fitted state is a small dict of arrays saved next to the model, so attacks and inference apply
exactly the transform the model was trained with. After the transform, values are clipped to the
range seen in training; that range is also the ``clip_values`` given to ART, so an attack works in
the same box the data lives in and the measured perturbation is the attack's alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METHODS = ("none", "standard")


@dataclass
class Normalizer:
    method: str = "standard"
    clip: bool = True
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(self, X: np.ndarray) -> "Normalizer":
        if self.method not in METHODS:
            raise ValueError(f"Unknown normalization {self.method!r}; choose one of {METHODS}")
        if self.method == "standard":   # one mean/std per Mel band, over all train frames
            self.state["mean"] = X.mean(axis=(0, 1)).astype(np.float32)
            self.state["std"] = (X.std(axis=(0, 1)) + 1e-6).astype(np.float32)
        Z = self._scale(X)
        self.state["min"] = np.float32(Z.min())
        self.state["max"] = np.float32(Z.max())
        return self

    def _scale(self, X: np.ndarray) -> np.ndarray:
        if self.method == "standard":
            return (X - self.state["mean"]) / self.state["std"]
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, frames, n_mels) → (n, frames, n_mels, 1) float32, in the model's input space."""
        Z = self._scale(X)
        if self.clip:
            Z = np.clip(Z, self.state["min"], self.state["max"])
        return Z[..., None].astype(np.float32)

    @property
    def clip_values(self) -> tuple[float, float]:
        return float(self.state["min"]), float(self.state["max"])

    def save(self, path: Path) -> None:
        np.savez(path, method=self.method, clip=self.clip, **self.state)

    @classmethod
    def load(cls, path: Path) -> "Normalizer":
        with np.load(path) as z:
            state = {k: z[k] for k in z.files if k not in ("method", "clip")}
            return cls(method=str(z["method"]), clip=bool(z["clip"]), state=state)
