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


# ---- the GPU image (make docker-gpu-image = SMOKE_VARIANT=gpu docker/smoke.sh) ---------------------------

FAKE_DOCKER = r'''#!/usr/bin/env python3
"""A `docker` that logs its calls (JSON lines in $FAKE_LOG) and answers like a daemon with the images built;
`docker run` writes what a sweep leaves in the bind-mounted /work/runs and /work/cache."""
import json, os, pathlib, sys
a = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(a) + "\n")
fmt = a[a.index("--format") + 1] if "--format" in a else ""
if a[:1] == ["info"]:
    print({"{{.DockerRootDir}}": os.environ["FAKE_ROOT"], "{{.Driver}}": "vfs",
           "{{json .Runtimes}}": os.environ.get("FAKE_RUNTIMES", '{"runc":{}}')}.get(fmt, "ok"))
elif a[:1] == ["version"] or a[:2] in (["compose", "version"], ["buildx", "version"]):
    print("20.10.24")
elif a[:2] == ["image", "inspect"]:
    print(7961683733 if fmt == "{{.Size}}" else "[]")
elif a[:1] == ["build"] or a[:2] == ["rm", "-f"]:
    pass
elif a[:1] == ["run"]:
    mounts = dict(reversed(a[i + 1].split(":")[:2]) for i, x in enumerate(a) if x == "-v")
    runs, cache = pathlib.Path(mounts["/work/runs"]), pathlib.Path(mounts["/work/cache"])
    (runs / "mlflow.db").write_text("")
    (runs / "multirun/d/t/report").mkdir(parents=True)
    (runs / "multirun/d/t/report/report.html").write_text("")
    (cache / "features").write_text("")
else:
    sys.exit(f"fake docker: unexpected call: {a}")
'''


def _run_smoke_with_fake_docker(tmp_path, **env) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "calls.jsonl"
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SMOKE_", "CPU_IMAGE", "GPU_IMAGE"))}
    r = subprocess.run(["bash", str(SMOKE)], capture_output=True, text=True, timeout=120,
                       env={**keep, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
                            "FAKE_ROOT": str(tmp_path), "SMOKE_MIN_FREE_GB": "0", "SMOKE_START_DOCKERD": "0",
                            "SMOKE_WORK": str(tmp_path / "work"), **env})
    import json
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return r, calls


@pytest.mark.e2e
@pytest.mark.parametrize("runtimes,gpus,expect", [
    ('{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}', None, "GPU"),   # the host lends its GPU
    ('{"runc":{}}', "0", "CPU"),                                                 # no GPU: the CPU fallback
])
def test_smoke_gpu_variant_builds_the_gpu_image_and_runs_it_on_the_gpu_where_there_is_one(
        tmp_path, runtimes, gpus, expect):
    env = {"SMOKE_VARIANT": "gpu", "FAKE_RUNTIMES": runtimes, **({"SMOKE_GPUS": gpus} if gpus else {})}
    r, calls = _run_smoke_with_fake_docker(tmp_path, **env)
    assert r.returncode == 0, r.stdout + r.stderr
    builds = [c for c in calls if c[0] == "build"]
    assert len(builds) == 1, builds                       # the GPU image only: no PostgreSQL stand-in
    b = builds[0]
    assert b[b.index("-t") + 1] == "ser-attacks:gpu" and "TF_EXTRA=gpu" in b and "TF_EXTRA=cpu" not in b
    (run,) = [c for c in calls if c[0] == "run"]
    assert run[run.index("--entrypoint") + 2] == "ser-attacks:gpu"
    assert (run[run.index("--gpus") + 1] == "all") if expect == "GPU" else ("--gpus" not in run)
    assert f"EXPECT_DEVICE={expect}" in run
    assert not any(c[0] == "compose" and c[1] != "version" for c in calls), "no compose stack for the GPU image"
    assert f"PASSED (ser-attacks:gpu on the {expect}" in r.stdout


def test_smoke_rejects_an_unknown_variant(tmp_path):
    r, calls = _run_smoke_with_fake_docker(tmp_path, SMOKE_VARIANT="tpu")
    assert r.returncode == 2 and "SMOKE_VARIANT must be cpu or gpu" in r.stderr and not calls


def test_gpu_pins_move_with_the_cpu_pins():
    """constraints-gpu.txt pins what `make lock` on a CPU venv cannot see (tensorflow, the CUDA wheels); the
    Dockerfile and `make install` read it beside constraints.txt, and tensorflow's version is tensorflow-cpu's."""
    def pins(name):
        return dict(line.strip().split("==") for line in (ROOT / name).read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    cpu, gpu = pins("constraints.txt"), pins("constraints-gpu.txt")
    assert gpu["tensorflow"] == cpu["tensorflow_cpu"]
    assert {k for k in gpu if k.startswith("nvidia-")} >= {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"}
    assert not set(gpu) & set(cpu), "a package pinned in both files"
    assert re.search(r"pip install -c constraints\.txt -c constraints-gpu\.txt ", DOCKERFILE)
    assert "constraints-gpu.txt" in re.search(r"COPY [^\n]*constraints\.txt[^\n]*", DOCKERFILE).group(0)
    assert "-c constraints.txt -c constraints-gpu.txt" in (ROOT / "Makefile").read_text()
