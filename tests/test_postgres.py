"""Integration: a real PostgreSQL server + `mlflow server` on it, a tiny sweep logged over HTTP,
read back through MLflow's REST API. Both servers are started here and stopped by PID.

Needs Debian's postgresql package (`.ci/run` installs it when missing); skipped with the reason
when its binaries are absent.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import run_cli

pytestmark = pytest.mark.integration
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def mlflow_on_postgres():
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pg = Path(PG_BIN[-1])
    work = Path(tempfile.mkdtemp(prefix="ser_pg_", dir="/tmp"))
    data, sock = work / "data", work / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(sock, "postgres")
    pg_port, http_port = _free_port(), _free_port()
    subprocess.run(_as_pg_user([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
                   check=True, capture_output=True)
    subprocess.run(_as_pg_user([str(pg / "pg_ctl"), "-D", str(data), "-l", str(work / "pg.log"), "-w", "start",
                                "-o", f"-p {pg_port} -k {sock} -c listen_addresses=127.0.0.1"]),
                   check=True, capture_output=True)
    pg_pid = int((data / "postmaster.pid").read_text().split()[0])
    server = None
    try:
        subprocess.run(_as_pg_user([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres",
                                    "mlflow"]), check=True, capture_output=True)
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        log = open(work / "mlflow.log", "w")
        server = subprocess.Popen(
            [mlflow_bin, "server", "--backend-store-uri", f"postgresql://postgres@127.0.0.1:{pg_port}/mlflow",
             "--artifacts-destination", str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(http_port),
             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{http_port}"
        _wait(url + "/health", 90)
        yield url
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        os.kill(pg_pid, signal.SIGINT)            # PostgreSQL "fast shutdown"
        for _ in range(60):
            if not (data / "postmaster.pid").exists():
                break
            time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)


def _api(url: str, path: str, **body):
    r = requests.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def test_sweep_against_mlflow_server_on_postgresql(tmp_path, corpus_root, mlflow_on_postgres):
    url = mlflow_on_postgres
    run_cli(tmp_path, corpus_root, "-m", "attack=fgsm", "attack.eps=0.1,0.3", "attack.n_samples=6",
            f"tracking.uri={url}", "input.realize=false")      # the store is the subject, not the resynthesis
    assert not (tmp_path / "mlflow.db").exists(), "nothing may be logged to a local DB"
    exp = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name",
                       params={"experiment_name": "ser-attacks"}, timeout=30).json()["experiment"]
    runs = _api(url, "runs/search", experiment_ids=[exp["experiment_id"]], max_results=100)["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    by_type = {}
    for r, t in zip(runs, tags):
        by_type.setdefault(t.get("run_type"), []).append((r, t))
    (parent, _), = by_type["sweep"]
    children = by_type["attack"]
    assert len(children) == 2 and len(by_type["train"]) == 1
    assert {t["mlflow.parentRunId"] for _, t in children} == {parent["info"]["run_id"]}
    assert parent["info"]["status"] == "FINISHED"
    for r, _ in children:
        assert r["info"]["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
        assert {"adv_acc", "adv_acc_female", "adv_acc_male", "perturbation", "clean_acc"} <= metrics.keys()
        arts = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": r["info"]["run_id"]},
                            timeout=30).json()
        assert "config.yaml" in {f["path"] for f in arts.get("files", [])}
