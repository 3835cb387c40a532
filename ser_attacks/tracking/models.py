"""Trained models in MLflow: the training run, the Keras model and the pyfunc wrapper as MLflow Models, the
Model Registry, a cached model adopted by a new store, and an attack run's link to the model it attacked.

``ModelLogging`` is a part of ``ser_attacks.tracking.Tracking`` (it uses the store's client and run methods).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import types
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ..identity import logged_params, model_groups, run_tags
from .notes import train_note

log = logging.getLogger(__name__)
PYFUNC_MODULE = "ser_attacks.pyfunc_model"          # the pyfunc wrapper's loader module (installed, never logged)
MODEL_CONFIG = "ser_model.json"                     # classes + front end, beside model.keras and normalizer.npz


class ModelLogging:
    """The model and registry methods of ``Tracking``."""

    def start_train_run(self, cfg, key: str, n_params: int, sizes: dict[str, int],
                        parent_run_id: str | None = None) -> str:
        """A training run (``parent_run_id``: a child of that sweep's run, train-only sweeps), with the model's
        config groups as params."""
        sweep = {"sweep_id": parent_run_id} if parent_run_id else {}
        run_id = self.create_run(f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed}",
                                 run_tags("train", cfg, model_key=key, **sweep), parent_run_id)
        container = model_groups(cfg)        # the config groups that shape the model (identity.MODEL_GROUPS)
        self.log_params(run_id, logged_params(container))
        self.log_metrics(run_id, {"n_params": n_params, **{f"n_{k}": v for k, v in sizes.items()}})
        return run_id

    def finish_train_run(self, run_id: str, meta: dict, model_dir: Path, keras_model, example) -> dict:
        """Log the trained model as MLflow Models (``keras_model``: Keras flavour, features → logits;
        ``model``: the pyfunc wrapper, audio or features → probabilities), register the wrapper, log the
        final metrics (linked to the wrapper) and close the run. Returns the registry facts for meta.json."""
        info = self.log_trained_model(run_id, keras_model, model_dir, example, meta)
        # resumed_after_epoch: a training killed and resumed (its train_seconds count both processes' time)
        self.log_metrics(run_id, {k: meta[k] for k in ("val_acc", "test_acc", "epochs", "train_seconds",
                                                       "resumed_after_epoch") if k in meta},
                         model_id=info["logged_model_id"])
        self.log_metrics(run_id, accuracy_counts(meta))       # the exact k of n behind val_acc / test_acc
        if meta.get("device"):              # where it was trained (a cached model: the machine that trained it)
            self.set_tag(run_id, "device", meta["device"])
        self.describe(run_id, train_note(meta, info))
        self.finish(run_id)
        return info

    def model_train_run(self, key: str, run_id: str | None = None):
        """The FINISHED training run of the model with cache key ``key`` in this store (``run_id`` first, then
        the newest), or None: this store does not know the model."""
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if (run.info.experiment_id == self.experiment_id and run.info.status == "FINISHED"
                        and run.data.tags.get("model_key") == key):
                    return run
            except Exception:  # noqa: BLE001 - a run of another store
                pass
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.model_key = '{key}' and tags.run_type = 'train' and "
                                  "attributes.status = 'FINISHED'", max_results=1,
            order_by=["attributes.start_time DESC"])
        return runs[0] if runs else None

    def adopt_cached_model(self, cfg, tm, example, sizes: dict[str, int], parent_run_id: str | None = None) -> dict:
        """A cached model (``tm``: ser_attacks.train.TrainedModel) used under this store: if the store does not
        know it (a new database, a move to a shared server, a model trained elsewhere on a shared cache), log
        it here as its training run (tags ``from_cache=true``, ``cached_train_run_id``, ``cached_tracking_uri``;
        the model-shaping params, the final metrics from the cache — no per-epoch curves —, both MLflow Models
        and the registered version), so every attack run's ``model_run_id`` exists in every store. Returns the
        meta.json facts for this store (``train_run_id``, registry facts); {} when the cache's run is here."""
        meta = tm.meta
        run = self.model_train_run(tm.key, meta.get("train_run_id"))
        if run is not None:
            return {} if run.info.run_id == meta.get("train_run_id") else {"train_run_id": run.info.run_id,
                                                                          "tracking_uri": self.uri}
        sweep = {"sweep_id": parent_run_id} if parent_run_id else {}
        run_id = self.create_run(f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed} (from cache)",
                                 run_tags("train", cfg, model_key=tm.key, from_cache="true",
                                          cached_train_run_id=meta.get("train_run_id") or "",
                                          cached_tracking_uri=meta.get("tracking_uri") or "", **sweep), parent_run_id)
        try:
            self.log_params(run_id, logged_params(model_groups(cfg)))
            self.log_metrics(run_id, {"n_params": meta["n_params"], **{f"n_{k}": v for k, v in sizes.items()}})
            info = self.finish_train_run(run_id, meta, tm.path, tm.model, example())
        except BaseException as exc:
            self.end_on_exception(run_id, exc)
            raise
        log.info("The cached model %s was not known to %s: logged as training run %s (from cache)", tm.key,
                 self.uri, run_id)
        return {**info, "train_run_id": run_id}

    def log_trained_model(self, run_id: str | None, keras_model, model_dir: Path, example: np.ndarray,
                          meta: dict) -> dict:
        """``model_dir`` holds ``model.keras``, ``normalizer.npz`` and ``ser_model.json``; ``example`` is one
        normalized input (1, frames, n_mels, 1). Nothing is pickled and no code is logged: the Keras model is
        saved in its native ``.keras`` format, and the wrapper is the installed module
        ``ser_attacks.pyfunc_model`` (``loader_module``) reading the weights, normalizer and config logged as
        its data, so loading never runs code from the artifact store (ser_attacks must be installed)."""
        import mlflow
        from mlflow.models import Model
        from mlflow.models.signature import ModelSignature
        from mlflow.types import Schema, TensorSpec

        # Model.log resolves the tracking URI globally, and would create the logged model in the *active*
        # experiment ("Default" here), not its run's: so the logged models are created here, in ours.
        mlflow.set_tracking_uri(self.uri)
        classes = list(meta["classes"])
        shape = tuple(int(d) for d in meta["input_shape"])
        # the defense that shaped the model (adversarial training; "none" otherwise), as the training run says
        tags = {"model_key": meta["key"], "dataset": meta["dataset"], "model": meta["model"],
                "defense": str(meta.get("defense") or "none")}
        keras_sig = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classes)))]))
        keras_info = Model.log(None, model_id=self._logged_model("keras_model", run_id, {**tags, "output": "logits"}),
                               flavor=_keras_flavor(), run_id=run_id, model=keras_model,
                               signature=keras_sig, input_example=np.round(np.asarray(example[:1], np.float64), 2),
                               pip_requirements=requirements("mlflow", "keras", "tensorflow", "numpy"),
                               validate_serving_input=False)
        from ..pyfunc_model import DATA_FILES, example_features, pyfunc_signature
        with tempfile.TemporaryDirectory() as tmp:   # the wrapper's data: weights, normalizer, config; no code
            data = Path(tmp) / "ser_model"
            data.mkdir()
            for f in DATA_FILES:
                shutil.copy2(model_dir / f, data / f)
            info = Model.log(None, model_id=self._logged_model("model", run_id, {**tags, "output": "probabilities"}),
                             flavor=mlflow.pyfunc, run_id=run_id, loader_module=PYFUNC_MODULE, data_path=str(data),
                             signature=pyfunc_signature(shape[0], shape[1], classes),
                             input_example=example_features(data),
                             pip_requirements=requirements("mlflow", "keras", "tensorflow", "numpy", "pandas",
                                                           "librosa", "soundfile", "soxr", "filelock"))
        name = registered_name(meta["dataset"], meta["model"])
        version = self.register(name, info.model_id, run_id, {**tags, **version_tags(meta)}, version_note(meta))
        return {"registered_model": name, "model_version": version, "model_uri": f"models:/{name}/{version}",
                "logged_model_id": info.model_id, "keras_model_id": keras_info.model_id,
                "tracking_uri": self.uri}

    def _logged_model(self, name: str, run_id: str | None, tags: dict[str, str]) -> str:
        """A new (pending) logged model in this experiment; ``Model.log(model_id=...)`` fills and finalizes it."""
        return self.client.create_logged_model(self.experiment_id, name=name, source_run_id=run_id,
                                               tags=tags).model_id

    def register(self, name: str, model_id: str, run_id: str | None, tags: dict[str, str],
                 description: str | None = None) -> str:
        """A new version of registered model ``name`` from logged model ``model_id`` (``description``: the version
        page's text); returns the version."""
        from mlflow.exceptions import MlflowException
        try:
            self.client.create_registered_model(
                name, description="Speech emotion recognition on log-Mel spectrograms (ser-attacks). Each version "
                                  "is one trained configuration; its tag model_key is the model cache key.")
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        mv = self.client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                              model_id=model_id, description=description)
        return str(mv.version)

    def model_version(self, dataset: str, model: str, key: str):
        """The newest registered version of the model with this cache key, or None."""
        try:
            versions = self.client.search_model_versions(
                f"name = '{registered_name(dataset, model)}' and tags.model_key = '{key}'")
        except Exception:  # noqa: BLE001 - no registry behind this tracking URI
            return None
        return max(versions, key=lambda v: int(v.version)) if versions else None

    def link_model(self, run_id: str, dataset: str, model: str, key: str, train_run_id: str | None) -> str | None:
        """Record on an attack run the model it used: param ``model_uri`` (``models:/<name>/<version>``) and
        the logged model as the run's input (``run.inputs.model_inputs``). A model cached before models
        were registered (or trained against another tracking store) falls back to ``runs:/<train run>/model``."""
        mv = self.model_version(dataset, model, key)
        if mv is not None:
            uri = f"models:/{mv.name}/{mv.version}"
            model_id = mv.model_id or (mv.source[len("models:/"):] if mv.source.startswith("models:/m-") else None)
            if model_id:
                from mlflow.entities import LoggedModelInput
                self.client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
        elif train_run_id:
            uri = f"runs:/{train_run_id}/model"
        else:
            return None
        self.log_param(run_id, "model_uri", uri)
        return uri



def registered_name(dataset: str, model: str) -> str:
    """The Model Registry name of a trained model: ``ser-<dataset>-<model>``."""
    return f"ser-{dataset}-{model}"


def accuracy_counts(meta: dict) -> dict[str, int]:
    """``n_correct_val`` / ``n_segments_val`` and the same for test: the exact counts behind a training run's
    accuracies (logged to 4 decimals); {} for a model cached before the segment counts were kept."""
    out = {}
    for part in ("val", "test"):
        n = meta.get(f"n_segments_{part}")
        if n and meta.get(f"{part}_acc") is not None:
            out[f"n_correct_{part}"] = int(round(float(meta[f"{part}_acc"]) * int(n)))
            out[f"n_segments_{part}"] = int(n)
    return out


def version_tags(meta: dict) -> dict[str, str]:
    """A registered version's facts beside ``model_key``/``dataset``/``model``/``defense``: its ``seed`` and
    accuracies (``val_acc``, ``test_acc``: 4 decimals, the exact values are the training run's metrics)."""
    out = {"seed": str(meta.get("seed", ""))}
    for k in ("val_acc", "test_acc"):
        if meta.get(k) is not None:
            out[k] = f"{float(meta[k]):.4f}"
    return out


def version_note(meta: dict) -> str:
    """A registered version's description: accuracies, the defense that shaped it, what it takes, how to load it
    for audio."""
    from .notes import f3
    fold = meta.get("fold")
    data = f"{meta.get('dataset')}" + (f" ({meta.get('split')} split" + (f", fold {fold}" if fold is not None else "")
                                       + ")" if meta.get("split") else "")
    shape = meta.get("input_shape") or ["frames", "n_mels"]
    return (f"Model {meta.get('model')} trained on {data}, seed {meta.get('seed')}: validation accuracy "
            f"{f3(meta.get('val_acc'))}, test accuracy {f3(meta.get('test_acc'))}; defense: "
            f"{meta.get('defense') or 'none'}. Input: log-Mel features in dB, float32 (n, {shape[0]}, {shape[1]}); "
            "output: emotion and one probability per class. For audio (a WAV path, a list of them, or "
            "{'audio': y, 'sample_rate': sr}): mlflow.pyfunc.load_model(uri).get_raw_model().predict(...).")


def _keras_flavor():
    """``mlflow.keras`` whose ``save_model`` creates the model folder first: MLflow 3.17's writes the input
    example before creating the folder, so ``mlflow.keras.log_model(..., input_example=...)`` fails. (It also
    swallows ``validate_serving_input``, which ``Model.log`` passes on to the flavour.)"""

    import mlflow.keras

    def save_model(path, validate_serving_input=None, **kwargs):
        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)
    return types.SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_model)


def example_waveform(seconds: float = 0.5, sample_rate: int = 8000) -> dict:
    """The pyfunc wrapper's input example: a short synthetic vowel-like tone at a rate other than the model's
    (the wrapper resamples), as ``{"audio": [...], "sample_rate": sr}``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return {"audio": np.round(y, 4).astype(np.float32), "sample_rate": np.asarray(sample_rate, dtype=np.int64)}


def requirements(*names: str) -> list[str]:
    """Pinned pip requirements for a logged model, from the installed distributions (TensorFlow from
    whichever of tensorflow / tensorflow-cpu is installed)."""
    out = []
    for name in names:
        for dist in ((name, f"{name}-cpu") if name == "tensorflow" else (name,)):
            try:
                out.append(f"{dist}=={version(dist)}")
                break
            except PackageNotFoundError:
                continue
    return out

