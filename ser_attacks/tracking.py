"""MLflow tracking: one parent run per sweep, one child run per job, one run per trained model.

Everything goes through ``MlflowClient`` with explicit run ids (no global "active run"), so a
training run can be logged while an attack run is open, and child runs in other processes or hosts
attach to the sweep's parent by id. The default backend is a sqlite DB plus artifacts under
``mlruns/``; ``MLFLOW_TRACKING_URI`` overrides it (e.g. a shared server). The parent process
creates the DB and the parent run (Hydra callback) before any parallel job starts, so joblib
workers never race to create the schema.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from . import lifecycle

log = logging.getLogger(__name__)
PARENT_ENV = "SER_ATTACKS_PARENT_RUN_ID"
PARENT_FILE = "mlflow_parent_run_id.txt"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable server, bad URI)."""


def resolve_uri(uri: str) -> str:
    """Make a relative sqlite path absolute, so every process and job agrees on one DB file."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - not a git checkout (installed package, container)
        return "unknown"


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


class Tracking:
    def __init__(self, uri: str, experiment: str, artifact_root: str | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = resolve_uri(uri)
        self._check_reachable()
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
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
        params = [Param(k, str(v)[:6000]) for k, v in flatten(container).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i:i + 100])
        self.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_figure(self, run_id: str, fig, name: str) -> None:
        self.client.log_figure(run_id, fig, name)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def end_on_exception(self, run_id: str, exc: BaseException) -> None:
        """An error → FAILED (with its traceback); an interrupt (SIGTERM, Ctrl-C) → KILLED."""
        if isinstance(exc, Exception):
            self.fail_run(run_id, exc)
            return
        stop = exc.name if isinstance(exc, lifecycle.Interrupted) else exc.__class__.__name__
        self.client.set_tag(run_id, "error", f"interrupted ({stop})")
        self.finish(run_id, "KILLED")

    def fail_run(self, run_id: str, exc: BaseException | None = None) -> None:
        try:
            if exc is not None:
                self.client.set_tag(run_id, "error", f"{exc.__class__.__name__}: {exc}"[:5000])
                self.log_text(run_id, "".join(traceback.format_exception(exc)), "traceback.txt")
        finally:
            self.finish(run_id, "FAILED")

    # -------------------------------------------------------------- training
    def start_train_run(self, cfg, key: str, n_params: int, sizes: dict[str, int]) -> str:
        run_id = self.create_run(f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed}",
                                 {"run_type": "train", "model_key": key, "dataset": cfg.dataset.name,
                                  "language": cfg.dataset.language, "model": cfg.model.name})
        container = {k: OmegaConf.to_container(cfg[k], resolve=True)
                     for k in ("dataset", "features", "augment", "split", "normalization", "model", "train")}
        container["seed"] = cfg.seed
        from mlflow.entities import Param
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in flatten(container).items()])
        self.log_metrics(run_id, {"n_params": n_params, **{f"n_{k}": v for k, v in sizes.items()}})
        return run_id

    def finish_train_run(self, run_id: str, meta: dict, model_dir: Path) -> None:
        self.log_metrics(run_id, {k: meta[k] for k in ("val_acc", "test_acc", "epochs", "train_seconds")})
        self.log_artifacts(run_id, model_dir, "model")
        self.finish(run_id)


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
        line += (f" clean {m['clean_acc']:.3f} → adv {m['adv_acc']:.3f} (female {m.get('adv_acc_female', float('nan')):.3f},"
                 f" male {m.get('adv_acc_male', float('nan')):.3f})  mean|δ| {m['perturbation']:.4g}"
                 f"  {m['attack_time_s']:.1f} s")
    if run.data.tags.get("attack_effect") == "none":
        line += "  [NO EFFECT]"
    elif run.data.tags.get("attack_effect") == "undefined":
        line += "  [EFFECT UNDEFINED: no sample was correct]"
    if run.info.status != "FINISHED" and run.data.tags.get("error"):
        line += f"  {run.data.tags['error'][:160]}"
    return line


def _checklist_lines(config: DictConfig, uri: str, sweep_id: str) -> list[str]:
    """The robustness checklist's verdict counts and FLAGs for the sweep's attack runs (ser_attacks.report)."""
    if config.get("mode", "attack") != "attack":
        return []
    try:
        from .report.checklist import sweep_flags
        return sweep_flags(uri, str(config.tracking.experiment), sweep_id)
    except Exception as exc:  # noqa: BLE001 - the summary must never fail the sweep
        return [f"Robustness checklist not computed ({exc.__class__.__name__}: {exc})"]


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
            raise SystemExit(f"error: {exc}") from None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()
        lifecycle.close_dead_runs(self._tracking(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()     # SIGTERM/SIGINT: unwind, kill workers, close runs
        self.tracking = self._tracking(config)
        lifecycle.close_dead_runs(self.tracking)
        overrides = list(config.hydra.overrides.task)
        sweep_dir = str(config.hydra.sweep.dir)
        self.run_id = self.tracking.create_run(
            f"sweep {time.strftime('%Y-%m-%d %H:%M:%S')}",
            {"run_type": "sweep", "sweep_dir": sweep_dir, "overrides": " ".join(overrides),
             "dataset": config.dataset.name})
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
        lifecycle.sweep_closed()
        children = self.tracking.client.search_runs(
            [self.tracking.experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=10000)
        failed = [r for r in children if r.info.status != "FINISHED"]
        self.tracking.log_metrics(self.run_id, {"n_jobs": len(children), "n_failed": len(failed)})
        self.tracking.finish(self.run_id, "FAILED" if failed else "FINISHED")
        os.environ.pop(PARENT_ENV, None)
        lines = [_summary_line(r) for r in sorted(children, key=lambda r: r.info.start_time)]
        skipped = [v for k, v in self.tracking.client.get_run(self.run_id).data.tags.items()
                   if k.startswith("skipped.")]
        if skipped:
            self.tracking.log_metrics(self.run_id, {"n_skipped": len(skipped)})
            lines += [f"{name:<28} already FINISHED earlier: skipped (force=true reruns it)" for name in sorted(skipped)]
        print(f"\nSweep finished: {len(children)} runs, {len(failed)} failed, {len(skipped)} skipped "
              f"(parent run {self.run_id}).\n  " + "\n  ".join(lines + _checklist_lines(config, self.tracking.uri,
                                                                                         self.run_id))
              + f"\nTracking: {self.tracking.uri}  ->  `make ui` to browse.")
        if failed:
            raise SystemExit(f"{len(failed)} of {len(children)} jobs failed; see their traceback.txt in MLflow.")
