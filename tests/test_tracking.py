"""The tracking package (issue 29): what the MLflow UI shows without help — closed runs name no missing file,
metric values rounded as shown, run descriptions, the sweep parent's name, swept params and summary metrics."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from ser_attacks import lifecycle
from ser_attacks.tracking import Tracking
from ser_attacks.tracking.notes import attack_note, sweep_title, train_note
from ser_attacks.tracking.sweep import summary_metrics, swept_params


@pytest.fixture
def tracking(tmp_path):
    return Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "x", str(tmp_path / "mlruns"))


def test_a_closed_run_has_no_fault_log_tag_pointing_to_a_missing_file(tracking, tmp_path):
    """A job's fault log exists only while it runs (an empty one is removed at its end); the run kept a tag
    naming it. Now every way of closing a run removes the tag."""
    with lifecycle.fault_report(tmp_path / "job" / "fault-1.log") as path:
        ok = tracking.create_run("ok", {"run_type": "attack"})
        failed = tracking.create_run("bad", {"run_type": "attack"})
        assert tracking.get_run(ok).data.tags["fault_log"] == str(path)       # while running: where a crash goes
        tracking.finish(ok)
        tracking.end_on_exception(failed, ValueError("boom"))
    assert not path.exists()
    for rid in (ok, failed):
        tags = tracking.get_run(rid).data.tags
        assert "fault_log" not in tags or os.path.exists(tags["fault_log"]), tags.get("fault_log")


def test_a_dead_jobs_fault_report_is_logged_as_an_artifact(tracking, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    fault = tmp_path / "fault-9.log"
    fault.write_text("Fatal Python error: Segmentation fault\n\nThread 0x1 (most recent call first):\n")
    rid = tracking.create_run("job", {"run_type": "attack", "pid": dead.stdout.strip(), "fault_log": str(fault)})
    lifecycle.close_dead_runs(tracking)
    run = tracking.get_run(rid)
    assert run.info.status == "FAILED" and "Segmentation fault" in run.data.tags["error"]
    assert "fault_log" not in run.data.tags
    assert fault.name in {a.path for a in tracking.client.list_artifacts(rid)}


def test_metrics_are_logged_as_shown_float32_noise_rounded_integers_exact(tracking):
    rid = tracking.create_run("r", {"run_type": "attack"})
    tracking.log_metrics(rid, {"acc": np.float32(0.3), "n_params": 3960389, "tiny": 1.234567891e-5,
                               "nan": float("nan")})
    m = tracking.get_run(rid).data.metrics
    assert m["acc"] == 0.3 and m["n_params"] == 3960389 and m["tiny"] == 1.234568e-5 and np.isnan(m["nan"])
    assert float(np.float32(0.3)) != 0.3                       # what was stored before: 0.30000001192092896


def test_run_descriptions_say_what_the_run_is_with_rounded_numbers():
    cfg = OmegaConf.create({"attack": {"name": "fgsm", "eps": 0.05, "max_iter": None}, "dataset": {"name": "emodb"},
                            "model": {"name": "final"}, "seed": 42, "split": {"mode": "speaker_cv", "fold": 2}})
    note = attack_note(cfg, {"clean_acc": 0.61904761904, "adv_acc": float(np.float32(0.3)), "adv_acc_female": 0.25,
                             "adv_acc_male": 0.35, "success_rate": 0.5384615, "perturbation": 0.00880123456,
                             "snr_db": 21.456, "n_samples": 40.0, "attack_time_s": 6.7623})
    assert note.startswith("**Attack fgsm** (eps=0.05) on 40 test segments of **emodb** (model `final`, seed 42, "
                           "speaker_cv split, fold 2).")
    assert "clean 0.619 → adversarial **0.300** (female 0.250, male 0.350)" in note and "0.538" in note
    assert "0.0088" in note and "21.5 dB" in note and "0.30000001" not in note
    note = train_note({"model": "final", "dataset": "emodb", "split": "speaker_cv", "fold": 0, "seed": 42,
                       "val_acc": 0.5, "test_acc": 0.5178571, "epochs": 30, "epoch_kept": 20, "train_seconds": 225.4},
                      {"model_uri": "models:/ser-emodb-final/3"})
    assert "**Training of model `final`** on **emodb** (speaker_cv split, fold 0), seed 42" in note
    assert "test accuracy 0.518" in note and "kept epoch 20" in note and "models:/ser-emodb-final/3" in note


def _sweep_config(task, params=None, grid=None):
    sweeper = {"params": params} if params else {}
    if grid:
        sweeper["grid"] = grid
    return OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": sweeper}})


def test_the_sweep_parent_is_named_by_what_it_sweeps_and_logs_the_swept_params():
    cfg = _sweep_config(["attack=fgsm,bim", "attack.eps=0.05,0.2", "attack.n_samples=8", "+x=range(1,3)"])
    swept = swept_params(cfg)
    assert swept == {"attack": "fgsm,bim", "attack.eps": "0.05,0.2", "x": "range(1,3)"}
    assert sweep_title(list(cfg.hydra.overrides.task), swept, "2026-12-05 21:00") == (
        "sweep attack=fgsm,bim attack.eps=0.05,0.2 x=range(1,3) attack.n_samples=8 · 2026-12-05 21:00")
    assert sweep_title(["attack=fgsm", "dataset.root=/data/emodb", "tracking.uri=sqlite:///x.db"], {}, "t") == (
        "sweep attack=fgsm · t")                                  # paths and URIs left out
    demo = _sweep_config(["experiment=demo"], params={"attack": "fgsm,bim", "attack.eps": "0.01,0.05"})
    assert sweep_title(["experiment=demo"], swept_params(demo), "t") == (
        "sweep attack=fgsm,bim attack.eps=0.01,0.05 experiment=demo · t")
    grid = _sweep_config(["experiment=study_budget"], grid=["attack=fgsm attack.eps=1.25", "attack=cw_l2"])
    assert swept_params(grid) == {"grid": "attack=fgsm attack.eps=1.25 | attack=cw_l2"}
    assert sweep_title(["experiment=study_budget"], swept_params(grid), "t") == (
        "sweep grid of 2 override sets experiment=study_budget · t")


def test_the_sweep_parent_carries_summary_metrics():
    table = pd.DataFrame([
        {"run_type": "attack", "status": "FINISHED", "attack": "fgsm", "clean_acc": 0.6, "adv_acc": 0.3,
         "success_rate": 0.5},
        {"run_type": "attack", "status": "FINISHED", "attack": "fgsm", "clean_acc": 0.6, "adv_acc": 0.1,
         "success_rate": 0.8},
        {"run_type": "attack", "status": "SKIPPED (finished earlier)", "attack": "bim", "clean_acc": 0.6,
         "adv_acc": 0.0, "success_rate": 1.0},
        {"run_type": "attack", "status": "FAILED", "attack": "jsma", "clean_acc": np.nan, "adv_acc": np.nan,
         "success_rate": np.nan},
        {"run_type": "train", "status": "FINISHED", "attack": "", "val_acc": 0.55, "test_acc": 0.6}])
    m = summary_metrics(table)
    assert m == pytest.approx({"clean_acc": 0.6, "best_adv_acc_fgsm": 0.1, "best_success_rate_fgsm": 0.8,
                               "best_adv_acc_bim": 0.0, "best_success_rate_bim": 1.0, "mean_val_acc": 0.55,
                               "mean_test_acc": 0.6})


def test_the_registered_version_declares_its_feature_input_accuracy_and_defense(tmp_path):
    """Issue 29: the registered pyfunc's signature listed 0 inputs and its version no accuracy. Now its input is
    the features form (log-Mel dB, float32 (-1, frames, n_mels)), predict takes exactly that, the raw model still
    takes audio, and the version carries its accuracies and the defense that shaped it (none here)."""
    import mlflow
    from mlflow.models import get_model_info

    from ser_attacks.data.audio import FrontEnd
    from tests.test_faults import _tiny_model_dir
    keras_model, example, meta, X = _tiny_model_dir(tmp_path / "entry")
    meta = {**meta, "val_acc": 0.7142857142857143, "test_acc": 0.5, "split": "random"}
    t = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "ser-attacks", str(tmp_path / "mlruns"))
    run_id = t.create_run("train probe", {"run_type": "train"})
    info = t.log_trained_model(run_id, keras_model, tmp_path / "entry", example, meta)
    t.finish(run_id)
    fe = FrontEnd()
    mlflow.set_tracking_uri(t.uri)
    sig = get_model_info(info["model_uri"]).signature
    (spec,) = sig.inputs.inputs
    assert spec.type == np.dtype(np.float32) and spec.shape == (-1, fe.n_frames, fe.n_mels)
    assert sig.outputs.input_names()[:2] == ["emotion", "angry"]
    model = mlflow.pyfunc.load_model(info["model_uri"])
    out = model.predict(X[:2].astype(np.float32))
    assert list(out.emotion) and len(out) == 2 and out[["angry", "happy", "sad"]].sum(axis=1).to_numpy() == \
        pytest.approx(1.0)
    with pytest.raises(Exception):                      # the schema is enforced: a single 2-D matrix is refused
        model.predict(np.zeros((fe.n_frames, fe.n_mels + 1), np.float32))
    wav = np.sin(np.arange(8000) / 8000 * 2 * np.pi * 220).astype(np.float32)
    raw = model.get_raw_model().predict({"audio": wav, "sample_rate": 8000})   # audio through the raw model
    assert len(raw) == 1 and raw.n_segments[0] == 1
    mv = t.client.get_model_version(info["registered_model"], info["model_version"])
    assert mv.tags["val_acc"] == "0.7143" and mv.tags["test_acc"] == "0.5000" and mv.tags["defense"] == "none"
    assert "validation accuracy 0.714, test accuracy 0.500; defense: none" in mv.description
    assert "get_raw_model()" in mv.description


def test_shares_of_segments_are_shown_to_4_decimals_and_the_report_recomputes_them_exactly(tracking):
    """Issue 29: the UI showed 0.04761905 (1/21). Accuracies and rates are now logged to 4 decimals with their exact
    counts beside them, other measurements to 7 significant digits; the report reads the counts, not the rounded
    shares."""
    import mlflow

    from ser_attacks.metrics import attack_metrics, exact_fractions
    from ser_attacks.report.collect import tidy
    rng = np.random.default_rng(0)
    y = np.arange(21) % 3
    clean = np.eye(3)[y] * 5                                   # all 21 right on the originals
    adv = np.eye(3)[(y + 1) % 3] * 5
    adv[[0, 20]] = clean[[0, 20]]                              # the attack flips 19 of 21: adv_acc = 2/21
    x = rng.normal(size=(21, 4, 4)).astype(np.float32)
    genders = np.array(["female"] * 10 + ["male"] * 11)
    m = attack_metrics(y, clean, adv, x, x + 0.01, genders)
    assert (m["n_correct_adv"], m["n_samples"], m["n_flipped"], m["n_correct_clean"]) == (2, 21, 19, 21)
    assert exact_fractions(m)["adv_acc"] == m["adv_acc"] == 2 / 21
    assert exact_fractions(m)["success_rate_male"] == m["success_rate_male"] == 10 / 11
    rid = tracking.create_run("r", {"run_type": "attack"})
    tracking.log_metrics(rid, {**m, "perturbation": 0.0088009123, "best_adv_acc_fgsm": 1 / 21, "val_acc": 5 / 7,
                               "attack_time_s": 29.93931, "train_seconds": 61.23456})
    got = tracking.get_run(rid).data.metrics
    assert got["adv_acc"] == 0.0952 and got["success_rate_male"] == 0.9091 and got["success_rate"] == 0.9048
    assert got["best_adv_acc_fgsm"] == 0.0476 and got["val_acc"] == 0.7143
    assert got["attack_time_s"] == 29.94 and got["train_seconds"] == 61.23
    assert got["perturbation"] == 0.008800912 and got["n_correct_adv"] == 2 and got["n_flipped_male"] == 10
    raw = mlflow.search_runs(experiment_ids=[tracking.experiment_id], output_format="pandas")
    row = tidy(raw).iloc[0]
    assert row.adv_acc == 2 / 21 and row.success_rate_male == 10 / 11 and row.clean_acc == 1.0
    assert row.perturbation == 0.008800912


def test_the_experiment_carries_a_saved_view_with_metric_columns_and_a_description(tmp_path):
    """Issue 29: a browser without saved UI state showed no metric column. MLflow cannot be told default columns,
    but it lists and opens saved views stored as experiment tags (``?viewStateShareKey=``): the experiment gets
    one, with the summary metrics first, widened by each sweep's best_adv_acc_<attack>, and a description."""
    import json

    from ser_attacks.browser import ui_url
    from ser_attacks.tracking.views import SUMMARY_VIEW, VIEW_TAG
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracking(uri, "ser-attacks", str(tmp_path / "mlruns"))
    tags = t.client.get_experiment(t.experiment_id).tags
    view = json.loads(tags[VIEW_TAG + SUMMARY_VIEW])             # the envelope the UI's "Save view" writes
    assert view["name"] == "Summary: accuracies per run" and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert {"metrics.`clean_acc`", "metrics.`adv_acc`", "metrics.`adv_acc_female`", "metrics.`val_acc`",
            "attributes.`Models`"} <= set(state["selectedColumns"])
    assert state["columnOrder"][:2] == ["attributes.`Run Name`", "metrics.`clean_acc`"]
    assert "Views" in tags["mlflow.note.content"] and SUMMARY_VIEW in tags["mlflow.note.content"]
    t.save_summary_view(["best_adv_acc_fgsm"])                   # a sweep ended: its summary columns come first
    Tracking(uri, "ser-attacks", str(tmp_path / "mlruns")).save_summary_view(["best_adv_acc_bim"])
    state = json.loads(json.loads(t.client.get_experiment(t.experiment_id).tags[VIEW_TAG + SUMMARY_VIEW])["state"])
    assert state["columnOrder"][1:4] == ["metrics.`clean_acc`", "metrics.`best_adv_acc_bim`",
                                         "metrics.`best_adv_acc_fgsm`"]
    assert ui_url("http://h:5000", t.experiment_id).endswith(f"&viewStateShareKey={SUMMARY_VIEW}")
