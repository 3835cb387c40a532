"""The container files: what can be checked without building an image, and the guards of docker/smoke.sh.

The real test of the images is docker/smoke.sh (make docker-smoke; CI runs it after this suite): it builds
the CPU image, runs a sweep in it with the three volumes, brings up the compose stack and checks that the
runs and their artifacts (model, report) arrived on the server. Here: the compose file as Compose v2
resolves it (where `docker compose` is installed), the rules a static reading can break, and the script's
skips (no daemon, no disk), run for real with a stand-in `docker` on PATH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml

from tests.helpers import ROOT, compose_config

COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
SMOKE = ROOT / "docker" / "smoke.sh"


def _has_compose_v2() -> bool:
    if not shutil.which("docker"):
        return False
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return r.returncode == 0 and "v2." in r.stdout


needs_compose = pytest.mark.skipif(not _has_compose_v2(), reason="Compose v2 (`docker compose`) is not installed "
                                   "(docker/install-tools.sh installs it)")


def _compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "PYTHON_IMAGE", "CPU_IMAGE"))}
    return subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), *args, "config", "--format", "json"],
                          capture_output=True, text=True, env={**keep, **env}, cwd=ROOT)


# ---- the password: from the environment, no default ----------------------------------------------------

def test_compose_file_gives_no_default_postgres_password():
    text = COMPOSE_FILE.read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", text)
    assert uses, "the stack takes its password from POSTGRES_PASSWORD"
    assert all(u.startswith(":?") for u in uses), f"every use must be ${{POSTGRES_PASSWORD:?message}}: {uses}"


@needs_compose
def test_compose_refuses_to_start_without_a_password():
    r = _compose_config({})
    assert r.returncode != 0
    assert "POSTGRES_PASSWORD is not set" in r.stderr, r.stderr
    ok = _compose_config({"POSTGRES_PASSWORD": "0a1b2c"})
    assert ok.returncode == 0, ok.stderr
    import json
    services = json.loads(ok.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "0a1b2c"
    assert "postgresql://mlflow:0a1b2c@postgres:5432/mlflow" in " ".join(services["mlflow"]["command"])


# ---- images overridable (registry mirrors, machines without Docker Hub) --------------------------------

@needs_compose
def test_compose_images_are_overridable():
    import json
    env = {"POSTGRES_PASSWORD": "x", "POSTGRES_IMAGE": "mirror.example/postgres:16",
           "PYTHON_IMAGE": "mirror.example/python:3.11", "CPU_IMAGE": "ser-attacks:test"}
    r = _compose_config(env, "--profile", "cpu", "--profile", "gpu")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)["services"]
    assert s["postgres"]["image"] == "mirror.example/postgres:16"
    assert s["mlflow"]["image"] == s["runner-cpu"]["image"] == "ser-attacks:test"
    for name in ("mlflow", "runner", "runner-cpu"):
        assert s[name]["build"]["args"]["PYTHON_IMAGE"] == "mirror.example/python:3.11", name
    defaults = json.loads(_compose_config({"POSTGRES_PASSWORD": "x"}).stdout)["services"]
    assert defaults["postgres"]["image"] == "postgres:16-bookworm" and defaults["mlflow"]["image"] == "ser-attacks:cpu"


# ---- rules a static reading checks (each broke before) --------------------------------------------------

def test_every_volume_of_a_non_root_service_exists_in_the_image_owned_by_its_user():
    """A named volume mounted on a folder missing from the image is created owned by root, so a service
    running as uid 1000 cannot write to it (the server's artifact uploads failed with HTTP 500). docker/smoke.sh
    shows it for real (an upload must succeed); this reads the Dockerfile for the folders and their owner."""
    assert re.search(r"useradd [^\n]*--uid 1000 ser", DOCKERFILE)
    made = set(re.findall(r"mkdir -p ([^\n&\\]+)", DOCKERFILE)[-1].split())
    owned = set(re.findall(r"chown -R ser:ser ([^\n&\\]+)", DOCKERFILE)[-1].split())
    for name, svc in COMPOSE["services"].items():
        if "build" not in svc or str(svc.get("user", "1000")) not in ("1000", "ser"):
            continue                               # not our image, or not run as its user ser
        for v in svc.get("volumes", []):
            source, target = v.split(":")[:2]
            if source in COMPOSE["volumes"]:       # a named volume (bind mounts keep the host's owner)
                assert target in made, f"{name}: {target} is not created in the image"
                assert target in owned or any(target.startswith(o + "/") for o in owned), \
                    f"{name}: {target} is not owned by ser in the image"


def test_compose_keeps_the_database_and_ui_off_the_network():
    s = COMPOSE["services"]
    assert all(p.startswith("127.0.0.1:") for p in s["mlflow"]["ports"]), "UI on loopback only"
    assert "ports" not in s["postgres"], "the database stays on the compose network"


def test_dockerignore_keeps_outputs_and_data_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".cache", "data", "mlruns", "multirun", "mlflow.db"} <= ignored


@pytest.mark.parametrize("launcher,key,value", [("joblib", "n_jobs", 2), ("slurm", "gpus_per_node", 1)])
def test_launcher_configs_compose(launcher, key, value):
    cfg = compose_config(f"hydra/launcher={launcher}", f"hydra.launcher.{key}={value}", return_hydra_config=True)
    assert cfg.hydra.launcher[key] == value
    assert "_target_" in cfg.hydra.launcher


# ---- docker/smoke.sh: it skips, saying why, rather than failing or passing silently ----------------------

def _fake_docker(tmp_path, root_dir: str) -> dict[str, str]:
    """A `docker` on PATH that answers like a running daemon whose storage is in ``root_dir``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(f"""#!/bin/sh
case "$*" in
  "info --format {{{{.DockerRootDir}}}}") echo {root_dir} ;;
  info*|"compose version"*) echo ok ;;
  *) echo "fake docker: unexpected call: $*" >&2; exit 3 ;;
esac
""")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_smoke_skips_without_enough_disk(tmp_path):
    env = _fake_docker(tmp_path, str(tmp_path))
    r = subprocess.run(["bash", str(SMOKE)], capture_output=True, text=True, timeout=60,
                       env={**env, "SMOKE_MIN_FREE_GB": "1000000"})
    assert r.returncode == 77, r.stdout + r.stderr
    assert re.search(r"SKIPPED: needs about 1000000 GB free .*; \d+ GB free", r.stdout), r.stdout


def test_smoke_skips_when_no_daemon_can_be_reached(tmp_path):
    sock = f"unix:///tmp/no-docker-{uuid.uuid4().hex}.sock"
    r = subprocess.run(["bash", str(SMOKE)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "DOCKER_HOST": sock, "SMOKE_START_DOCKERD": "0"})
    assert r.returncode == 77, r.stdout + r.stderr
    assert "SKIPPED:" in r.stdout and ("no Docker daemon answers" in r.stdout or "no docker client" in r.stdout)
