"""MLflow tracking: one parent run per sweep, one child run per job, one run per trained model.

Everything goes through ``MlflowClient`` with explicit run ids (no global "active run"), so a
training run can be logged while an attack run is open, and child runs in other processes or hosts
attach to the sweep's parent by id. The default backend is a sqlite DB plus artifacts under
``mlruns/``; ``MLFLOW_TRACKING_URI`` overrides it (e.g. a shared server). The parent process
creates the DB and the parent run (Hydra callback) before any parallel job starts, and every process
opens a sqlite DB under an inter-process lock, so no two processes ever race to create its schema.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import types
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import lifecycle
from .browser import ui_url
from .identity import logged_params, model_groups, run_tags
from .paths import PROJECT_ROOT, resolve_uri
from .progress import quiet_libraries

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
PARENT_ENV = "SER_ATTACKS_PARENT_RUN_ID"
PARENT_FILE = "mlflow_parent_run_id.txt"
# MLflow 3 UIs that choose an experiment's view by its kind open one without this tag on their GenAI overview
# (traces, tokens). 3.17.2's UI decides by its sidebar switch instead; browser.ui_url links past it.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
PYFUNC_MODULE = "ser_attacks.pyfunc_model"          # the pyfunc wrapper's loader module (installed, never logged)
MODEL_CONFIG = "ser_model.json"                     # classes + front end, beside model.keras and normalizer.npz
SUMMARY_TABLE = "summary_table.json"                # a sweep's one-row-per-job table (mlflow.log_table)


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable server, bad URI)."""


def _db_lock(uri: str):
    """The inter-process lock (ser_attacks.cache.locked) of a sqlite tracking DB, held while a process opens
    it: MLflow creates and migrates the schema on first use, and two processes doing so at once crash
    (``table _alembic_tmp_experiments already exists``), once leaving the DB unusable. Other backends
    (a server, PostgreSQL) need none."""
    import contextlib
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if not path or path.startswith(":memory:"):
        return contextlib.nullcontext()
    from .cache import locked
    return locked(Path(path), f"the tracking database {path}")


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - not a git checkout (installed package, container)
        return "unknown"


class Tracking:
    def __init__(self, uri: str, experiment: str, artifact_root: str | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        quiet_libraries()                          # no MLflow transfer bars in logs (ser_attacks.progress)
        self.uri = resolve_uri(uri)
        self._check_reachable()
        mlflow.set_tracking_uri(self.uri)
        with _db_lock(self.uri):        # a new sqlite DB: one process creates and migrates it, others wait
            self._open(MlflowClient, experiment, artifact_root)

    def _open(self, client_cls, experiment: str, artifact_root: str | None) -> None:
        self.client = client_cls(self.uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if self.uri.startswith("sqlite:") and artifact_root:
                location = Path(artifact_root).resolve().as_uri()
            try:
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
            except Exception:  # noqa: BLE001 - created meanwhile by another process
                self.experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            self.experiment_id = exp.experiment_id
        key, kind = EXPERIMENT_KIND
        if exp is None or exp.tags.get(key) != kind:      # also an experiment created before this tag existed
            self.client.set_experiment_tag(self.experiment_id, key, kind)

    @classmethod
    def from_cfg(cls, cfg) -> "Tracking":
        t = cfg.tracking
        return cls(str(t.uri), str(t.experiment), str(t.artifact_root))

    def _check_reachable(self) -> None:
        if not self.uri.startswith(("http://", "https://")):
            return
        import requests
        try:
            requests.get(self.uri.rstrip("/") + "/health", timeout=10).raise_for_status()
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"MLflow tracking server {self.uri} is not reachable ({exc.__class__.__name__}: "
                                f"{exc}). Start it (make server-up) or fix MLFLOW_TRACKING_URI; refusing to "
                                f"log elsewhere, which would split the results.") from None

    # ------------------------------------------------------------------ runs
    def create_run(self, name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
        """A new RUNNING run. ``host``/``pid`` let a dead process's run be closed later, and
        ``opened_in_sweep`` lets an ending sweep close every run opened during it (ser_attacks.lifecycle)."""
        tags = {"mlflow.runName": name, "git_commit": git_commit(), "host": socket.gethostname(),
                "pid": os.getpid(), **tags}
        if os.environ.get(PARENT_ENV) and tags.get("run_type") != "sweep":
            tags["opened_in_sweep"] = os.environ[PARENT_ENV]
        if lifecycle.current_fault_log():
            tags["fault_log"] = str(lifecycle.current_fault_log())
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        return self.client.create_run(self.experiment_id, tags={k: str(v) for k, v in tags.items()},
                                      run_name=name).info.run_id

    def finished_run(self, config_hash: str):
        """The newest FINISHED attack run with this config hash, or None."""
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.config_hash = '{config_hash}' and attributes.status = 'FINISHED'",
            max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0] if runs else None

    def log_config(self, run_id: str, cfg) -> None:
        from mlflow.entities import Param
        container = OmegaConf.to_container(cfg, resolve=True)
        params = [Param(k, str(v)[:6000]) for k, v in logged_params(container).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i:i + 100])
        self.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0, model_id: str | None = None) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id)
                                               for k, v in metrics.items()])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_figure(self, run_id: str, fig, name: str) -> None:
        self.client.log_figure(run_id, fig, name)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def epoch_logger(self, run_id: str):
        """A Keras callback that logs loss/accuracy/lr per epoch to run ``run_id`` (training, Optuna trials)."""
        import keras
        from mlflow.entities import Metric
        client = self.client

        class EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in logs.items()])

        return EpochLogger()

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def end_on_exception(self, run_id: str, exc: BaseException) -> None:
        """An error → FAILED (with its traceback); an interrupt (SIGTERM, Ctrl-C) → KILLED, also when what
        reached here is an error raised after the interrupt (a library that wrapped it)."""
        exc = lifecycle.interrupted() or exc
        self.discard_logged_models(run_id)
        if isinstance(exc, Exception):
            self.fail_run(run_id, exc)
            return
        stop = exc.name if isinstance(exc, lifecycle.Interrupted) else exc.__class__.__name__
        self.client.set_tag(run_id, "error", f"interrupted ({stop})")
        self.finish(run_id, "KILLED")

    def discard_logged_models(self, run_id: str) -> list[str]:
        """A run that did not finish (an error, an interrupt, a process killed while logging its model): its
        logged models — pending, half-written (disk full) or complete — are marked FAILED, their artifacts
        deleted and they are removed (soft-deleted), with any registered version made from the run, so no
        half-written model stays for anyone to load. Returns the model ids; never raises."""
        from mlflow.entities import LoggedModelStatus
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        gone = []
        try:
            models = [m for m in self.client.search_logged_models([self.experiment_id])
                      if m.source_run_id == run_id]
            if models:
                for mv in self.client.search_model_versions(f"run_id = '{run_id}'"):
                    self.client.delete_model_version(mv.name, mv.version)
            for m in models:
                if m.status != LoggedModelStatus.FAILED:
                    self.client.finalize_logged_model(m.model_id, LoggedModelStatus.FAILED)
                try:
                    get_artifact_repository(m.artifact_location).delete_artifacts()
                except Exception as exc:  # noqa: BLE001 - e.g. a server that does not allow deletes
                    log.warning("Could not delete the artifacts of logged model %s (%s)", m.model_id, exc)
                self.client.delete_logged_model(m.model_id)
                gone.append(m.model_id)
        except Exception as exc:  # noqa: BLE001 - closing the run matters more
            log.warning("Could not discard the logged models of run %s (%s: %s)", run_id,
                        exc.__class__.__name__, exc)
        if gone:
            log.warning("Discarded %d logged model(s) of the unfinished run %s: %s", len(gone), run_id,
                        ", ".join(gone))
        return gone

    def fail_run(self, run_id: str, exc: BaseException | None = None) -> None:
        try:
            if exc is not None:
                self.client.set_tag(run_id, "error", f"{exc.__class__.__name__}: {exc}"[:5000])
                self.log_text(run_id, "".join(traceback.format_exception(exc)), "traceback.txt")
        finally:
            self.finish(run_id, "FAILED")

    # -------------------------------------------------------------- training
    def start_train_run(self, cfg, key: str, n_params: int, sizes: dict[str, int],
                        parent_run_id: str | None = None) -> str:
        """A training run (``parent_run_id``: a child of that sweep's run, train-only sweeps), with the model's
        config groups as params."""
        sweep = {"sweep_id": parent_run_id} if parent_run_id else {}
        run_id = self.create_run(f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed}",
                                 run_tags("train", cfg, model_key=key, **sweep), parent_run_id)
        from mlflow.entities import Param
        container = model_groups(cfg)        # the config groups that shape the model (identity.MODEL_GROUPS)
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in logged_params(container).items()])
        self.log_metrics(run_id, {"n_params": n_params, **{f"n_{k}": v for k, v in sizes.items()}})
        return run_id

    def finish_train_run(self, run_id: str, meta: dict, model_dir: Path, keras_model, example) -> dict:
        """Log the trained model as MLflow Models (``keras_model``: Keras flavour, features → logits;
        ``model``: the pyfunc wrapper, audio or features → probabilities), register the wrapper, log the
        final metrics (linked to the wrapper) and close the run. Returns the registry facts for meta.json."""
        info = self.log_trained_model(run_id, keras_model, model_dir, example, meta)
        self.log_metrics(run_id, {k: meta[k] for k in ("val_acc", "test_acc", "epochs", "train_seconds")},
                         model_id=info["logged_model_id"])
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
        from mlflow.entities import Param
        sweep = {"sweep_id": parent_run_id} if parent_run_id else {}
        run_id = self.create_run(f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed} (from cache)",
                                 run_tags("train", cfg, model_key=tm.key, from_cache="true",
                                          cached_train_run_id=meta.get("train_run_id") or "",
                                          cached_tracking_uri=meta.get("tracking_uri") or "", **sweep), parent_run_id)
        try:
            self.client.log_batch(run_id, params=[Param(k, str(v)[:6000])
                                                  for k, v in logged_params(model_groups(cfg)).items()])
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
        from mlflow.types import ColSpec, Schema, TensorSpec

        # Model.log resolves the tracking URI globally, and would create the logged model in the *active*
        # experiment ("Default" here), not its run's: so the logged models are created here, in ours.
        mlflow.set_tracking_uri(self.uri)
        classes = list(meta["classes"])
        shape = tuple(int(d) for d in meta["input_shape"])
        tags = {"model_key": meta["key"], "dataset": meta["dataset"], "model": meta["model"]}
        if meta.get("defense"):                  # adversarial training: the logged and registered models say so
            tags["defense"] = str(meta["defense"])
        keras_sig = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classes)))]))
        keras_info = Model.log(None, model_id=self._logged_model("keras_model", run_id, {**tags, "output": "logits"}),
                               flavor=_keras_flavor(), run_id=run_id, model=keras_model,
                               signature=keras_sig, input_example=np.round(np.asarray(example[:1], np.float64), 2),
                               pip_requirements=requirements("mlflow", "keras", "tensorflow", "numpy"),
                               validate_serving_input=False)
        from .pyfunc_model import DATA_FILES
        with tempfile.TemporaryDirectory() as tmp:   # the wrapper's data: weights, normalizer, config; no code
            data = Path(tmp) / "ser_model"
            data.mkdir()
            for f in DATA_FILES:
                shutil.copy2(model_dir / f, data / f)
            info = Model.log(None, model_id=self._logged_model("model", run_id, {**tags, "output": "probabilities"}),
                             flavor=mlflow.pyfunc, run_id=run_id, loader_module=PYFUNC_MODULE, data_path=str(data),
                             signature=ModelSignature(inputs=None, outputs=Schema(
                                 [ColSpec("string", "emotion"), *[ColSpec("double", c) for c in classes],
                                  ColSpec("long", "n_segments")])),
                             input_example=example_waveform(),
                             pip_requirements=requirements("mlflow", "keras", "tensorflow", "numpy", "pandas",
                                                           "librosa", "soundfile", "soxr", "filelock"))
        name = registered_name(meta["dataset"], meta["model"])
        version = self.register(name, info.model_id, run_id, {**tags, "seed": str(meta.get("seed", ""))})
        return {"registered_model": name, "model_version": version, "model_uri": f"models:/{name}/{version}",
                "logged_model_id": info.model_id, "keras_model_id": keras_info.model_id,
                "tracking_uri": self.uri}

    def _logged_model(self, name: str, run_id: str | None, tags: dict[str, str]) -> str:
        """A new (pending) logged model in this experiment; ``Model.log(model_id=...)`` fills and finalizes it."""
        return self.client.create_logged_model(self.experiment_id, name=name, source_run_id=run_id,
                                               tags=tags).model_id

    def register(self, name: str, model_id: str, run_id: str | None, tags: dict[str, str]) -> str:
        """A new version of registered model ``name`` from logged model ``model_id``; returns the version."""
        from mlflow.exceptions import MlflowException
        try:
            self.client.create_registered_model(
                name, description="Speech emotion recognition on log-Mel spectrograms (ser-attacks). Each version "
                                  "is one trained configuration; its tag model_key is the model cache key.")
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        mv = self.client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                              model_id=model_id)
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
        self.client.log_param(run_id, "model_uri", uri)
        return uri


def registered_name(dataset: str, model: str) -> str:
    """The Model Registry name of a trained model: ``ser-<dataset>-<model>``."""
    return f"ser-{dataset}-{model}"


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


# ---------------------------------------------------------------- sweeps
def parent_run_id(sweep_dir: str | None) -> str | None:
    """The sweep's parent run id: from the environment, else from the file in the sweep folder."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    if sweep_dir and (Path(sweep_dir) / PARENT_FILE).exists():
        return (Path(sweep_dir) / PARENT_FILE).read_text().strip()
    return None


def _summary_line(run) -> str:
    m = run.data.metrics
    line = f"{run.data.tags.get('mlflow.runName', run.info.run_id):<28} {run.info.status:<9}"
    if "adv_acc" in m:
        line += (f" clean {m['clean_acc']:.3f} → adv {m['adv_acc']:.3f}"
                 f" (female {m.get('adv_acc_female', float('nan')):.3f},"
                 f" male {m.get('adv_acc_male', float('nan')):.3f})  mean|δ| {m['perturbation']:.4g}"
                 f"  {m['attack_time_s']:.1f} s")
    if run.data.tags.get("attack_effect") == "none":
        line += "  [NO EFFECT]"
    elif run.data.tags.get("attack_effect") == "undefined":
        line += "  [EFFECT UNDEFINED: no sample was correct]"
    if run.info.status != "FINISHED" and run.data.tags.get("error"):
        line += f"  {clip_words(run.data.tags['error'], 160)}"
    return line


SUMMARY_COLUMNS = {   # summary-table column → run metric (attack jobs; training jobs use their own)
    "clean_acc": "clean_acc", "adv_acc": "adv_acc", "adv_acc_female": "adv_acc_female", "adv_acc_male": "adv_acc_male",
    "perturbation": "perturbation", "attack_time_s": "attack_time_s"}
TRAIN_COLUMNS = {"val_acc": "val_acc", "test_acc": "test_acc", "epochs": "epochs", "train_seconds": "train_seconds"}


def report_enabled(value) -> bool:
    """``report`` config: auto (default) and true build a sweep's report when it ends; false does not."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("auto", "true", "on", "yes"):
        return True
    if str(value).lower() in ("false", "off", "no", "none"):
        return False
    raise ValueError(f"report={value!r}: use report=auto (default: build the sweep's report), true or false")


def summary_table(children, earlier=()) -> "pd.DataFrame":
    """One row per job of a sweep (and per earlier run a resumed sweep reused): what the parent run's
    ``summary_table.json`` holds (``mlflow.log_table``; the UI shows it under the run's artifacts)."""
    import pandas as pd
    rows = []
    for r, reused in [(r, False) for r in children] + [(r, True) for r in earlier]:
        tags, m = r.data.tags, r.data.metrics
        kind = tags.get("run_type", "")
        row = {"job": tags.get("mlflow.runName", r.info.run_id), "run_type": kind,
               "status": "SKIPPED (finished earlier)" if reused else r.info.status,
               "attack": tags.get("attack", ""), "dataset": tags.get("dataset", ""), "model": tags.get("model", "")}
        cols = TRAIN_COLUMNS if kind.startswith("train") else SUMMARY_COLUMNS
        row.update({c: m.get(k, float("nan")) for c, k in cols.items()})
        if not kind.startswith("train"):
            row["effect"] = tags.get("attack_effect", "")
        row["error"] = tags.get("error", "")[:200] if r.info.status != "FINISHED" else ""
        row["run_id"] = r.info.run_id
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_note(table, with_report: bool) -> str:
    """The parent run's description (Markdown; the run page opens on it): the summary table, short."""
    cols = [c for c in ("job", "status", "clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation",
                        "attack_time_s", "effect", "val_acc", "test_acc")
            if c in table and table[c].astype(str).ne("").any()]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |\n"
                   for row in table[cols].itertuples(index=False))
    more = ("The full report (tables, figures, statistics) is in this run's artifacts: **report.html**. "
            if with_report else "")
    return (f"**Sweep summary** ({len(table)} jobs; {SUMMARY_TABLE} in the artifacts holds every column). {more}\n\n"
            + head + body)


def _checklist_lines(config: DictConfig, uri: str, sweep_id: str) -> list[str]:
    """The robustness checklist's verdict counts and FLAGs for the sweep's attack runs (ser_attacks.report)."""
    if config.get("mode", "attack") != "attack":
        return []
    try:
        from .report.checklist import sweep_flags
        return sweep_flags(uri, str(config.tracking.experiment), sweep_id)
    except Exception as exc:  # noqa: BLE001 - the summary must never fail the sweep
        return [f"Robustness checklist not computed ({exc.__class__.__name__}: {exc})"]


def _config_error(exc: Exception):
    """The user's input (tracking URI, report option): one line and the configuration errors' exit code."""
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(lifecycle.EXIT_CONFIG) from None


def clip_words(text: str, width: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters ("…" marks the cut)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0] if " " in text[:width - 1] else text[:width - 1]
    return cut.rstrip(",;:") + "…"


class MlflowSweepCallback(Callback):
    """Creates the tracking DB and the sweep's parent run before any job; closes it at the end."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.tracking: Tracking | None = None

    @staticmethod
    def _tracking(config: DictConfig) -> Tracking:
        try:
            return Tracking.from_cfg(config)    # creates the DB / checks the server before any job
        except TrackingError as exc:
            _config_error(exc)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()
        lifecycle.close_dead_runs(self._tracking(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()     # SIGTERM/SIGINT: unwind, kill workers, close runs
        try:
            report_enabled(config.get("report", "auto"))
        except ValueError as exc:
            _config_error(exc)
        self.tracking = self._tracking(config)
        lifecycle.close_dead_runs(self.tracking)
        overrides = list(config.hydra.overrides.task)
        sweep_dir = str(config.hydra.sweep.dir)
        self.run_id = self.tracking.create_run(
            f"sweep {time.strftime('%Y-%m-%d %H:%M:%S')}",
            run_tags("sweep", config, sweep_dir=sweep_dir, overrides=" ".join(overrides)))
        os.environ[PARENT_ENV] = self.run_id
        # Jobs in other processes/hosts (joblib, SLURM, Ray) must log to the same place and share
        # one cache: export both, absolute, for the launchers to pass on.
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking.uri
        os.environ.setdefault("SER_ATTACKS_CACHE", str(Path(str(config.paths.cache_dir)).resolve()))
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        (Path(sweep_dir) / PARENT_FILE).write_text(self.run_id)
        lifecycle.sweep_opened(self.tracking, self.run_id)
        log.info("MLflow sweep run %s (%s)", self.run_id, self.tracking.uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.run_id:
            return
        client = self.tracking.client
        children = client.search_runs(
            [self.tracking.experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=10000)
        children = sorted(children, key=lambda r: r.info.start_time)
        failed = [r for r in children if r.info.status != "FINISHED"]
        report, lines, skipped_tags, summary_error = None, [], {}, None
        try:        # the summary (table, note, report, checklist) must never leave the sweep's run RUNNING
            self.tracking.log_metrics(self.run_id, {"n_jobs": len(children), "n_failed": len(failed)})
            lines = [_summary_line(r) for r in children]
            skipped_tags = {k[len("skipped."):]: v for k, v in client.get_run(self.run_id).data.tags.items()
                            if k.startswith("skipped.")}
            if skipped_tags:
                self.tracking.log_metrics(self.run_id, {"n_skipped": len(skipped_tags)})
                lines += [f"{name:<28} already FINISHED earlier: skipped (force=true reruns it)"
                          for name in sorted(skipped_tags.values())]
            earlier = [client.get_run(rid) for rid in skipped_tags]
            table = summary_table(children, earlier)
            if len(table):
                client.log_table(self.run_id, data=table, artifact_file=SUMMARY_TABLE)
                if report_enabled(config.get("report", "auto")) and (table.run_type == "attack").any() \
                        and (table.status == "FINISHED").any():
                    report = self._report(config)
                client.set_tag(self.run_id, "mlflow.note.content", sweep_note(table, report is not None))
            lines += _checklist_lines(config, self.tracking.uri, self.run_id)
        except Exception as exc:  # noqa: BLE001
            summary_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("The sweep's summary was not made (%s); its jobs' runs are complete", summary_error)
            client.set_tag(self.run_id, "summary_error", summary_error[:5000])
        finally:
            lifecycle.sweep_closed()
            self.tracking.finish(self.run_id, "FAILED" if failed else "FINISHED")
            os.environ.pop(PARENT_ENV, None)
        print(f"\nSweep finished: {len(children)} runs, {len(failed)} failed, {len(skipped_tags)} skipped "
              f"(parent run {self.run_id}).\n  " + "\n  ".join(lines)
              + (f"\nSummary not made: {summary_error}" if summary_error else "")
              + (f"\nReport: {report / 'report.html'} (also the parent run's artifacts)" if report else "")
              + f"\nTracking: {self.tracking.uri}  ->  `make ui` to browse.")
        if failed:
            raise SystemExit(f"{len(failed)} of {len(children)} jobs failed; see their traceback.txt in MLflow.")

    def _report(self, config: DictConfig) -> Path | None:
        """``report=auto``: the sweep's report (ser_attacks.report) in ``<sweep dir>/report``, logged as the
        parent run's artifacts. A report that cannot be built is a warning, never a failed sweep."""
        from .report import build_report
        out = Path(str(config.hydra.sweep.dir)) / "report"
        try:
            log.info("Building the sweep's report (report=false skips it)")
            rep = build_report(self.tracking.uri, str(config.tracking.experiment), [self.run_id], out=out,
                               name=f"ser-attacks sweep {self.run_id[:8]}", log_run=False)
            self.tracking.log_artifacts(self.run_id, rep.out)
            return rep.out
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            log.warning("The sweep's report was not built (%s: %s); build it with: python -m ser_attacks.report "
                        "--sweep %s", exc.__class__.__name__, exc, self.run_id)
            return None


def main(argv=None) -> int:
    """``python -m ser_attacks.tracking [--port 5000]``: make sure the experiment exists and carries its tag
    (also one created by an older version), and print the link that opens the MLflow UI on its runs table."""
    p = argparse.ArgumentParser(prog="python -m ser_attacks.tracking", description=main.__doc__)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    p.add_argument("--experiment", default="ser-attacks")
    p.add_argument("--artifact-root", default="mlruns")
    p.add_argument("--port", type=int, default=5000)
    a = p.parse_args(argv)
    try:
        t = Tracking(a.tracking_uri, a.experiment, a.artifact_root)
    except TrackingError as exc:
        print(f"error: {exc}")
        return 2
    print(f"MLflow UI for {t.uri}: open {ui_url(f'http://127.0.0.1:{a.port}', t.experiment_id)}\n"
          "(MLflow 3.17 starts on its GenAI view; this link, or the sidebar switch 'Model training', shows the runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
