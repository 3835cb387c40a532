"""The container files agree with the project's pins and conventions, and the launcher configs compose.

No Docker engine runs on CI, so these are static checks; the compose stack itself is documented in
docs/scaling-out.md with what was and was not run.
"""
from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import ROOT, compose_config

COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_dockerfile_installs_from_the_project_pins_as_non_root():
    assert "python:3.11" in DOCKERFILE
    assert re.search(r"pip install -c constraints.txt -e \"\.\[\$\{TF_EXTRA\},postgres\]\"", DOCKERFILE)
    assert "COPY pyproject.toml constraints.txt" in DOCKERFILE
    assert "COPY hydra_plugins ./hydra_plugins" in DOCKERFILE, \
        "the list sweeper (experiment=paper_grid) ships in the image"
    assert re.search(r"^USER ser$", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["python", "-m", "ser_attacks"]' in DOCKERFILE
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'gpu = ["tensorflow[and-cuda]==2.21.*"]' in pyproject and "tensorflow-cpu==2.21.*" in pyproject


def test_compose_services():
    s = COMPOSE["services"]
    assert set(s) == {"postgres", "mlflow", "runner"}
    cmd = " ".join(s["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in cmd and "@postgres:5432/" in cmd
    assert "--workers=" in cmd and "--artifacts-destination=/mlartifacts" in cmd
    assert all(p.startswith("127.0.0.1:") for p in s["mlflow"]["ports"]), "UI on loopback only"
    assert "ports" not in s["postgres"], "the database stays on the compose network"
    assert any(v.startswith("pgdata:") for v in s["postgres"]["volumes"]) and "pgdata" in COMPOSE["volumes"]
    runner = s["runner"]
    assert runner["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    dev = runner["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"]
    assert runner["build"]["args"]["TF_EXTRA"] == "gpu" and s["mlflow"]["build"]["args"]["TF_EXTRA"] == "cpu"


def test_dockerignore_keeps_outputs_and_data_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".cache", "data", "mlruns", "multirun", "mlflow.db"} <= ignored


@pytest.mark.parametrize("launcher,key,value", [("joblib", "n_jobs", 2), ("slurm", "gpus_per_node", 1)])
def test_launcher_configs_compose(launcher, key, value):
    cfg = compose_config(f"hydra/launcher={launcher}", f"hydra.launcher.{key}={value}", return_hydra_config=True)
    assert cfg.hydra.launcher[key] == value
    assert "_target_" in cfg.hydra.launcher
