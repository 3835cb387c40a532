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
  per Mel band, to [min, max] of that band in the TRAIN split after steps 1-2 (fitted). Those
  per-band ranges are also the ``clip_values`` given to ART (arrays, see ``clip_values``), so an
  attack works in the box the data live in and cannot push a band outside anything seen in that
  band. ``clip=false``: no clipping, and ``clip_values`` is None (ART then clips nothing, so eps=0 is
  a no-op; an attack may leave the training range).

Step 1's ``norm_max_global`` is a global scale, so ``norm_max_global`` + standardization gives the
same model inputs as ``original`` + standardization (up to float rounding); the option is kept
because the paper lists it. Everything fitted is in ``state`` and saved next to the model
(``normalizer.npz``), so attacks and inference apply exactly the transform used in training.
A normalizer saved before the per-band ranges existed (no ``band_min``) clips to its one global range.

Physical units: a perturbation δ of the model input is ``δ · σ_b`` in the step-1 domain (σ_b = the
band's std when standardized, else 1), i.e. in dB of log-Mel for ``original`` and ``norm_sum``, times
the max |X| for ``norm_max_*`` (``to_db``).

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
    def from_config(cls, method: str = "original", standardize: bool = True, clip: bool = True,
                    name: str | None = None) -> "Normalizer":
        """The ``normalization`` config node's ``_target_`` (``name`` only labels the option)."""
        return cls(method=str(method), standardize=bool(standardize), clip=bool(clip))

    @classmethod
    def from_cfg(cls, node) -> "Normalizer":
        return cls.from_config(node.method, node.get("standardize", True), node.get("clip", True))

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
        self.state["band_min"] = Z.min(axis=(0, 1)).astype(np.float32)     # (n_mels,)
        self.state["band_max"] = Z.max(axis=(0, 1)).astype(np.float32)
        return self

    def _box(self) -> tuple[np.ndarray, np.ndarray]:
        """The clip box, broadcastable to (n, frames, n_mels): per band, or the legacy global range."""
        if "band_min" in self.state:
            return self.state["band_min"], self.state["band_max"]
        return self.state["min"], self.state["max"]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, frames, n_mels) → (n, frames, n_mels, 1) float32, in the model's input space."""
        if "min" not in self.state:
            raise RuntimeError("Normalizer.transform before fit (or load)")
        Z = self._scale(X)
        if self.clip:
            Z = np.clip(Z, *self._box())
        return Z[..., None].astype(np.float32)

    @property
    def value_range(self) -> tuple[float, float]:
        """The one global [min, max] of the normalized TRAIN data."""
        return float(self.state["min"]), float(self.state["max"])

    @property
    def clip_values(self) -> tuple[np.ndarray, np.ndarray] | tuple[float, float] | None:
        """ART's ``clip_values``: None without clipping; else per-band (min, max) arrays of shape
        (1, n_mels, 1), broadcastable to the model input (frames, n_mels, 1) (``make_classifier`` expands
        them to that full shape); a legacy normalizer gives its global (min, max) floats."""
        if not self.clip:
            return None
        if "band_min" not in self.state:
            return self.value_range
        return tuple(np.asarray(v, np.float32).reshape(1, -1, 1) for v in self._box())

    def db_scale(self, X: np.ndarray) -> np.ndarray:
        """Per sample and band, dB of log-Mel per unit of model input: shape (n, 1, n_mels).

        Only step 1's ``norm_max_*`` and step 2 rescale (``norm_sum`` shifts), so a model-input change δ is
        ``δ · σ_b`` (· the global or per-spectrogram max |X| for norm_max_*) in dB."""
        X = np.asarray(X, dtype=np.float32)
        scale = np.ones((len(X), 1, X.shape[-1]), np.float32)
        if self.standardize:
            scale = scale * self.state["std"]
        if self.method == "norm_max_global":
            scale = scale * self.state["global_max"]
        elif self.method == "norm_max_local":
            scale = scale * np.maximum(np.abs(X).max(axis=(1, 2), keepdims=True), _EPS)
        return scale

    def to_db(self, delta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """A perturbation of the model input, (n, frames, n_mels[, 1]), in dB of log-Mel for the raw
        log-Mel spectrograms ``X`` (n, frames, n_mels) it was applied to."""
        d = np.asarray(delta, dtype=np.float32).reshape(np.shape(X))
        return d * self.db_scale(X)

    def save(self, path: Path) -> None:
        np.savez(path, method=self.method, standardize=self.standardize, clip=self.clip, **self.state)

    @classmethod
    def load(cls, path: Path) -> "Normalizer":
        with np.load(path) as z:
            meta = ("method", "standardize", "clip")
            state = {k: z[k] for k in z.files if k not in meta}
            method = str(z["method"])
            standardize = (bool(z["standardize"]) if "standardize" in z.files
                           else ALIASES.get(method, (method, False))[1])
            return cls(method=method, standardize=standardize, clip=bool(z["clip"]), state=state)
