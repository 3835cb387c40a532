"""Resume after an interrupted sweep, and fail-fast on an unreachable tracking server."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import run_cli, subprocess_env, tiny_overrides

pytestmark = pytest.mark.e2e   # CLI sweeps in subprocesses, interrupted and resumed; `make test-fast` leaves them out

# input.realize=false: resynthesis (about half of a job's time) has nothing to do with resuming
SWEEP = ["-m", "attack=bim", "attack.eps=0.1,0.2,0.3,0.4", "attack.max_iter=40", "attack.n_samples=12",
         "input.realize=false"]


def _attack_runs(tmp: Path):
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", max_results=1000)


def _n_finished_raw(db: Path) -> int:
    """Poll the DB read-only with sqlite3 (an MlflowClient here would race the job's schema setup)."""
    import sqlite3
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM runs r JOIN tags t ON r.run_uuid = t.run_uuid "
                               "WHERE r.status = 'FINISHED' AND t.key = 'run_type' AND t.value = 'attack'"
                               ).fetchone()[0]
    except sqlite3.Error:
        return 0


def test_interrupted_sweep_resumes_without_repeating_or_losing_runs(tmp_path, corpus_root):
    env = subprocess_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tmp_path / "interrupted.log"           # stdout + stderr, shown if the process ends otherwise than asked
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ser_attacks", *SWEEP, *tiny_overrides(tmp_path, corpus_root)],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    try:   # interrupt as soon as the first job has finished: freeze the sweep there (SIGSTOP is immediate),
        # read what finished, then deliver SIGTERM as it resumes, so no further job can complete
        while time.time() < deadline and proc.poll() is None:
            if _n_finished_raw(tmp_path / "mlflow.db") >= 1:
                proc.send_signal(signal.SIGSTOP)
                break
            time.sleep(0.3)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        n_frozen = _n_finished_raw(tmp_path / "mlflow.db")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, log.read_text()[-5000:]
    before = _attack_runs(tmp_path)
    finished_before = {r.data.tags["config_hash"]: r.info.run_id for r in before if r.info.status == "FINISHED"}
    # at most the job frozen inside its final write can still complete after the interrupt
    assert 1 <= n_frozen <= len(finished_before) <= n_frozen + 1 and len(finished_before) < 4
    assert not [r for r in before if r.info.status == "RUNNING"], "the interrupted job is closed, not RUNNING"

    out = run_cli(tmp_path, corpus_root, *SWEEP)        # the same command again
    assert f"{len(finished_before)} skipped" in out.stdout
    after = _attack_runs(tmp_path)
    finished = Counter(r.data.tags["config_hash"] for r in after if r.info.status == "FINISHED")
    assert len(finished) == 4, "every configuration has a finished run"
    assert set(finished.values()) == {1}, "no finished configuration was run twice"
    for h, run_id in finished_before.items():           # the earlier results are the ones kept
        assert any(r.info.run_id == run_id for r in after if r.data.tags["config_hash"] == h)

    # force=true runs a configuration the sweep finished once more (eps=0.1; the sweep's list, not bim's default
    # 0.25, which no run had: "0 skipped" would hold without force)
    one = [a if not a.startswith("attack.eps=") else "attack.eps=0.1" for a in SWEEP]
    forced = run_cli(tmp_path, corpus_root, *one, "force=true")
    assert "0 skipped" in forced.stdout
    again = Counter(r.data.tags["config_hash"] for r in _attack_runs(tmp_path) if r.info.status == "FINISHED")
    assert sorted(again.values()) == [1, 1, 1, 2], "force=true reran the finished configuration"


def test_unreachable_tracking_server_fails_fast_naming_the_uri(tmp_path, corpus_root):
    uri = "http://127.0.0.1:9"         # discard port: nothing listens
    t0 = time.time()
    proc = run_cli(tmp_path, corpus_root, "tracking.uri=" + uri, check=False)
    assert proc.returncode != 0 and time.time() - t0 < 120
    assert uri in proc.stderr and "not reachable" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists(), "no silent fallback to a local DB"
    proc = run_cli(tmp_path, corpus_root, "-m", "attack.eps=0.1,0.2", "tracking.uri=" + uri, check=False)
    assert proc.returncode != 0 and uri in proc.stderr
