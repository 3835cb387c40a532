"""End to end, as a user runs it: `python -m ser_attacks -m ...` in a subprocess, read back from MLflow.

One module-scoped setup runs the issue's sweep (attack=fgsm,bim x attack.eps=0.25,0.5) twice on a
tiny config: sequentially (basic launcher) and in parallel (joblib, 2 workers), each with a fresh
model cache, tracking DB and output folder.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import mlflow_runs, run_cli

pytestmark = pytest.mark.e2e   # sweeps of the CLI in subprocesses; `make test-fast` leaves them out

SWEEP = ["attack=fgsm,bim", "attack.eps=0.25,0.5", "attack.n_samples=8", "attack.max_iter=5"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, corpus_root):
    out = {}
    for launcher in ("basic", "joblib"):
        tmp = tmp_path_factory.mktemp(f"sweep_{launcher}")
        extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
        run_cli(tmp, corpus_root, "-m", *SWEEP, *extra)
        out[launcher] = tmp
    return out


def _children_metrics(tmp: Path) -> dict[str, dict[str, float]]:
    _, by_type = mlflow_runs(tmp)
    return {r.data.tags["mlflow.runName"]: r.data.metrics for r in by_type["attack"]}


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sweep_has_one_parent_four_children_one_training(sweeps, launcher):
    client, by_type = mlflow_runs(sweeps[launcher])
    assert len(by_type["sweep"]) == 1
    parent = by_type["sweep"][0]
    assert parent.info.status == "FINISHED"
    children = by_type["attack"]
    assert len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    assert len(by_type["train"]) == 1, "the model must be trained once and reused"
    train = by_type["train"][0]
    assert train.info.status == "FINISHED"
    assert {r.data.tags["model_run_id"] for r in children} == {train.info.run_id}
    assert {r.data.tags["attack"] for r in children} == {"fgsm", "bim"}
    assert sorted(r.data.params["attack.eps"] for r in children) == ["0.25", "0.25", "0.5", "0.5"]
    for r in children:
        m, t = r.data.metrics, r.data.tags
        for g in ("", "_female", "_male"):
            for k in ("clean_acc", "adv_acc", "perturbation", "n_samples"):
                assert f"{k}{g}" in m, f"{k}{g} missing"
        for k in ("success_rate", "attack_time_s", "time_per_sample_s"):
            assert k in m
        assert m["load_avg_1m"] >= 0          # the host's load beside the time it qualifies
        assert m["n_samples"] == 8 == m["n_samples_female"] + m["n_samples_male"]
        assert 0 < m["perturbation"] <= float(r.data.params["attack.eps"]) + 1e-6
        assert t["dataset"] == "synthetic" and t["language"] and t["git_commit"]
        assert t["sweep_id"] == parent.info.run_id
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.yaml", "spectrograms.png"} <= arts
        assert "model" not in arts, "attack runs reference the model, they do not copy it"
    models = {m.name: m for m in client.search_logged_models([train.info.experiment_id])
              if m.source_run_id == train.info.run_id}
    assert set(models) == {"model", "keras_model"}, "the trained model is logged as MLflow Models"
    uri = f"models:/ser-synthetic-{train.data.tags['model']}/1"
    assert {r.data.params["model_uri"] for r in children} == {uri}
    history = client.get_metric_history(train.info.run_id, "val_loss")
    assert len(history) >= 1 and "lr" in client.get_run(train.info.run_id).data.metrics


def test_parallel_sweep_gives_the_same_results(sweeps):
    basic, parallel = _children_metrics(sweeps["basic"]), _children_metrics(sweeps["joblib"])
    assert basic.keys() == parallel.keys()
    for name in basic:
        for k in ("clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male"):
            assert basic[name][k] == parallel[name][k], (name, k)
        assert basic[name]["perturbation"] == pytest.approx(parallel[name]["perturbation"], rel=1e-4)


def test_failing_job_is_failed_with_traceback_and_the_sweep_goes_on(sweeps, corpus_root):
    """A job that fails while it runs (here an attack that raises while attacking: no check of the config can
    see it; a bad value such as attack.eps=-1 stops the whole sweep before it starts, tests/test_cli.py)."""
    tmp = sweeps["basic"]     # reuses the trained model of the basic sweep
    failing = "tests.helpers.attacks.FailingAttack"
    proc = run_cli(tmp, corpus_root, "-m", "attack=fgsm", f"attack._target_=art.attacks.evasion.FastGradientMethod,"
                   f"{failing}", "attack.eps=0.3", "attack.n_samples=4", check=False)
    assert proc.returncode == 1
    assert "1 of 2 jobs failed" in proc.stderr + proc.stdout
    client, by_type = mlflow_runs(tmp)
    parent = max(by_type["sweep"], key=lambda r: r.info.start_time)
    assert parent.info.status == "FAILED"
    kids = [r for r in by_type["attack"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    status = {r.data.params["attack._target_"]: r for r in kids}
    assert status["art.attacks.evasion.FastGradientMethod"].info.status == "FINISHED"
    failed = status[failing]
    assert failed.info.status == "FAILED" and "failed while attacking" in failed.data.tags["error"]
    tb = client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp))
    assert "RuntimeError" in Path(tb).read_text()
    assert len(by_type["train"]) == 1


def test_missing_dataset_root_is_one_clear_error(tmp_path, corpus_root):
    proc = run_cli(tmp_path, corpus_root, "dataset=emodb", f"dataset.root={tmp_path / 'nope'}", check=False,
                   synthetic=False)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "wav/SSTTTEV.wav" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_summary_that_fails_still_closes_the_sweeps_run(tmp_path, monkeypatch):
    """The end-of-sweep summary (table, note, report) breaking, e.g. on code edited while a long sweep ran,
    must not leave the parent run RUNNING: it is closed by its jobs' outcome and the error is tagged."""
    from omegaconf import OmegaConf

    from ser_attacks import tracking as tr
    t = tr.Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "x", str(tmp_path / "mlruns"))
    cb = tr.MlflowSweepCallback()
    cb.tracking, cb.run_id = t, t.create_run("sweep", {"run_type": "sweep"})
    t.finish(t.create_run("job", {"run_type": "attack"}, cb.run_id))

    def broken(*args, **kwargs):
        raise ImportError("cannot import name 'x' (edited while the sweep ran)")
    monkeypatch.setattr(tr.callback, "summary_table", broken)
    cb.on_multirun_end(OmegaConf.create({"report": "auto", "mode": "attack", "tracking": {"experiment": "x"}}))
    run = t.client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert "edited while the sweep ran" in run.data.tags["summary_error"]
