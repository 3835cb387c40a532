"""A trained model as an MLflow pyfunc: audio or features in, emotion probabilities out.

``ser_attacks.tracking.Tracking.log_trained_model`` logs it with ``loader_module="ser_attacks.pyfunc_model"``:
the artifact holds data only — the Keras model (native ``.keras``), the fitted normalizer
(``normalizer.npz``) and ``ser_model.json`` (classes, front end, model key) under ``data/ser_model/`` —
and no code. Loading imports this module from the installed ``ser_attacks`` package and calls
``_load_pyfunc``, which reads those three files; nothing from the artifact store is imported or
unpickled, so whoever can write to the artifact store cannot make a loader run their code through the
model's files (the trust model: docs/scaling-out.md). The loading environment needs ``ser_attacks``
installed (``pip install`` the project)::

    import mlflow
    registered = mlflow.pyfunc.load_model("models:/ser-synthetic-final/1")
    registered.predict(X)          # the signature's input: log-Mel features in dB, float32 (n, frames, n_mels)
    model = registered.get_raw_model()                    # this module's SERModel: every input form
    model.predict("speech.wav")                           # a path: any rate, bit depth, channel count
    model.predict(["a.wav", "b.wav"])                     # several paths
    model.predict({"audio": y, "sample_rate": 44100})     # a waveform (or a list of them) at any rate
    model.predict(X)                                      # log-Mel features in dB: (frames, n_mels) or
                                                          # (n, frames, n_mels)

The logged model's signature (``pyfunc_signature``) declares the features form, which MLflow enforces at
``predict``; the raw model reads the audio forms too.

The result is a DataFrame with one row per input (recording or feature matrix): ``emotion`` (the most
probable class), one probability column per class, and ``n_segments``. Audio goes through the training
front end (resample, mono, trim silence, 3 s segments, log-Mel), then the normalizer and the model;
a recording longer than one segment gets the mean of its segments' probabilities.

(Models logged before this change were "models from code" with a copy of the package; they still load,
running that copy: see docs/tracking-and-resume.md.)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG_FILE = "ser_model.json"
KERAS_FILE, NORMALIZER_FILE = "model.keras", "normalizer.npz"
DATA_FILES = (KERAS_FILE, NORMALIZER_FILE, CONFIG_FILE)     # what the logged model holds (data/ser_model/)
FEATURES_INPUT = "log_mel_db"           # the signature's input tensor: log-Mel features in dB, (-1, frames, n_mels)


class InputError(ValueError):
    """Input the model cannot read (unknown type, wrong feature shape, a waveform without its rate)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class SERModel:
    """Speech emotion recognition: front end + normalizer + Keras logits model + softmax, read from a folder
    holding ``DATA_FILES`` (the logged model's ``data/ser_model``, or a model cache entry)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        import keras

        from ser_attacks.data.audio import FrontEnd
        from ser_attacks.normalization import Normalizer
        folder = Path(folder)
        cfg = json.loads((folder / CONFIG_FILE).read_text())
        self.classes = list(cfg["classes"])
        self.front_end = FrontEnd(**cfg["front_end"])
        self.normalizer = Normalizer.load(folder / NORMALIZER_FILE)
        # safe_mode (Keras' default, explicit here): a .keras file's Lambda layers are not deserialized as code
        self.model = keras.models.load_model(folder / KERAS_FILE, compile=False, safe_mode=True)

    # ------------------------------------------------------------------------------ inputs
    def _audio_features(self, y, sample_rate) -> np.ndarray:
        from ser_attacks.data.audio import ensure_librosa_kernels, log_mel, segments, trim
        fe = self.front_end
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:                          # (samples, channels) → mono
            y = y.mean(axis=1)
        if y.ndim != 1 or y.size == 0:
            raise InputError(f"a waveform must be a non-empty 1-D array (or samples x channels); got shape {y.shape}")
        if sample_rate is None:
            raise InputError("a waveform needs its sample rate: predict({'audio': y, 'sample_rate': sr})")
        sr = int(sample_rate)
        if sr != fe.sample_rate:
            import soxr
            y = soxr.resample(y, sr, fe.sample_rate, quality="HQ").astype(np.float32)
        ensure_librosa_kernels()
        return np.stack([log_mel(p, fe) for p in segments(trim(y, fe), fe)])

    def _path_features(self, path) -> np.ndarray:
        from ser_attacks.data.audio import BadAudio, load_audio
        path = os.fspath(path)
        if not Path(path).is_file():
            raise InputError(f"no such audio file: {path}")
        try:
            return self._audio_features(load_audio(path, self.front_end.sample_rate), self.front_end.sample_rate)
        except BadAudio as exc:
            raise InputError(f"{path}: {exc}") from None

    def _feature_items(self, X) -> list[np.ndarray]:
        fe = self.front_end
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 4 and X.shape[-1] == 1:
            X = X[..., 0]
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[1:] != (fe.n_frames, fe.n_mels):
            raise InputError(f"features must be log-Mel spectrograms in dB of shape (frames, n_mels) = "
                             f"({fe.n_frames}, {fe.n_mels}), or a batch of them; got {X.shape}")
        return [x[None] for x in X]              # one row per feature matrix

    def _items(self, data) -> list[np.ndarray]:
        """Any accepted input → a list of (n_segments, frames, n_mels) arrays, one per output row."""
        if isinstance(data, (str, os.PathLike)):
            return [self._path_features(data)]
        if isinstance(data, pd.DataFrame):
            data = {c: data[c].tolist() for c in data.columns}
        if isinstance(data, dict):
            if "path" in data:
                paths = data["path"]
                return [self._path_features(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
            if "audio" in data:
                audio, rate = data["audio"], data.get("sample_rate")
                if isinstance(rate, np.ndarray) and rate.ndim == 0:      # a scalar, as serving JSON arrives
                    rate = rate.item()
                one = (isinstance(audio, np.ndarray) and audio.dtype != object) or (
                    isinstance(audio, list) and len(audio) > 0 and np.isscalar(audio[0]))
                audio = [audio] if one else list(audio)
                rates = list(rate) if isinstance(rate, (list, tuple, np.ndarray)) else [rate] * len(audio)
                if len(rates) != len(audio):
                    raise InputError(f"{len(audio)} waveforms but {len(rates)} sample rates")
                return [self._audio_features(y, r) for y, r in zip(audio, rates)]
            if "features" in data or FEATURES_INPUT in data:        # the signature names its tensor
                feats = data["features"] if "features" in data else data[FEATURES_INPUT]
                if isinstance(feats, np.ndarray) and feats.dtype != object:
                    return self._feature_items(feats)
                return [x for f in feats for x in self._feature_items(f)]
            raise InputError(f"a dict or DataFrame input needs a 'path', 'audio' (+ 'sample_rate') or 'features' "
                             f"column; got {sorted(data)}")
        if isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
            return [self._path_features(p) for p in data]
        if isinstance(data, (np.ndarray, list, tuple)):
            arr = np.asarray(data)
            if arr.ndim == 1:
                raise InputError("a 1-D array is a waveform and needs its sample rate: "
                                 "predict({'audio': y, 'sample_rate': sr})")
            return self._feature_items(arr)
        raise InputError(f"cannot read input of type {type(data).__name__}: give a WAV path (or a list of them), "
                         "{'audio': waveform, 'sample_rate': sr}, or log-Mel features")

    # ------------------------------------------------------------------------------ predict
    def predict_items(self, items: list[np.ndarray]):
        counts = [len(x) for x in items]
        from .forward import logits  # model.predict's numbers without its tf.data pipeline
        X = self.normalizer.transform(np.concatenate(items))
        probs = softmax(np.asarray(logits(self.model, X), dtype=np.float64))
        rows, start = [], 0
        for n in counts:
            rows.append(probs[start:start + n].mean(axis=0))
            start += n
        P = np.vstack(rows)
        out = pd.DataFrame(P, columns=self.classes)
        out.insert(0, "emotion", [self.classes[i] for i in P.argmax(axis=1)])
        out["n_segments"] = counts
        return out

    def get_raw_model(self) -> "SERModel":
        """What ``mlflow.pyfunc.load_model(uri).get_raw_model()`` returns: this model, whose ``predict`` reads every
        input form (the loaded pyfunc's ``predict`` takes only the signature's, the features tensor)."""
        return self

    def predict(self, model_input: pd.DataFrame, params=None):
        # The hint names the serving form (a DataFrame with a path / audio + sample_rate / features column, as
        # `mlflow models serve` sends it); MLflow validates nothing for it, so the other forms above pass unchanged.
        return self.predict_items(self._items(model_input))


def pyfunc_signature(n_frames: int, n_mels: int, classes: list[str]):
    """The registered model's signature: its input is the features form — log-Mel spectrograms in dB, float32
    ``(-1, frames, n_mels)`` — and its output one row per spectrogram (``emotion``, a probability per class,
    ``n_segments``). MLflow enforces a declared input schema at ``predict``, so the audio forms go through the
    raw model (``load_model(uri).get_raw_model()``, this module's ``SERModel``), which reads them all."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(n_frames), int(n_mels)), FEATURES_INPUT)]),
        outputs=Schema([ColSpec("string", "emotion"), *[ColSpec("double", c) for c in classes],
                        ColSpec("long", "n_segments")]))


def example_features(folder: str | os.PathLike, seconds: float = 0.5, sample_rate: int = 8000) -> np.ndarray:
    """The registered model's input example: the features of a short synthetic vowel-like tone (as
    ``tracking.example_waveform`` makes it) through the model's own front end, in dB to one decimal
    float32 ``(1, frames, n_mels)`` (MLflow checks the dtype exactly)."""
    from ser_attacks.data.audio import FrontEnd
    cfg = json.loads((Path(folder) / CONFIG_FILE).read_text())
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    model = SERModel.__new__(SERModel)           # the front end only: no weights are loaded for this
    model.front_end = FrontEnd(**cfg["front_end"])
    return np.round(model._audio_features(y.astype(np.float32), sample_rate)[:1], 1).astype(np.float32)


def _load_pyfunc(data_path: str) -> SERModel:
    """MLflow's entry point for ``loader_module="ser_attacks.pyfunc_model"``: ``data_path`` is the logged
    model's ``data/ser_model`` folder (weights, normalizer, ser_model.json: data, never code)."""
    return SERModel(data_path)
