"""Optuna search end to end on a tiny config: 3 trials, sqlite study, MLflow parent/child runs, best-params file."""
from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ser_attacks.tune import run_study
from tests.helpers import compose_config

pytestmark = pytest.mark.e2e   # an Optuna study training models; `make test-fast` leaves them out

TINY_SPACE = ["tune.space.model.lstm_units.low=4", "tune.space.model.lstm_units.high=16",
              "tune.space.train.batch_size.choices=[16,32]"]


def test_tiny_study_runs_resumes_and_writes_applicable_hparams(cfg_factory, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    overrides = ["mode=tune", "tune.study_name=tiny", f"tune.storage={storage}", "tune.n_trials=3",
                 f"tune.hparams_dir={tmp_path / 'hparams'}", "train.max_epochs=3", *TINY_SPACE]
    cfg = cfg_factory(*overrides)
    best = run_study(cfg)
    assert set(best) >= {"best_val_loss", "model.lstm_units", "model.dropout", "train.lr"}

    study = optuna.load_study(study_name="tiny", storage=storage)
    assert len(study.trials) == 3
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.COMPLETE in states
    for t in study.trials:                   # per-epoch reports of the validation loss (for the pruner)
        assert len(t.intermediate_values) >= 1
        assert 4 <= t.params["model.lstm_units"] <= 16

    client = MlflowClient(str(cfg.tracking.uri))
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("run_type") == "tune"]
    trials = [r for r in runs if r.data.tags.get("run_type") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    by_number = {int(r.data.tags["optuna_trial"]): r for r in trials}
    for t in study.trials:
        r = by_number[t.number]
        assert r.data.tags["trial_state"] == t.state.name
        assert r.data.params["model.lstm_units"] == str(t.params["model.lstm_units"])
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == len(t.intermediate_values)
    assert parent.data.metrics["best_val_loss"] == pytest.approx(study.best_value, rel=1e-6)   # logged at 7 digits
    assert "hparams/tiny.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id, "hparams")}

    # the best-params file composes as an override and sets exactly the best values
    path = tmp_path / "hparams" / "tiny.yaml"
    assert path.exists()
    applied = compose_config("model=tiny", "+hparams=tiny", f"hydra.searchpath=[file://{tmp_path}]")
    for key, value in study.best_params.items():
        group, leaf = key.split(".")
        assert applied[group][leaf] == value, key

    # resuming: the target is already reached, nothing new runs; a larger target adds only the missing trial
    run_study(cfg)
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 3
    run_study(cfg_factory(*overrides, "tune.n_trials=4"))
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 4
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'trial'", max_results=100)
    assert len(runs) == 4 and {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
