"""The tracking store: open the database or server, create runs, log to them and close them.

``Tracking`` is the one object the stages log through (``ModelLogging`` adds the model and registry part).
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
import subprocess
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from .. import lifecycle
from ..identity import logged_params
from ..paths import PROJECT_ROOT, resolve_uri
from ..progress import quiet_libraries
from .models import ModelLogging
from .views import ViewLogging

log = logging.getLogger(__name__)
PARENT_ENV = "SER_ATTACKS_PARENT_RUN_ID"
FAULT_TAG = "fault_log"          # while a job runs: the file a fatal signal would be reported to (lifecycle)
NOTE_TAG = "mlflow.note.content"  # a run's description: the first panel of its page in the UI
# MLflow 3 UIs that choose an experiment's view by its kind open one without this tag on their GenAI overview
# (traces, tokens). 3.17.2's UI decides by its sidebar switch instead; browser.ui_url links past it.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


# Shares of segments (k of n) and the summaries made of them: logged to 4 decimals, which the UI shows as 0.0476
# instead of 0.04761905 (1/21); the exact counts are metrics beside them (``metrics.COUNTS``: n_correct_adv, …) and
# the report recomputes the shares from those (``metrics.exact_fractions``).
FRACTION = re.compile(r"^(model_|mean_|best_)?(clean_acc|adv_acc|success_rate|changed|val_acc|test_acc)(_\w+)?$")
FRACTION_DECIMALS = 4
# durations (attack_time_s, time_per_sample_s, train_seconds): 4 significant digits, far beyond a timing's noise
DURATION = re.compile(r"(_s|_seconds)$")


def shown(value, key: str = "") -> float:
    """A metric value as logged: a share of segments (``FRACTION``: accuracies, success rates) to 4 decimals, a
    duration in seconds to 4 significant digits (29.94, not 29.93931), any other value to 7 significant digits (a
    float32's precision), so the UI, which prints the stored value in full, shows 0.0476 and 0.3, not 0.04761905
    and 0.30000001192092896; integers and non-finite values stay as they are."""
    v = float(value)
    if not math.isfinite(v) or v.is_integer():
        return v
    if FRACTION.match(key):
        return round(v, FRACTION_DECIMALS)
    return float(f"{v:.4g}") if DURATION.search(key) else float(f"{v:.7g}")


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
    from ..cache import locked
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


class Tracking(ModelLogging, ViewLogging):
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
        self.save_summary_view()      # the runs table's columns in a browser without saved state (views.py)

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
            tags[FAULT_TAG] = str(lifecycle.current_fault_log())
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

    def search(self, filter_string: str = "", max_results: int = 1000, order_by: list[str] | None = None):
        """This experiment's runs matching ``filter_string`` (MLflow's search syntax)."""
        return self.client.search_runs([self.experiment_id], filter_string, max_results=max_results,
                                       order_by=order_by)

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

    def reopen(self, run_id: str) -> None:
        """A closed run RUNNING again (a resumed Optuna study's run)."""
        self.client.update_run(run_id, status="RUNNING")

    def log_config(self, run_id: str, cfg) -> None:
        container = OmegaConf.to_container(cfg, resolve=True)
        self.log_params(run_id, logged_params(container))
        self.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")

    def log_params(self, run_id: str, params: dict) -> None:
        """Params in batches of 100 (MLflow's limit), each value as text of at most 6000 characters."""
        from mlflow.entities import Param
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_param(self, run_id: str, key: str, value) -> None:
        self.client.log_param(run_id, key, value)

    def set_tag(self, run_id: str, key: str, value) -> None:
        self.client.set_tag(run_id, key, str(value))

    def describe(self, run_id: str, text: str) -> None:
        """The run's description (Markdown), which the UI shows first on the run's page."""
        self.set_tag(run_id, NOTE_TAG, text)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0, model_id: str | None = None) -> None:
        """Metrics as ``shown`` rounds them (the UI prints the stored value in full): shares of segments to 4
        decimals, whose exact counts the caller logs beside them."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, shown(v, k), now, step, model_id=model_id)
                                               for k, v in metrics.items()])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_figure(self, run_id: str, fig, name: str) -> None:
        self.client.log_figure(run_id, fig, name)

    def log_curve(self, run_id: str, table, fig, name: str) -> None:
        """A curve as ``<name>.csv`` (its table) and ``<name>.png`` (its figure, closed afterwards)."""
        import matplotlib.pyplot as plt
        self.log_text(run_id, table.to_csv(index=False, float_format="%.5g"), f"{name}.csv")
        self.log_figure(run_id, fig, f"{name}.png")
        plt.close(fig)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_table(self, run_id: str, table, name: str) -> None:
        """A DataFrame as an MLflow table artifact (``mlflow.log_table``: the UI's artifact view shows it)."""
        self.client.log_table(run_id, data=table, artifact_file=name)

    def log_dict(self, run_id: str, obj: dict, name: str) -> None:
        self.client.log_dict(run_id, obj, name)

    def epoch_logger(self, run_id: str):
        """A Keras callback that logs loss/accuracy/lr per epoch to run ``run_id`` (training, Optuna trials)."""
        import keras
        from mlflow.entities import Metric
        client = self.client

        class EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                if "lr" not in logs:    # a resumed training replays saved epochs with the lr each one had
                    logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(k, shown(v), now, epoch) for k, v in logs.items()])

        return EpochLogger()

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """Close the run. Its ``fault_log`` tag goes: that file exists only while the job runs (an empty one is
        removed when the job ends), so no closed run points at it; a dead process's report is logged as an
        artifact before (``lifecycle.close_run``)."""
        try:
            self.client.delete_tag(run_id, FAULT_TAG)
        except Exception:  # noqa: BLE001 - the run has no such tag
            pass
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
        self.set_tag(run_id, "error", f"interrupted ({stop})")
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
                self.set_tag(run_id, "error", f"{exc.__class__.__name__}: {exc}"[:5000])
                self.log_text(run_id, "".join(traceback.format_exception(exc)), "traceback.txt")
        finally:
            self.finish(run_id, "FAILED")
