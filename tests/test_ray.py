"""The Ray launcher against a local Ray instance (hydra-ray-launcher starts one with ray.init()).

hydra-ray-launcher pins ray<3 and cloudpickle<3 while the project pins cloudpickle 3, so it is
installed beside the venv, not into it: `make ray-pkgs` (run by .ci/run) puts it in .ray-pkgs/,
which this test puts first on PYTHONPATH. Skipped, with the reason, when that folder is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import ROOT, run_cli

RAY_PKGS = Path(os.environ.get("SER_ATTACKS_RAY_PKGS", ROOT / ".ray-pkgs"))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (RAY_PKGS / "hydra_plugins" / "hydra_ray_launcher").is_dir(),
                                 reason=f"hydra-ray-launcher not installed in {RAY_PKGS} (make ray-pkgs)")]


def test_sweep_on_a_local_ray_instance(tmp_path, corpus_root):
    proc = run_cli(tmp_path, corpus_root, "-m", "hydra/launcher=ray_local", "attack=fgsm",
                   "attack.eps=0.01,0.05", "attack.n_samples=6", "input.realize=false",
                   env_extra={"PYTHONPATH": f"{RAY_PKGS}{os.pathsep}{ROOT}"})
    assert "Sweep finished: 2 runs, 0 failed" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id])
    kinds = [r.data.tags["run_type"] for r in runs]
    assert kinds.count("sweep") == 1 and kinds.count("attack") == 2 and kinds.count("train") == 1
    parent = next(r for r in runs if r.data.tags["run_type"] == "sweep")
    for r in runs:
        if r.data.tags["run_type"] == "attack":
            assert r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert "adv_acc_female" in r.data.metrics
