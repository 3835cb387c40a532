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

Per-speaker normalization (``per_speaker: mean``, with ``method: original``): before step 1, every segment's
log-Mel dB has its SPEAKER's mean per Mel band subtracted (the mean over that speaker's own original
recordings, all frames; no labels), i.e. a per-speaker gain and spectral-tilt normalization (speaker-level
cepstral mean normalization in the log-Mel domain). Training speakers' means come from the training part,
a test speaker's from that speaker's own test recordings (``add_speakers``); all are saved in ``state``
(``speakers``, ``speaker_mean``). Step 2 then standardizes with one mean/std per band fitted on the shifted
TRAIN data, and the clip box is that data's per-band range. The shift is a constant per speaker and band, so
the attacks' units do not change: a model-input change δ is still ``δ · σ_b`` dB (``to_db``, ``db_scale``,
the resynthesis in ``realize.py``), ε is in the same σ_b units, and the clip box is a box of model inputs as
before (it bounds (X − μ_speaker − m_b)/σ_b instead of (X − m_b)/σ_b). Only ``transform`` needs to know
whose segments it normalizes (``speakers``); without them the batch is taken as ONE unknown speaker whose
mean is the batch's own (a served model given one speaker's recordings). ``input=waveform`` is refused
(``check_units``): its differentiable front end (``frontend_tf.py``) applies the global normalizer only.
A per-speaker standard deviation is not offered: it would make ε's dB meaning differ per speaker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METHODS = ("original", "norm_sum", "norm_max_global", "norm_max_local")
PER_SPEAKER = (None, "mean")
ALIASES = {"standard": ("original", True), "none": ("original", False)}
_EPS = 1e-6
# The study's normalization per corpus where it is not the default (``make study``, ``make study-models``,
# ``make study-leaky``): EMOVO per speaker, decided by the rule stated before the comparison (pooled accuracy over
# the 6 leave-one-speaker-out folds, seed 42: speaker_std 0.409 vs the default 0.342;
# recipes/speaker_independent/emovo_protocol). Its models log to their own MLflow experiment.
STUDY_NORMALIZATION = {"emovo": "speaker_std"}


@dataclass
class Normalizer:
    method: str = "original"
    standardize: bool = True
    clip: bool = True
    state: dict[str, np.ndarray] = field(default_factory=dict)
    per_speaker: str | None = None

    def __post_init__(self):
        if self.method in ALIASES:
            self.method, self.standardize = ALIASES[self.method]
        if self.method not in METHODS:
            raise ValueError(f"Unknown normalization {self.method!r}; choose one of "
                             f"{METHODS + tuple(ALIASES)}")
        check_per_speaker(self.per_speaker, self.method)

    @classmethod
    def from_config(cls, method: str = "original", standardize: bool = True, clip: bool = True,
                    name: str | None = None, per_speaker: str | None = None) -> "Normalizer":
        """The ``normalization`` config node's ``_target_`` (``name`` only labels the option)."""
        return cls(method=str(method), standardize=bool(standardize), clip=bool(clip),
                   per_speaker=None if per_speaker is None else str(per_speaker))

    @classmethod
    def from_cfg(cls, node) -> "Normalizer":
        return cls.from_config(node.method, node.get("standardize", True), node.get("clip", True),
                               per_speaker=node.get("per_speaker"))

    @property
    def name(self) -> str:
        return ("speaker_" if self.per_speaker else "") + self.method + ("_std" if self.standardize else "")

    # -- per speaker (before step 1) -------------------------------------------------------------------
    @staticmethod
    def _speaker_means(X: np.ndarray, speakers) -> tuple[np.ndarray, np.ndarray]:
        """(speaker ids, their per-band means (S, n_mels)) of segments ``X`` (n, frames, n_mels) dB."""
        X, spk = np.asarray(X, np.float32), np.asarray(speakers).astype(str)
        if len(spk) != len(X):
            raise ValueError(f"{len(spk)} speakers for {len(X)} segments")
        ids = np.unique(spk)
        return ids, np.stack([X[spk == s].astype(np.float64).mean(axis=(0, 1)) for s in ids]).astype(np.float32)

    def add_speakers(self, X: np.ndarray, speakers) -> "Normalizer":
        """Adds the per-band means of speakers not known yet, from their segments ``X`` (their own recordings,
        no labels: e.g. a test speaker's whole test part). Known speakers keep their training statistics."""
        if not self.per_speaker or not len(X):
            return self
        ids, means = self._speaker_means(X, speakers)
        new = ~np.isin(ids, self.state.get("speakers", np.array([], str)))
        if new.any():
            self.state["speakers"] = np.concatenate([self.state.get("speakers", np.array([], str)), ids[new]])
            self.state["speaker_mean"] = np.concatenate(
                [self.state.get("speaker_mean", np.zeros((0, X.shape[-1]), np.float32)), means[new]])
        return self

    def _shift(self, X: np.ndarray, speakers=None) -> np.ndarray:
        """X minus each segment's speaker mean per band (``per_speaker``); X unchanged otherwise."""
        X = np.asarray(X, dtype=np.float32)
        if not self.per_speaker:
            return X
        if speakers is None:           # one unknown speaker: the batch is that speaker's own recordings
            return X - X.astype(np.float64).mean(axis=(0, 1)).astype(np.float32)
        spk = np.asarray(speakers).astype(str)
        known = self.state.get("speakers", np.array([], str))
        missing = sorted(set(spk.tolist()) - set(known.tolist()))
        if missing:
            raise ValueError(f"per-speaker normalization has no statistics for speaker(s) {missing[:5]}: "
                             f"call add_speakers with their recordings first")
        order = {s: i for i, s in enumerate(known.tolist())}
        return X - self.state["speaker_mean"][[order[s] for s in spk]][:, None, :]

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

    def _scale(self, X: np.ndarray, speakers=None) -> np.ndarray:
        Z = self._method(self._shift(X, speakers))
        if self.standardize:
            Z = (Z - self.state["mean"]) / self.state["std"]
        return Z

    def fit(self, X: np.ndarray, speakers=None, stats_from=None) -> "Normalizer":
        """Fit on the TRAIN split only: (n, frames, n_mels) log-Mel dB. ``per_speaker``: ``speakers`` names each
        segment's speaker and ``stats_from`` = (X, speakers) the recordings its means come from (default: X)."""
        self.state = {}
        if self.per_speaker:
            if speakers is None:
                raise ValueError("per-speaker normalization: fit needs the speaker of every training segment")
            self.add_speakers(*(stats_from if stats_from is not None else (X, speakers)))
        X = self._shift(X, speakers)
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

    def transform(self, X: np.ndarray, speakers=None) -> np.ndarray:
        """(n, frames, n_mels) → (n, frames, n_mels, 1) float32, in the model's input space. ``speakers``: each
        segment's speaker (``per_speaker`` only; None there = the batch is one unknown speaker)."""
        if "min" not in self.state:
            raise RuntimeError("Normalizer.transform before fit (or load)")
        Z = self._scale(X, speakers)
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
        extra = {"per_speaker": self.per_speaker} if self.per_speaker else {}
        np.savez(path, method=self.method, standardize=self.standardize, clip=self.clip, **extra, **self.state)

    @classmethod
    def load(cls, path: Path) -> "Normalizer":
        with np.load(path) as z:
            meta = ("method", "standardize", "clip", "per_speaker")
            state = {k: z[k] for k in z.files if k not in meta}
            method = str(z["method"])
            standardize = (bool(z["standardize"]) if "standardize" in z.files
                           else ALIASES.get(method, (method, False))[1])
            per_speaker = str(z["per_speaker"]) if "per_speaker" in z.files else None
            return cls(method=method, standardize=standardize, clip=bool(z["clip"]), state=state,
                       per_speaker=per_speaker)


class NormalizationConfigError(ValueError):
    """A normalization option that cannot run (the user's input: one line, before any data or model)."""


def check_per_speaker(per_speaker, method: str) -> None:
    if per_speaker not in PER_SPEAKER:
        raise NormalizationConfigError(f"normalization.per_speaker={per_speaker!r}: choose null or 'mean'")
    if per_speaker and method != "original":
        raise NormalizationConfigError(f"normalization.per_speaker needs method=original (a per-speaker shift of the "
                                       f"log-Mel dB), not {method!r}")


def check_units(cfg) -> None:
    """Fail fast when a config combines per-speaker normalization with what cannot apply it: ``input=waveform``
    (the differentiable front end, ``frontend_tf.py``, applies the global normalizer only)."""
    norm = cfg.get("normalization")
    if norm is None:
        return
    check_per_speaker(norm.get("per_speaker"), str(norm.get("method", "original")))
    inp = cfg.get("input")
    if norm.get("per_speaker") and inp is not None and str(inp.get("name")) == "waveform":
        raise NormalizationConfigError(
            "normalization.per_speaker cannot run with input=waveform: the waveform attacks' differentiable front "
            "end applies the global normalizer only (use input=spectrogram, or normalization without per_speaker)")
