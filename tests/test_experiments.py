"""Model-selection experiments as a user runs them: a tiny architecture_study sweep via the CLI, read back
from MLflow (one sweep run, one training child run per job with per-epoch metrics and test accuracy)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ser_attacks.metrics import exact_fractions
from ser_attacks.report import studies
from tests.helpers import CONF_DIR, compose_config, mlflow_runs, run_cli

# the paper's M1-M7 (Tables 11-17; m2, m3: the layer arithmetic, see tests/test_models.py)
ZOO = {"m1": 43_652, "m2": 63_683, "m3": 63_755, "m4": 64_900, "m5": 106_763, "m6": 133_316, "m7": 184_068}


@pytest.mark.e2e
def test_tiny_architecture_study_logs_one_training_run_per_job(tmp_path, corpus_root):
    """The whole study (m1-m7, one seed) on the tiny embedded corpus, which keeps the paper's full
    (261, 128, 1) input, so every model (m7's four conv blocks included) is built exactly as shipped."""
    proc = run_cli(tmp_path, corpus_root, "-m", "experiment=architecture_study", f"model={','.join(ZOO)}",
                   "seed=0", "dataset=synthetic", "train.max_epochs=1")   # the tests' defaults say model=tiny
    assert "Sweep finished: 7 runs, 0 failed" in proc.stdout
    client, by_type = mlflow_runs(tmp_path)
    assert "attack" not in by_type, "mode=train must not run attacks"
    (sweep,) = by_type["sweep"]
    assert sweep.info.status == "FINISHED"
    trains = by_type["train"]
    assert len(trains) == 7
    assert {r.data.tags["mlflow.parentRunId"] for r in trains} == {sweep.info.run_id}
    counts = {r.data.tags["model"]: r.data.metrics["n_params"] for r in trains}
    assert counts == ZOO
    for r in trains:
        assert r.info.status == "FINISHED"
        assert 0.0 <= r.data.metrics["test_acc"] <= 1.0 and 0.0 <= r.data.metrics["val_acc"] <= 1.0
        assert r.data.params["seed"] == "0"
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == r.data.metrics["epochs"]
        assert {m.name for m in client.search_logged_models([r.info.experiment_id])
                if m.source_run_id == r.info.run_id} == {"model", "keras_model"}

    # the study table (python -m ser_attacks.report.studies) reads exactly these runs' metrics
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    table, factor, _ = studies.study_table(studies.study_runs(uri, sweeps=[sweep.info.run_id]))
    assert factor == "model" and set(table.model) == set(ZOO) and list(table["rank"]) == list(range(1, 8))
    by_model = {r.data.tags["model"]: exact_fractions(r.data.metrics) for r in trains}  # k / n
    assert dict(zip(table.model, table.val_acc_mean)) == {m: v["val_acc"] for m, v in by_model.items()}
    assert list(table.val_acc_mean) == sorted(table.val_acc_mean, reverse=True)     # ranked by validation
    chosen = table.model[0]
    assert table.chosen[0] and table.test_acc_mean[0] == by_model[chosen]["test_acc"]
    assert table.test_acc_mean[1:].isna().all()                 # no test accuracy for the others
    assert dict(zip(table.model, table.n_params)) == counts
    out = tmp_path / "study"
    assert studies.main(["--tracking-uri", uri, "--sweep", sweep.info.run_id, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"study.md", "study.csv", "study.png", "curves.png"}

    # re-running reuses the cached models: no retraining, one train_reused child run per job
    run_cli(tmp_path, corpus_root, "-m", "experiment=architecture_study", "model=m1,m2", "seed=0",
            "dataset=synthetic", "train.max_epochs=1")
    _, by_type = mlflow_runs(tmp_path)
    assert len(by_type["train"]) == 7 and len(by_type["train_reused"]) == 2
    assert {r.data.tags["model_run_id"] for r in by_type["train_reused"]} == {
        r.info.run_id for r in trains if r.data.tags["model"] in ("m1", "m2")}
    # over both sweeps, each trained model is still counted once
    table, _, _ = studies.study_table(studies.study_runs(uri))
    assert list(table.val_acc_n) == [1] * 7


def test_study_experiments_compose_to_the_paper_grids():
    arch = compose_config("experiment=architecture_study", return_hydra_config=True)
    norm = compose_config("experiment=normalization_study", return_hydra_config=True)
    assert arch.mode == norm.mode == "train"
    assert arch.split.seed == arch.seed and norm.split.seed == norm.seed     # a seed = a split + an initialisation
    assert arch.hydra.sweeper.params.seed == norm.hydra.sweeper.params.seed == "0,1,2"
    assert norm.model.name == "m1"
    shipped = {p.stem for p in (Path(CONF_DIR) / "model").glob("m*.yaml")}
    assert arch.hydra.sweeper.params.model.split(",") == sorted(shipped) == [f"m{i}" for i in range(1, 8)]
    options = norm.hydra.sweeper.params.normalization.split(",")
    assert len(options) == len(set(options)) == 8
    for option in options:
        assert compose_config(f"normalization={option}").normalization.name == option


def test_train_budgets_share_the_paper_protocol():
    default, long = (compose_config(f"train={t}").train for t in ("default", "long"))
    assert (default.max_epochs, long.max_epochs) == (50, 100)
    assert ({k: v for k, v in long.items() if k != "max_epochs"}
            == {k: v for k, v in default.items() if k != "max_epochs"})
    assert (default.early_stopping_patience, default.reduce_lr_patience, default.reduce_lr_factor) == (10, 6, 0.1)
