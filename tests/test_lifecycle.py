"""Concurrent first use of librosa's numba kernels, and how sweeps end on signals and crashed workers.

Every interrupt here happens on a condition the test observes in the tracking DB (a job is RUNNING
in an endless attack), never on a timing guess. The sweeps start on a copy of the session's trained tiny model
(fixture ``tiny_cache``): the jobs reach the attack without training one each.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import seed_cache, subprocess_env, tiny_overrides

pytestmark = pytest.mark.e2e   # processes started, signalled and killed; `make test-fast` leaves them out

# ---------------------------------------------------------------------------- numba cache race
FEATURES = textwrap.dedent("""
    import sys
    from ser_attacks.data.audio import Augmentation, recording_features, FrontEnd
    import librosa, numpy as np
    out = recording_features(sys.argv[1], FrontEnd(), (None, Augmentation("pitch", 1.5),
                                                       Augmentation("stretch", 0.9)))
    librosa.yin(np.random.default_rng(1).standard_normal(8000).astype(np.float32), fmin=60, fmax=500, sr=16000)
    assert all(np.isfinite(o).all() for o in out)
    print("ok", [o.shape for o in out])
""")


def _cache_files(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*.nb[ic]")}


@pytest.mark.parametrize("trial", range(3))
def test_concurrent_first_use_then_a_fresh_process_runs_the_pipeline(tmp_path, corpus_root, trial):
    """Three processes start on an EMPTY numba cache at the same moment (what `make demo`'s feature
    workers, a joblib sweep or cluster jobs sharing a venv do); all succeed, and a fresh process then
    runs the feature pipeline on the kernels they left, compiling nothing new (the warm-up covers
    every kernel and signature the pipeline uses)."""
    wav = str(sorted(corpus_root.rglob("*.wav"))[trial])
    env = subprocess_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    procs = [subprocess.Popen([sys.executable, "-c", FEATURES, wav], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"concurrent first use failed (exit {p.returncode}):\n{err[-3000:]}"
    compiled = _cache_files(tmp_path / "numba")
    assert compiled, "the kernels were cached in NUMBA_CACHE_DIR"
    fresh = subprocess.run([sys.executable, "-c", FEATURES, wav], env=env, capture_output=True, text=True,
                           timeout=600)
    assert fresh.returncode == 0, f"a fresh process crashed on the shared cache:\n{fresh.stderr[-3000:]}"
    assert "ok" in fresh.stdout
    assert _cache_files(tmp_path / "numba") == compiled, "the pipeline compiled kernels the warm-up missed"


def test_numba_cache_is_the_projects_not_the_venvs():
    import ser_attacks
    assert os.environ["NUMBA_CACHE_DIR"] == str(ser_attacks.numba_cache_dir())
    import librosa
    assert not str(ser_attacks.numba_cache_dir()).startswith(str(Path(librosa.__file__).parent))


# ---------------------------------------------------------------------------- signals and crashes
ENDLESS = ["attack=bim", "attack.max_iter=100000000", "attack.n_samples=4", "attack.eps_step=0.001"]


def _start(tmp: Path, corpus: Path, *args: str, token: str, entry: tuple[str, ...] = ("-m", "ser_attacks")
           ) -> subprocess.Popen:
    env = subprocess_env(SER_TEST_TOKEN=token)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, *entry, *args, *tiny_overrides(tmp, corpus)],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs_raw(db: Path) -> list[tuple[str, str, str, str]]:
    """(run_type, status, pid, run_id) of every run, read-only with sqlite3 (no MLflow schema race)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute(
                "SELECT r.run_uuid, r.status, "
                "(SELECT value FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = 'run_type'), "
                "(SELECT value FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = 'pid') FROM runs r").fetchall()
    except sqlite3.Error:
        return []
    return [(t or "", s, p or "", rid) for rid, s, t, p in rows]


def _wait_for(proc: subprocess.Popen, db: Path, cond, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        rows = _runs_raw(db)
        if cond(rows):
            return rows
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _attacking(n: int):
    """``n`` attack runs RUNNING and the model trained: the jobs are inside the endless attack loop."""
    def cond(rows):
        return (sum(t == "attack" and s == "RUNNING" for t, s, _, _ in rows) >= n
                and any(t == "train" and s == "FINISHED" for t, s, _, _ in rows))
    return cond


def _survivors(token: str) -> list[int]:
    """Processes (other than this one) whose environment carries the test's token."""
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"SER_TEST_TOKEN={token}".encode() in env.read_bytes().split(b"\0"):
                pids.append(int(env.parent.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def _no_survivors(token: str, timeout: float = 20) -> list[int]:
    deadline = time.time() + timeout
    while _survivors(token) and time.time() < deadline:
        time.sleep(0.5)
    return _survivors(token)


def _all_runs(tmp: Path):
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    return client.search_runs([exp.experiment_id], max_results=1000)


JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find surviving processes")
def test_sigterm_stops_a_joblib_sweep_workers_and_all_its_runs(tmp_path, corpus_root, tiny_cache):
    seed_cache(tiny_cache, tmp_path)
    token = uuid.uuid4().hex
    proc = _start(tmp_path, corpus_root, "-m", *ENDLESS, "attack.eps=0.1,0.2,0.3", *JOBLIB, token=token)
    try:
        _wait_for(proc, tmp_path / "mlflow.db", _attacking(2), "both workers attacking")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert not _no_survivors(token), "joblib workers outlived the sweep"
    runs = _all_runs(tmp_path)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"], "no run may stay RUNNING"
    sweep = [r for r in runs if r.data.tags["run_type"] == "sweep"]
    assert len(sweep) == 1 and sweep[0].info.status == "KILLED"
    attacks = [r for r in runs if r.data.tags["run_type"] == "attack"]
    assert len(attacks) >= 2 and {r.info.status for r in attacks} == {"KILLED"}
    assert all("SIGTERM" in r.data.tags["error"] for r in attacks)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find surviving processes")
def test_a_worker_killed_by_a_signal_fails_its_run_with_the_signal_named(tmp_path, corpus_root, tiny_cache):
    seed_cache(tiny_cache, tmp_path)
    token = uuid.uuid4().hex
    proc = _start(tmp_path, corpus_root, "-m", *ENDLESS, "attack.eps=0.1,0.2", *JOBLIB, token=token)
    try:
        rows = _wait_for(proc, tmp_path / "mlflow.db", _attacking(2), "both workers attacking")
        victim = next(int(p) for t, s, p, _ in rows if t == "attack" and s == "RUNNING")
        os.kill(victim, signal.SIGSEGV)          # what the numba cache race did
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Segmentation fault" in err, err[-3000:]      # the sweep summary names it
    assert not _no_survivors(token)
    runs = {r.data.tags["pid"]: r for r in _all_runs(tmp_path) if r.data.tags["run_type"] == "attack"}
    crashed = runs.pop(str(victim))
    assert crashed.info.status == "FAILED" and "Segmentation fault" in crashed.data.tags["error"]
    assert {r.info.status for r in runs.values()} == {"KILLED"}, "the other job stopped with the sweep"
    sweep = [r for r in _all_runs(tmp_path) if r.data.tags["run_type"] == "sweep"]
    assert sweep[0].info.status == "FAILED"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find surviving processes")
def test_a_worker_killed_by_sigkill_fails_its_run_naming_the_signal_and_out_of_memory(tmp_path, corpus_root,
                                                                                      tiny_cache):
    """What the out-of-memory killer does (issue 30 item 5): before, the run became KILLED (like Ctrl-C) and
    the user saw only joblib's TerminatedWorkerError traceback."""
    seed_cache(tiny_cache, tmp_path)
    token = uuid.uuid4().hex
    proc = _start(tmp_path, corpus_root, "-m", *ENDLESS, "attack.eps=0.1,0.2", *JOBLIB, token=token)
    try:
        rows = _wait_for(proc, tmp_path / "mlflow.db", _attacking(2), "both workers attacking", timeout=900)
        victim = next(int(p) for t, s, p, _ in rows if t == "attack" and s == "RUNNING")
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert not _no_survivors(token)
    runs = {r.data.tags["pid"]: r for r in _all_runs(tmp_path) if r.data.tags["run_type"] == "attack"}
    crashed = runs.pop(str(victim))
    assert crashed.info.status == "FAILED", crashed.data.tags.get("error")
    assert "SIGKILL" in crashed.data.tags["error"] and "out-of-memory" in crashed.data.tags["error"]
    assert {r.info.status for r in runs.values()} == {"KILLED"}, "the other job stopped with the sweep"
    name = crashed.data.tags["mlflow.runName"]
    assert f"job '{name}' died (killed by SIGKILL, most likely out of memory)" in err, err[-3000:]
    sweep = [r for r in _all_runs(tmp_path) if r.data.tags["run_type"] == "sweep"]
    assert sweep[0].info.status == "FAILED" and name in sweep[0].data.tags["error"]


def test_a_job_that_died_alone_is_closed_by_the_next_command(tmp_path, corpus_root, tiny_cache):
    """A single (or sequential) job has no parent process to close its run: the next command started
    on this host does, naming the fatal error."""
    seed_cache(tiny_cache, tmp_path)
    token = uuid.uuid4().hex
    proc = _start(tmp_path, corpus_root, *ENDLESS, "attack.eps=0.1", token=token)
    try:
        rows = _wait_for(proc, tmp_path / "mlflow.db", _attacking(1), "the job attacking")
        os.kill(proc.pid, signal.SIGSEGV)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGSEGV
    dead = next(rid for t, s, _, rid in rows if t == "attack" and s == "RUNNING")
    assert MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(dead).info.status == "RUNNING"
    nxt = _start(tmp_path, corpus_root, "attack=fgsm", "attack.n_samples=4", token=token)
    out, err = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, err[-3000:]
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(dead)
    assert run.info.status == "FAILED" and "Segmentation fault" in run.data.tags["error"]


# The CLI with BIM's generate() behind a library that catches the interrupt and raises its own error (as a
# callback layer may): the error must still stop the sweep as an interrupt, not fail one job and go on.
WRAPPED = textwrap.dedent("""
    from pathlib import Path
    from art.attacks.evasion import BasicIterativeMethod
    original = BasicIterativeMethod.generate
    mark = Path("generating").resolve()          # in the test's folder: the attack loop has begun
    def generate(self, *args, **kwargs):
        mark.touch()
        try:
            return original(self, *args, **kwargs)
        except KeyboardInterrupt as exc:
            raise RuntimeError("a library's own error, raised while it was interrupted") from exc
    BasicIterativeMethod.generate = generate
    from ser_attacks.__main__ import cli
    cli()
""")


def test_an_interrupt_a_library_turned_into_its_own_error_still_stops_the_sweep(tmp_path, corpus_root, tiny_cache):
    seed_cache(tiny_cache, tmp_path)
    token = uuid.uuid4().hex
    proc = _start(tmp_path, corpus_root, "-m", *ENDLESS, "attack.eps=0.1,0.2", token=token, entry=("-c", WRAPPED))
    try:
        _wait_for(proc, tmp_path / "mlflow.db", lambda rows: (tmp_path / "generating").exists(),
                  "the first job inside the attack")
        time.sleep(1)                                  # well inside BIM's endless loop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)     # before: the job FAILED and the next (endless) one started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Interrupted by SIGTERM" in err
    runs = _all_runs(tmp_path)
    attacks = [r for r in runs if r.data.tags["run_type"] == "attack"]
    assert len(attacks) == 1, "no further job started after the interrupt"
    assert attacks[0].info.status == "KILLED" and "SIGTERM" in attacks[0].data.tags["error"]
    assert [r.info.status for r in runs if r.data.tags["run_type"] == "sweep"] == ["KILLED"]
