"""Sweeps and report commands in a subprocess, for the report and export tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from .cli import subprocess_env
from .config import tiny_overrides

COMMON = ["attack.n_samples=12", "attack.max_iter=3", "attack.eps_step=0.005", "train.max_epochs=3"]
TIMEOUT_S = 1800     # a 24-job sweep takes ~3 min on an idle 2-core machine, 11 min at load average 12


def cli(tmp: Path, module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m module args`` in ``tmp`` with its own tracking DB and cache."""
    env = subprocess_env(HYDRA_FULL_ERROR="1", MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
                         SER_ATTACKS_CACHE=str(tmp / "cache"))
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def sweep(tmp: Path, corpus: Path, *args: str, stdout: dict | None = None) -> str:
    """A sweep on the tiny corpus (``COMMON`` settings unless ``args`` set them); returns its parent run id."""
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    base = [o for o in tiny_overrides(tmp, corpus) if o.split("=", 1)[0] not in given]
    proc = cli(tmp, "ser_attacks", "-m", *args, *COMMON, *base)
    if stdout is not None:
        stdout["sweep"] = proc.stdout
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    parents = client.search_runs([exp.experiment_id], "tags.run_type = 'sweep'",
                                 order_by=["attributes.start_time DESC"])
    return parents[0].info.run_id
