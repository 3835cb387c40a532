"""Model-selection tables from training runs (python -m ser_attacks.report.studies), on hand-made MLflow runs
with known metrics: mean ± sample std over seeds, one count per trained model, protocols never pooled, the
selection by validation accuracy (then loss) and test accuracy shown for the chosen model only."""
from __future__ import annotations

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ser_attacks.report import studies


def _run(client, exp, run_type, model, dataset, seed, test_acc, norm="original_std", split="recording",
         key=None, status="FINISHED", val_acc=None, val_losses=(1.2, 0.9, 1.0), parent=None, model_run_id=None):
    """A training run; ``val_losses`` is its per-epoch validation loss (the restored model's is the minimum)."""
    tags = {"run_type": run_type, "model": model, "dataset": dataset,
            "model_key": key or f"{model}-{dataset}-{seed}-{norm}-{split}",
            **({"mlflow.parentRunId": parent} if parent else {}),
            **({"model_run_id": model_run_id} if model_run_id else {})}
    run = client.create_run(exp, tags=tags)
    params = {"model.name": model, "normalization.name": norm, "seed": str(seed), "split.seed": str(seed),
              "split.mode": split, "dataset.name": dataset, "train.lr": "0.001", "features.n_jobs": str(seed)}
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in
                                                {"test_acc": test_acc, "epochs": 7,
                                                 "val_acc": test_acc - 0.1 if val_acc is None else val_acc,
                                                 "n_params": 43_652 if model == "m1" else 99}.items()]
                     + [Metric("val_loss", v, 0, step)
                        for step, v in enumerate(val_losses if run_type == "train" else ())]
                     + [Metric("train_seconds", 150.0, 0, 0)] * (run_type == "train"),
                     params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ser-attacks")
    for seed, acc in enumerate((0.5, 0.6, 0.7)):
        _run(client, exp, "train", "m1", "emodb", seed, acc)
    for seed, acc in enumerate((0.8, 0.9)):
        _run(client, exp, "train", "final", "emodb", seed, acc)
    _run(client, exp, "train", "m2", "emodb", 0, 0.95, val_acc=0.3)        # best on test, worst on validation
    _run(client, exp, "train", "m1", "emovo", 0, 0.4)
    # the same trained model again (a rerun of the sweep): counted once
    _run(client, exp, "train_reused", "m1", "emodb", 0, 0.5, key="m1-emodb-0-original_std-recording")
    _run(client, exp, "train", "m1", "emodb", 0, 0.99, split="paper")            # another protocol
    _run(client, exp, "train", "m1", "emodb", 1, 0.0, status="FAILED")           # never counted
    return uri


def test_mean_std_over_seeds_one_count_per_model_and_protocols_apart(store):
    df = studies.study_runs(store)
    assert len(df) == 8                      # 9 FINISHED runs, the train_reused one is the same model
    table, factor, keys = studies.study_table(df)
    assert factor == "model" and keys == ["split.mode"]     # features.n_jobs varies too, but is run-only
    cell = table.set_index(["model", "setting", "dataset"])
    m1 = cell.loc[("m1", "split.mode=recording", "emodb")]
    assert (m1.val_acc_mean, m1.val_acc_n, m1.val_acc_per_seed) == (pytest.approx(0.5), 3, "0.400,0.500,0.600")
    assert m1.val_acc_std == pytest.approx(0.1)
    assert m1.val_loss_mean == pytest.approx(0.9)          # the restored model's: the minimum per run
    final = cell.loc[("final", "split.mode=recording", "emodb")]
    assert final.val_acc_mean == pytest.approx(0.75) and final.val_acc_std == pytest.approx(0.0707107, abs=1e-6)
    assert cell.loc[("m1", "split.mode=paper", "emodb")].val_acc_n == 1


def test_selection_by_validation_accuracy_test_accuracy_of_the_chosen_model_only(store):
    table, factor, _ = studies.study_table(studies.study_runs(store))
    rec = table[(table.dataset == "emodb") & (table.setting == "split.mode=recording")]
    # m2 has the best TEST accuracy (0.95) but the worst validation accuracy: ranked last, its test hidden
    assert list(rec.model) == ["final", "m1", "m2"] and list(rec["rank"]) == [1, 2, 3]
    assert list(rec.chosen) == [True, False, False]
    assert rec.test_acc_mean.iloc[0] == pytest.approx(0.85) and rec.test_acc_n.iloc[0] == 2
    assert rec.test_acc_mean.iloc[1:].isna().all() and (rec.test_acc_per_seed.iloc[1:] == "").all()
    # other protocols and datasets are ranked on their own (a model chosen per dataset and setting)
    other = table[(table.dataset != "emodb") | (table.setting != "split.mode=recording")]
    assert list(other["rank"]) == [1, 1] and other.chosen.all()
    md = studies.markdown(table, factor)
    assert "| emodb | split.mode=recording | 1 | **final** | 99 | 0.750 ± 0.071 (n=2) | 0.900 ± 0.000 (n=2) | " \
           "0.700,0.800 | 7,7 | 2,2 | 0.850 ± 0.071 (n=2) |" in md
    assert "| emodb | split.mode=recording | 3 | m2 | 99 | 0.300 (n=1) | 0.900 (n=1) | 0.300 | 7 | 2 | — |" in md
    assert "0.950" not in md and "0.600 ± 0.100" not in md          # no test accuracy of unchosen models
    assert md.index("**final**") < md.index("| m1 | 43,652")        # ranked, not in name order


def test_validation_accuracy_ties_are_broken_by_validation_loss(tmp_path):
    """m1 and m2 tie on validation accuracy; m2's restored model has the lower validation loss. The sweep
    filter keeps only the rerun's train_reused runs: their loss comes from the training runs they point at."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ser-attacks")
    first, rerun = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    for model, losses in (("m1", (1.0, 0.8)), ("m2", (0.7, 0.9))):
        trained = _run(client, exp, "train", model, "emodb", 0, 0.6, val_acc=0.5, val_losses=losses,
                       parent=first)
        _run(client, exp, "train_reused", model, "emodb", 0, 0.6, val_acc=0.5,
             key=f"{model}-emodb-0-original_std-recording", parent=rerun, model_run_id=trained)
    table, _, _ = studies.study_table(studies.study_runs(uri, sweeps=[rerun]))
    assert list(table.model) == ["m2", "m1"] and list(table.val_loss_mean) == [pytest.approx(0.7), pytest.approx(0.8)]
    assert list(table.train_minutes) == ["2", "2"]             # the training runs' wall clock, 150 s


def test_normalization_is_the_factor_when_only_it_varies(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ser-attacks")
    for norm, accs in (("none", (0.3, 0.5)), ("original_std", (0.6, 0.8))):
        for seed, acc in enumerate(accs):
            _run(client, exp, "train", "m1", "emodb", seed, acc, norm=norm)
    table, factor, keys = studies.study_table(studies.study_runs(uri))
    assert factor == "normalization" and keys == []
    assert list(table.normalization) == ["original_std", "none"]
    assert list(table.val_acc_mean) == [pytest.approx(0.6), pytest.approx(0.3)]
    assert table.test_acc_mean[0] == pytest.approx(0.7) and table.test_acc_mean.isna()[1]


def test_cli_writes_table_csv_and_figure(store, tmp_path, capsys):
    out = tmp_path / "study"
    assert studies.main(["--tracking-uri", store, "--dataset", "emodb", "--tag", "params.split.mode=recording",
                         "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0.850 ± 0.071 (n=2)" in printed and "paper" not in printed and "emovo" not in printed
    assert {p.name for p in out.iterdir()} == {"study.md", "study.csv", "study.png", "curves.png"}
    import pandas as pd
    csv = pd.read_csv(out / "study.csv")
    assert list(csv.model) == ["final", "m1", "m2"] and csv.test_acc_mean.notna().tolist() == [True, False, False]
    assert "selection by validation accuracy" in (out / "study.md").read_text()
    assert studies.main(["--tracking-uri", store, "--dataset", "ravdess"]) == 2      # nothing matches
