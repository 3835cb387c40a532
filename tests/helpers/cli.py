"""The command line in a subprocess, as a user runs it, and the runs it logged, read back from MLflow."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .config import ROOT, tiny_overrides


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH (the worktree's package, not an
    installed one), plus ``extra``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def run_cli(tmp: Path, corpus: Path, *args: str, check: bool = True, synthetic: bool = True,
            env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m ser_attacks <args>`` in ``tmp`` with the tiny overrides (those ``args`` set win); the
    tracking DB is ``tmp/mlflow.db`` unless ``env_extra`` sets MLFLOW_TRACKING_URI. ``check``: raise with the
    output's tail on a non-zero exit. ``synthetic=False`` leaves the dataset overrides out."""
    env = subprocess_env(HYDRA_FULL_ERROR="1", **(env_extra or {}))
    if not env_extra or "MLFLOW_TRACKING_URI" not in env_extra:
        env.pop("MLFLOW_TRACKING_URI", None)
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    base = [o for o in tiny_overrides(tmp, corpus) if (synthetic or not o.startswith("dataset."))
            and o.split("=", 1)[0] not in given]
    proc = subprocess.run([sys.executable, "-m", "ser_attacks", *args, *base],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def mlflow_runs(tmp: Path):
    """(client, {run_type: [runs]}) of the ``ser-attacks`` experiment in ``tmp/mlflow.db``."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    every = client.search_runs([exp.experiment_id], max_results=1000)
    by_type = {}
    for r in every:
        by_type.setdefault(r.data.tags.get("run_type"), []).append(r)
    return client, by_type
