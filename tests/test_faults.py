"""Faults that used to lose results (issue 30): damaged cache entries, temporary leftovers, a new tracking
database opened by several processes at once, orphaned logged models, code in the artifact store, a cached
model under a tracking store that does not know it, a worker killed by SIGKILL.

Each test here failed on the code before the fix (see docs/tracking-and-resume.md, "Faults tried").
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ser_attacks.data.audio import FrontEnd
from ser_attacks.data.corpora import load_corpus
from ser_attacks.data.features import load_or_extract
from tests.helpers import ROOT, subprocess_env

FE = FrontEnd()
CHECKSUMS = "checksums.json"   # ser_attacks.cache.CHECKSUMS


# ---------------------------------------------------------------------------- feature cache (items 1, 3, 6)
def _overwrite_same_size(x: Path) -> None:
    size = x.stat().st_size
    data = bytearray(x.read_bytes())
    header = 128                                    # .npy header; overwrite values, keep the size
    data[header:] = np.random.default_rng(0).bytes(size - header)   # any size, not only whole float32s
    x.write_bytes(bytes(data))
    assert x.stat().st_size == size


def _truncate(x: Path) -> None:
    os.truncate(x, x.stat().st_size // 2)


def _empty(x: Path) -> None:
    os.truncate(x, 0)


@pytest.fixture(scope="module")
def small_table(corpus_root):
    return load_corpus("emodb", corpus_root).table.iloc[:4]


@pytest.mark.parametrize("damage", [_overwrite_same_size, _truncate, _empty], ids=["overwritten", "truncated", "empty"])
def test_a_damaged_feature_entry_is_reported_and_rebuilt_never_used(tmp_path, small_table, damage, caplog):
    cold = load_or_extract(small_table, FE, tmp_path, progress=False)
    x = cold.cache_path / "X.npy"
    clean_X = np.array(cold.X)
    del cold
    damage(x)
    with caplog.at_level(logging.WARNING, logger="ser_attacks.cache"):
        again = load_or_extract(small_table, FE, tmp_path, progress=False)
    assert not again.from_cache, "a damaged entry must be rebuilt, not used"
    assert np.array_equal(np.asarray(again.X), clean_X)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(x) in warnings[0], warnings
    assert load_or_extract(small_table, FE, tmp_path, progress=False).from_cache     # the rebuilt entry is intact


def test_temporary_leftovers_are_removed_and_never_used(tmp_path, small_table):
    """A producer killed mid-write leaves ``.<key>.tmp-*`` (here: a half-written X.npy and no entry); the next
    producer of that key removes it and builds the entry afresh."""
    cold = load_or_extract(small_table, FE, tmp_path, progress=False)
    entry, clean_X = cold.cache_path, np.array(cold.X)
    del cold
    leftover = entry.parent / f".{entry.name}.tmp-killed"
    entry.rename(leftover)
    _truncate(leftover / "X.npy")
    again = load_or_extract(small_table, FE, tmp_path, progress=False)
    assert not again.from_cache and np.array_equal(np.asarray(again.X), clean_X)
    assert not list(entry.parent.glob(".*.tmp-*")), "the temporary leftover was removed"


def test_an_entry_made_before_checksums_is_verified_by_loading_and_then_checksummed(tmp_path, small_table, caplog):
    cold = load_or_extract(small_table, FE, tmp_path, progress=False)
    entry = cold.cache_path
    (entry / CHECKSUMS).unlink()
    assert load_or_extract(small_table, FE, tmp_path, progress=False).from_cache
    assert json.loads((entry / CHECKSUMS).read_text())["X.npy"][0] == (entry / "X.npy").stat().st_size
    (entry / CHECKSUMS).unlink()                    # an old entry that is also truncated: rebuilt
    _truncate(entry / "X.npy")
    with caplog.at_level(logging.WARNING, logger="ser_attacks.cache"):
        assert not load_or_extract(small_table, FE, tmp_path, progress=False).from_cache
    assert any(str(entry / "X.npy") in r.getMessage() for r in caplog.records)


def test_clean_command_lists_and_removes_leftovers_and_damaged_entries(tmp_path, small_table):
    from ser_attacks.cache import clean
    cache = tmp_path / "cache"
    entry = load_or_extract(small_table, FE, cache, progress=False).cache_path
    (entry.parent / f".{entry.name}.tmp-abc").mkdir()
    (cache / "models" / ".0123.tmp-xyz").mkdir(parents=True)
    _empty(entry / "segments.csv")
    found = clean(cache, dry_run=True)
    assert len(found) == 3 and entry.is_dir()
    out = subprocess.run([sys.executable, "-m", "ser_attacks.cache", "clean", "--cache", str(cache)], cwd=ROOT,
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "segments.csv: empty" in out.stdout and "3 item(s) removed" in out.stdout
    assert not entry.exists() and not list(cache.rglob(".*.tmp-*"))


# ---------------------------------------------------------------------------- model cache (items 1, 3)
@pytest.mark.e2e
@pytest.mark.parametrize("damage", [_truncate, _overwrite_same_size], ids=["truncated", "overwritten"])
def test_a_damaged_model_entry_is_retrained_not_used(cfg_factory, tmp_path, tiny_cache, damage, caplog):
    from ser_attacks.data import prepare
    from ser_attacks.train import get_or_train
    from tests.helpers import seed_cache
    seed_cache(tiny_cache, tmp_path)                 # the entry to damage: the session's trained tiny model
    cfg = cfg_factory()
    data = prepare(cfg, progress=False)
    first = get_or_train(cfg, data)
    assert not first.trained_now
    model_file = first.path / "model.keras"
    damage(model_file)
    with caplog.at_level(logging.WARNING, logger="ser_attacks.cache"):
        again = get_or_train(cfg, data)
    assert again.trained_now, "a damaged model must be retrained"
    assert any(str(model_file) in r.getMessage() for r in caplog.records)
    assert not get_or_train(cfg, data).trained_now


# ---------------------------------------------------------------------------- tracking DB (item 2)
OPEN_DBS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ser_attacks.tracking import Tracking
    tmp, me, dbs = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    (tmp / f"ready-{me}").touch()
    while not (tmp / "go").exists():
        time.sleep(0.01)
    for db in dbs:                       # every process opens the same new DBs in the same order, at once
        Tracking(f"sqlite:///{tmp / db}", "ser-attacks", str(tmp / "mlruns")).client.search_runs(["0"])
    print("ok")
""")


@pytest.mark.e2e
def test_several_processes_creating_a_new_tracking_db_at_once_all_succeed(tmp_path):
    """Without the lock, 2 set-ups at once crashed in 6 of 6 trials (MLflow's schema migration races:
    ``table _alembic_tmp_experiments already exists``). Here 3 processes open 3 new DBs together
    (on the old code: 3 of 4 processes failed on 4 DBs)."""
    n_procs, dbs = 3, [f"db{i}.sqlite" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_DBS, str(tmp_path), str(i), *dbs], cwd=ROOT,
                              env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n_procs)]
    try:
        import time
        deadline = time.time() + 300
        while len(list(tmp_path.glob("ready-*"))) < n_procs and time.time() < deadline:
            assert all(p.poll() is None for p in procs), "a process ended before the start"
            time.sleep(0.05)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [err[-1500:] for p, (out, err) in zip(procs, results) if p.returncode != 0 or "ok" not in out]
    assert not failed, f"{len(failed)} of {n_procs} processes failed on a new DB:\n" + "\n---\n".join(failed)


# ---------------------------------------------------------------------------- logged models (items 6, 7)
def _tiny_model_dir(folder: Path):
    """A random-weight Keras model, a fitted normalizer and ser_model.json, as a model cache entry holds them."""
    import keras

    from ser_attacks.normalization import Normalizer
    from ser_attacks.train import write_model_config
    fe = FrontEnd()
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((fe.n_frames, fe.n_mels, 1)), keras.layers.AveragePooling2D((29, 32)),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    X = np.random.default_rng(0).standard_normal((6, fe.n_frames, fe.n_mels)).astype(np.float32) * 10 - 40
    norm = Normalizer.from_config().fit(X)
    model.save(folder / "model.keras")
    norm.save(folder / "normalizer.npz")
    meta = {"key": "k" * 16, "classes": ["angry", "happy", "sad"], "input_shape": [fe.n_frames, fe.n_mels, 1],
            "dataset": "synthetic", "model": "probe", "seed": 0}
    write_model_config(folder, fe, meta)
    return model, norm.transform(X[:1]), meta, X


LOAD_AND_PREDICT = textwrap.dedent("""
    import sys, numpy as np, mlflow
    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model(sys.argv[2])
    out = model.predict(np.load(sys.argv[3]))
    print("predicted", list(out.emotion))
""")


@pytest.mark.e2e
def test_loading_a_registered_model_runs_no_code_from_the_artifact_store(tmp_path):
    """Whoever can write to the artifact store plants a line in the logged model's code (and, where there is
    none, a planted copy of the package beside it): loading and predicting in a fresh process must not run it."""
    from mlflow.utils.file_utils import local_file_uri_to_path

    from ser_attacks.paths import PACKAGE_DIR
    from ser_attacks.tracking import Tracking
    keras_model, example, meta, X = _tiny_model_dir(tmp_path / "entry")
    t = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "ser-attacks", str(tmp_path / "mlruns"))
    run_id = t.create_run("train probe", {"run_type": "train"})
    info = t.log_trained_model(run_id, keras_model, tmp_path / "entry", example, meta)
    t.finish(run_id)
    art = Path(local_file_uri_to_path(t.client.get_logged_model(info["logged_model_id"]).artifact_location))
    marker = tmp_path / "PLANTED_CODE_RAN"
    plant = f"\nopen({str(marker)!r}, 'w').write('ran')\n"
    if not (art / "code").exists():              # no code logged: the attacker adds a planted package copy
        import shutil
        shutil.copytree(PACKAGE_DIR, art / "code" / "ser_attacks")
    planted = [p for p in art.rglob("*.py")]
    for p in planted:
        p.write_text(p.read_text() + plant)
    assert planted
    np.save(tmp_path / "X.npy", X[:2])
    out = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, t.uri, info["model_uri"], str(tmp_path / "X.npy")],
                         cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "predicted" in out.stdout, out.stderr[-3000:]
    assert not marker.exists(), "loading the model ran code planted in the artifact store"


def _tracking(tmp_path):
    from ser_attacks.tracking import Tracking
    return Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "ser-attacks", str(tmp_path / "mlruns"))


def _half_logged_model(t, run_id: str) -> tuple[str, Path]:
    """A logged model as a kill or a full disk during logging leaves it: PENDING, a half-written file."""
    from mlflow.utils.file_utils import local_file_uri_to_path
    model_id = t._logged_model("model", run_id, {})
    art = Path(local_file_uri_to_path(t.client.get_logged_model(model_id).artifact_location))
    art.mkdir(parents=True, exist_ok=True)
    (art / "model.keras").write_bytes(b"PK\x03\x04 half")
    return model_id, art


def test_a_training_run_that_fails_while_logging_leaves_no_logged_model(tmp_path):
    """Disk full during model logging (OSError 28): the run is FAILED, its half-written logged model is gone
    from the tracking store and the artifact store."""
    t = _tracking(tmp_path)
    run_id = t.create_run("train probe", {"run_type": "train"})
    model_id, art = _half_logged_model(t, run_id)
    t.end_on_exception(run_id, OSError(28, "No space left on device"))
    assert t.client.get_run(run_id).info.status == "FAILED"
    assert not [m for m in t.client.search_logged_models([t.experiment_id]) if m.source_run_id == run_id]
    assert not art.exists() or not any(art.iterdir()), "half-written model files were left in the artifact store"


def test_a_training_run_killed_while_logging_is_closed_with_no_logged_model(tmp_path):
    """SIGKILL during model logging: the next command closes the dead run and discards its logged model."""
    from ser_attacks import lifecycle
    t = _tracking(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = t.create_run("train probe", {"run_type": "train", "pid": str(dead.pid)})
    model_id, art = _half_logged_model(t, run_id)
    lifecycle.close_dead_runs(t)
    assert t.client.get_run(run_id).info.status == "FAILED"
    assert not [m for m in t.client.search_logged_models([t.experiment_id]) if m.source_run_id == run_id]
    assert not art.exists() or not any(art.iterdir())


def test_a_sweep_whose_worker_was_sigkilled_names_the_job_signal_and_cause(tmp_path, capsys):
    """The sweep's main process handles joblib's TerminatedWorkerError (Hydra turned it into exit 1): the
    dead job's run is FAILED naming SIGKILL and the out-of-memory killer, the summary names the job; the job
    stopped with the sweep is KILLED."""
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    from ser_attacks import lifecycle
    t = _tracking(tmp_path)
    parent = t.create_run("sweep", {"run_type": "sweep"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    victim = t.create_run("bim eps=0.1", {"run_type": "attack", "pid": str(dead.pid), "opened_in_sweep": parent})
    alive = t.create_run("bim eps=0.2", {"run_type": "attack", "pid": str(os.getpid()), "opened_in_sweep": parent})
    lifecycle.sweep_opened(t, parent)
    lifecycle.worker_died(dead.pid, -9)          # what loky's broken pool shows before it stops the others
    try:
        try:
            raise TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated. "
                                        "The exit codes of the workers are {SIGKILL(-9)}")
        except TerminatedWorkerError:
            try:
                raise SystemExit(1)                       # what Hydra's error report ends with
            except SystemExit:
                lifecycle.close_open_sweep("FAILED", "the sweep stopped with an error (see above)")
    finally:
        lifecycle.sweep_closed()
    err = capsys.readouterr().err
    v = t.client.get_run(victim)
    assert v.info.status == "FAILED" and "SIGKILL" in v.data.tags["error"] and "out-of-memory" in v.data.tags["error"]
    assert t.client.get_run(alive).info.status == "KILLED"
    assert "job 'bim eps=0.1' died (killed by SIGKILL, most likely out of memory)" in err
    assert t.client.get_run(parent).info.status == "FAILED"


# ---------------------------------------------------------------------------- one cache, two stores (item 8)
@pytest.mark.e2e
def test_a_cached_model_used_under_a_new_tracking_store_is_logged_there(cfg_factory, tmp_path):
    """The same cache, a second database (the move to a shared server): the reused model gets its training run
    (marked as coming from the cache), metrics and registered version there, so model_run_id exists in it."""
    from ser_attacks.data import prepare
    from ser_attacks.tracking import Tracking
    from ser_attacks.train import get_or_train
    cfg_a = cfg_factory()
    first = get_or_train(cfg_a, prepare(cfg_a, progress=False), Tracking.from_cfg(cfg_a))
    assert first.trained_now and first.run_id
    cfg_b = cfg_factory(f"tracking.uri=sqlite:///{tmp_path / 'other.db'}")
    b = Tracking.from_cfg(cfg_b)
    data = prepare(cfg_b, progress=False)
    reused = get_or_train(cfg_b, data, b)
    assert not reused.trained_now and reused.run_id != first.run_id
    run = b.client.get_run(reused.run_id)                       # exists in the second store
    assert run.info.status == "FINISHED" and run.data.tags["from_cache"] == "true"
    assert run.data.tags["cached_train_run_id"] == first.run_id and run.data.tags["model_key"] == first.key
    assert run.data.metrics["val_acc"] == pytest.approx(first.meta["val_acc"], abs=5e-5)     # 4 decimals
    mv = b.model_version(cfg_b.dataset.name, cfg_b.model.name, first.key)
    assert mv is not None and mv.run_id == reused.run_id
    again = get_or_train(cfg_b, data, b)                         # known now: nothing logged twice
    assert again.run_id == reused.run_id
    assert len(b.client.search_runs([b.experiment_id], "tags.run_type = 'train'")) == 1
