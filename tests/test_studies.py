"""Model-selection tables from training runs (python -m ser_attacks.report.studies), on hand-made MLflow runs
with known metrics: mean ± sample std over seeds, one count per trained model, protocols never pooled."""
from __future__ import annotations

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ser_attacks.report import studies


def _run(client, exp, run_type, model, dataset, seed, test_acc, norm="original_std", split="recording",
         key=None, status="FINISHED"):
    tags = {"run_type": run_type, "model": model, "dataset": dataset,
            "model_key": key or f"{model}-{dataset}-{seed}-{norm}-{split}"}
    run = client.create_run(exp, tags=tags)
    params = {"model.name": model, "normalization.name": norm, "seed": str(seed), "split.seed": str(seed),
              "split.mode": split, "dataset.name": dataset, "train.lr": "0.001", "features.n_jobs": str(seed)}
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in
                                                {"test_acc": test_acc, "val_acc": test_acc - 0.1, "epochs": 7,
                                                 "n_params": 43_652 if model == "m1" else 99}.items()],
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
    _run(client, exp, "train", "m1", "emovo", 0, 0.4)
    # the same trained model again (a rerun of the sweep): counted once
    _run(client, exp, "train_reused", "m1", "emodb", 0, 0.5, key="m1-emodb-0-original_std-recording")
    _run(client, exp, "train", "m1", "emodb", 0, 0.99, split="paper")            # another protocol
    _run(client, exp, "train", "m1", "emodb", 1, 0.0, status="FAILED")           # never counted
    return uri


def test_mean_std_over_seeds_one_count_per_model_and_protocols_apart(store):
    df = studies.study_runs(store)
    assert len(df) == 7                      # 8 FINISHED runs, the train_reused one is the same model
    table, factor, keys = studies.study_table(df)
    assert factor == "model" and keys == ["split.mode"]     # features.n_jobs varies too, but is run-only
    cell = table.set_index(["model", "setting", "dataset"])
    m1 = cell.loc[("m1", "split.mode=recording", "emodb")]
    assert (m1.test_acc_mean, m1.test_acc_n, m1.test_acc_per_seed) == (pytest.approx(0.6), 3, "0.500,0.600,0.700")
    assert m1.test_acc_std == pytest.approx(0.1) and m1.val_acc_mean == pytest.approx(0.5)
    final = cell.loc[("final", "split.mode=recording", "emodb")]
    assert final.test_acc_mean == pytest.approx(0.85) and final.test_acc_std == pytest.approx(0.0707107, abs=1e-6)
    assert cell.loc[("m1", "split.mode=paper", "emodb")].test_acc_n == 1
    assert list(table.model) == ["m1", "m1", "m1", "final"]          # m1 rows first, final last
    md = studies.markdown(table, factor)
    assert "0.600 ± 0.100 (n=3)" in md and "0.850 ± 0.071 (n=2)" in md and "0.400 (n=1)" in md
    assert "| m1 | split.mode=recording | 43,652 |" in md


def test_normalization_is_the_factor_when_only_it_varies(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ser-attacks")
    for norm, accs in (("none", (0.3, 0.5)), ("original_std", (0.6, 0.8))):
        for seed, acc in enumerate(accs):
            _run(client, exp, "train", "m1", "emodb", seed, acc, norm=norm)
    table, factor, keys = studies.study_table(studies.study_runs(uri))
    assert factor == "normalization" and keys == []
    assert dict(zip(table.normalization, table.test_acc_mean)) == {"none": pytest.approx(0.4),
                                                                   "original_std": pytest.approx(0.7)}


def test_cli_writes_table_csv_and_figure(store, tmp_path, capsys):
    out = tmp_path / "study"
    assert studies.main(["--tracking-uri", store, "--dataset", "emodb", "--tag", "params.split.mode=recording",
                         "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0.600 ± 0.100 (n=3)" in printed and "paper" not in printed and "emovo" not in printed
    assert {p.name for p in out.iterdir()} == {"study.md", "study.csv", "study.png"}
    assert studies.main(["--tracking-uri", store, "--dataset", "ravdess"]) == 2      # nothing matches
