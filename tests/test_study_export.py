"""The study's per-segment export (report/export.py): a speaker-fold sweep → runs.csv + segments.csv.gz →
the report rebuilt from those files alone equals the report built from MLflow."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.helpers import CONF_DIR, ROOT, load_script
from tests.helpers.report import cli, sweep
from tests.helpers.sweeper import PAPER_GRID, list_sweeper_jobs

pytestmark = pytest.mark.e2e      # sweeps, exports and reports in subprocesses


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """6 speakers → 3 speaker folds; FGSM and noise on every fold, plus the leaky split=paper run;
    exported, then reported from MLflow and from the files."""
    from ser_attacks.data.synthetic import generate_corpus
    tmp = tmp_path_factory.mktemp("study")
    corpus = tmp / "corpus6"
    generate_corpus(corpus, layout="emodb", n_speakers=6, n_sentences=3, seed=0)
    # the audio is realized (the MLflow report's players), with the fewest rounds: its numbers are not the subject
    six = ("dataset.generate.n_speakers=6", "report=false", "input.refine=1", "input.griffin_lim_iter=2")
    cv = sweep(tmp, corpus, *six, "split=speaker_cv", "split.fold=0,1,2", "attack=fgsm,noise", "attack.eps=0.25")
    leaky = sweep(tmp, corpus, *six, "split=paper", "attack=fgsm", "attack.eps=0.25")
    export = tmp / "results" / "study" / "synthetic"
    printed = cli(tmp, "ser_attacks.report.export", "--sweep", cv, "--sweep", leaky, "--out", str(export)).stdout
    from_mlflow, from_files = tmp / "reports" / "mlflow", tmp / "reports" / "files"
    cli(tmp, "ser_attacks.report", "--sweep", cv, "--sweep", leaky, "--out", str(from_mlflow), "--no-log")
    (tmp / "mlflow.db").rename(tmp / "mlflow.db.away")     # the files alone: no tracking DB to fall back on
    cli(tmp, "ser_attacks.report", "--from-results", str(export), "--out", str(from_files))
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db.away'}")
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", max_results=1000)
    return {"tmp": tmp, "export": export, "mlflow": from_mlflow, "files": from_files, "runs": runs,
            "printed": printed, "client": client}


def test_segments_file_has_one_row_per_attacked_segment_and_run(study):
    runs, export = study["runs"], study["export"]
    assert len(runs) == 3 * 2 + 1
    seg = pd.read_csv(export / "segments.csv.gz", dtype={"speaker": str, "recording_id": str})
    with gzip.open(export / "segments.csv.gz", "rt") as f:
        header = f.readline().strip().split(",")
    for col in ("run_id", "dataset", "model", "split", "fold", "seed", "attack", "config", "attack.eps", "recording_id",
                "speaker", "utterance", "segment", "augment", "gender", "emotion", "label", "clean_pred", "adv_pred",
                "perturbation", "perturbation_db", "linf_db", "snr_db", "time_per_segment_s"):
        assert col in header, col
    assert not any("x_adv" in c or "logits" in c for c in header)       # no spectrograms, no logits
    assert len(seg) == sum(int(r.data.metrics["n_samples"]) for r in runs)
    by_run = {r.info.run_id: r for r in runs}
    assert set(seg.run_id) == set(by_run)
    for rid, g in seg.groupby("run_id"):
        m, p = by_run[rid].data.metrics, by_run[rid].data.params
        assert (g.clean_pred == g.label).sum() == m["n_correct_clean"]        # MLflow shows the shares to 4 decimals
        assert (g.adv_pred == g.label).sum() == m["n_correct_adv"]
        assert (g.adv_pred == g.label).mean() == pytest.approx(m["adv_acc"], abs=5e-5)
        assert g.perturbation.mean() == pytest.approx(m["perturbation"], rel=1e-4)
        assert g.perturbation_db.mean() == pytest.approx(m["perturbation_db"], rel=1e-4)
        assert g.time_per_segment_s.iloc[0] == pytest.approx(m["time_per_sample_s"], rel=1e-5)
        assert set(g.split) == {p["split.mode"]} and float(g["attack.eps"].iloc[0]) == float(p["attack.eps"])
        if p["split.mode"] == "speaker_cv":
            assert set(g.fold) == {int(p["split.fold"])}
    cv = seg[seg.split == "speaker_cv"]
    # every speaker tested in exactly one fold; gender belongs to the speaker
    assert cv.groupby("speaker").fold.nunique().max() == 1 and cv.speaker.nunique() == 6
    assert cv.groupby("speaker").gender.nunique().max() == 1
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["n_runs"] == len(runs) and manifest["n_segment_rows"] == len(seg)
    assert f"Exported {len(runs)} runs, {len(seg)} segment rows" in study["printed"]
    rc = pd.read_csv(export / "runs.csv")
    assert len(rc) == len(runs) and {"metrics.clean_acc", "metrics.adv_acc", "metrics.model_test_acc",
                                     "metrics.attack_time_s", "tags.device", "params.split.fold"} <= set(rc.columns)


def test_models_file_holds_the_training_run_of_every_attacked_model(study):
    """models.csv: one row per model the exported runs attacked, from its training run (fold, epochs, the epoch
    kept, time)."""
    models = pd.read_csv(study["export"] / "models.csv", dtype={"model_run_id": str, "fold": str})
    attacked = {r.data.tags["model_run_id"] for r in study["runs"]}
    assert len(attacked) == 3 + 1 and set(models.model_run_id) == attacked     # 3 speaker folds + the leaky model
    for _, row in models.iterrows():
        train = study["client"].get_run(row.model_run_id).data
        assert row.train_seconds == pytest.approx(train.metrics["train_seconds"], rel=1e-5)
        assert row.epochs == train.metrics["epochs"] and row.epoch_kept == train.metrics["epoch_kept"]
        exact = train.metrics["n_correct_test"] / train.metrics["n_segments_test"]   # models.csv: 6 digits
        assert row.test_acc == pytest.approx(exact, rel=1e-5)
        assert row.test_acc == pytest.approx(train.metrics["test_acc"], abs=5e-5)    # shown to 4 decimals
        assert row.split == train.params["split.mode"] and row.dataset == "synthetic"
        # trained in this store (False) or logged here from the model cache after training (True): pieces.py
        # reads when training began from it
        assert row.from_cache == (train.tags.get("from_cache") == "true")
        assert row.resumed_after_epoch != row.resumed_after_epoch       # NaN: no training here was killed
        # the machine that trained it (ser_attacks.machine), as its training run's tag says
        assert row.device == train.tags["device"] and row.device.startswith(("CPU: ", "GPU: "))
    assert sorted(models[models.split == "speaker_cv"].fold) == ["0", "1", "2"]
    assert json.loads((study["export"] / "manifest.json").read_text())["n_models"] == 4


def test_report_from_files_equals_report_from_mlflow(study):
    a, b = study["mlflow"], study["files"]
    names = sorted(p.name for p in (a / "tables").glob("*.csv"))
    assert names == sorted(p.name for p in (b / "tables").glob("*.csv"))
    assert {"table03_clean_accuracy.csv", "configurations.csv", "checklist.csv", "runs.csv"} <= set(names)
    assert any(n.startswith("protocol") for n in names)       # the leaky run gives the protocol gap
    for n in names:
        # check_like: runs.csv's metric columns come in mlflow.search_runs' (unfixed) order
        pd.testing.assert_frame_equal(pd.read_csv(a / "tables" / n), pd.read_csv(b / "tables" / n), obj=n,
                                      check_like=True)
    # the markdown tables (clean accuracy with speaker intervals, statistics, checklist) are the same text, up to
    # the audio players: the audio files are MLflow artifacts, not part of the export
    md = [(d / "report.md").read_text() for d in (a, b)]
    assert "### Listen" in md[0] and "### Listen" not in md[1]
    tables = [[ln for ln in m.split("### Listen")[0].splitlines() if ln.startswith("|")] for m in md]
    assert len(tables[0]) > 40 and tables[0] == tables[1]
    assert {p.name for p in (b / "figures").glob("*.png")} == {
        p.name for p in (a / "figures").glob("*.png")
        if not p.name.startswith(("spectrograms_", "audio_spectrograms_"))}      # logged figures: MLflow artifacts
    assert "results:" in (b / "report.md").read_text()


def test_merge_adds_a_piece_and_replaces_a_rerun_configuration(study, tmp_path):
    """--merge (a study exported piece by piece, each from a fresh MLflow store): exporting the leaky sweep again
    into a copy of the export replaces its run (same config_hash), keeps the 6 speaker-fold runs, and the report
    from the merged files equals the one from the original files."""
    import shutil
    merged = tmp_path / "merged"
    shutil.copytree(study["export"], merged)
    leaky = next(r for r in study["runs"] if r.data.params.get("split.mode") == "paper")
    parent = leaky.data.tags["mlflow.parentRunId"]
    uri = f"sqlite:///{study['tmp'] / 'mlflow.db.away'}"
    printed = cli(tmp_path, "ser_attacks.report.export", "--tracking-uri", uri, "--sweep", parent, "--out", str(merged),
                  "--merge").stdout
    assert "Merged: 1 runs exported; of the earlier runs 6 kept, 1 exported again, 0 replaced" in printed
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["n_runs"] == 7 and len(manifest["pieces"]) == 2 and manifest["pieces"][1]["sweeps"] == [parent]
    runs = pd.read_csv(merged / "runs.csv")
    assert sorted(runs.run_id) == sorted(r.info.run_id for r in study["runs"])
    seg_a = pd.read_csv(study["export"] / "segments.csv.gz").sort_values(["run_id", "test_index"], ignore_index=True)
    seg_b = pd.read_csv(merged / "segments.csv.gz").sort_values(["run_id", "test_index"], ignore_index=True)
    pd.testing.assert_frame_equal(seg_a, seg_b[seg_a.columns])
    assert len(pd.read_csv(merged / "models.csv")) == 4
    cli(tmp_path, "ser_attacks.report", "--from-results", str(merged), "--out", str(tmp_path / "rep"))
    for n in ("configurations.csv", "table03_clean_accuracy.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rep" / "tables" / n),
                                      pd.read_csv(study["files"] / "tables" / n), obj=n)


def _tables_module():
    """recipes/study/tables.py (a script, not a package module)."""
    return load_script("recipes/study/tables.py", "study_tables")


def test_readme_tables_come_from_the_report_csvs(study, tmp_path):
    """recipes/study/tables.py: the README's per-corpus table holds the report's numbers (speaker_cv best
    configuration, its CI and success rate, the leaky run beside it), not hand-typed ones."""
    mod = _tables_module()
    out = tmp_path / "tables.md"
    mod.main(["--report", str(study["files"]), "--results", str(study["export"].parent), "--out", str(out)])
    text = out.read_text()
    best = pd.read_csv(study["files"] / "tables" / "table05_best_accuracy.csv").set_index("setting")
    side = pd.read_csv(study["files"] / "tables" / "paper_side_by_side.csv")
    cv, leaky = best.loc["synthetic (split=speaker_cv)"], side[side.setting == "synthetic (split=paper)"]
    cv = cv[cv.attack == "fgsm"].iloc[0]
    row = next(ln for ln in text.splitlines() if ln.startswith("| fgsm |"))
    lk = leaky[leaky.attack == "fgsm"].acc_ours.iloc[0]
    from ser_attacks.report.format import fci  # the report's format: an exact bound where degenerate
    assert f"| {fci(cv.adv_acc, cv.adv_acc_lo, cv.adv_acc_hi)} / {lk:.3f} / – |" in row
    assert row.split("|")[6].strip() == f"{cv.success_rate:.3f}"
    assert "## synthetic" in text and "| synthetic |" in text
    # the wall-time table sums the speaker_cv runs' own attack time (every fold, every configuration)
    cv_runs = [r for r in study["runs"] if r.data.params.get("split.mode") == "speaker_cv"]
    fgsm_time = sum(r.data.metrics["attack_time_s"] for r in cv_runs if r.data.tags["attack"] == "fgsm")
    time_row = next(ln for ln in text.splitlines() if ln.startswith("| synthetic | fgsm |"))
    assert time_row.split("|")[3].strip() == "3" and time_row.split("|")[4].strip() == f"{fgsm_time:,.0f}"
    # the training table: one row per speaker fold from models.csv, its time summed per corpus
    models = pd.read_csv(study["export"] / "models.csv")
    cv_models = models[models.split == "speaker_cv"]
    fold0 = next(ln for ln in text.splitlines() if ln.startswith("| synthetic | speaker_cv | 0 |"))
    assert fold0.split("|")[6].strip() == f"{cv_models[cv_models.fold == 0].train_seconds.iloc[0]:,.0f}"  # after seed
    total = next(ln for ln in text.splitlines() if ln.startswith("| synthetic | speaker_cv | **all 3** |"))
    assert f"**{cv_models.train_seconds.sum():,.0f}**" in total


def test_tables_mark_best_configurations_that_cover_fewer_folds():
    """A study still running: a best configuration from fewer folds than the others says so in tables.md."""
    mod = _tables_module()
    b = pd.DataFrame({"attack": ["fgsm", "jsma", "pixel"], "folds": ["0,1,2", "0", "1,2"],
                      "n_segments": [30, 10, 20]}).set_index("attack")
    assert mod.partial_folds(b) == {"jsma": " (fold 0 of 3 only: 10 segments)",
                                    "pixel": " (folds 1,2 of 3 only: 20 segments)"}
    assert mod.partial_folds(b.loc[["fgsm"]]) == {}


def test_changed_files_change_the_report(study, tmp_path):
    """The rebuilt report reads the segments (not a copy of MLflow's numbers): flipping predictions moves it."""
    import shutil
    src = study["export"]
    dst = tmp_path / "edited"
    shutil.copytree(src, dst)
    seg = pd.read_csv(dst / "segments.csv.gz", dtype={"speaker": str, "recording_id": str, "utterance": str,
                                                       "augment": str, "emotion": str, "gender": str},
                      keep_default_na=False)
    seg["adv_pred"] = seg["label"]                        # every attack fails
    seg.to_csv(dst / "segments.csv.gz", index=False)
    cli(tmp_path, "ser_attacks.report", "--from-results", str(dst), "--out", str(tmp_path / "rep"))
    cf = pd.read_csv(tmp_path / "rep" / "tables" / "configurations.csv")
    orig = pd.read_csv(study["files"] / "tables" / "configurations.csv")
    assert (cf.adv_acc_hi.to_numpy() >= orig.adv_acc_hi.to_numpy()).all()
    assert not np.allclose(cf.adv_acc_lo.to_numpy(), orig.adv_acc_lo.to_numpy())


def test_bad_results_folder_is_a_clear_error(study, tmp_path):
    proc = cli(tmp_path, "ser_attacks.report", "--from-results", str(tmp_path / "nothing"), "--out",
               str(tmp_path / "rep"), check=False)
    assert proc.returncode != 0 and "holds no runs.csv" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(tmp_path, "ser_attacks.report.export", "--experiment", "nope", "--out", str(tmp_path / "x"),
               check=False)
    assert proc.returncode != 0 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "segments.csv.gz").exists()


@pytest.mark.parametrize("dataset, folds, v1_folds", [("emodb", 5, 5), ("emovo", 6, 3), ("ravdess", 6, 6)])
def test_study_experiment_is_the_paper_grid_plus_references_on_every_speaker_fold(dataset, folds, v1_folds):
    """experiment=study: speaker_cv, final model with the corpus's tuned values, augment=paper, the paper's 26
    configurations + noise at the 5 FGSM eps + AutoAttack = 32 per fold; `make study` sweeps the folds of
    ser_attacks.split.STUDY_FOLDS (EMOVO leave-one-speaker-out) x 3 seeds, `make study-v1` those of
    DEFAULT_FOLDS; study_leaky: split=paper, one configuration per attack."""
    import subprocess
    import sys

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=study", f"dataset={dataset}", f"+hparams={dataset}_paper"],
                      return_hydra_config=True)
        leaky = compose("config", overrides=["experiment=study_leaky", f"dataset={dataset}",
                                                    f"+hparams={dataset}_paper"],
                        return_hydra_config=True)
        leaky_v1 = compose("config", overrides=["experiment=study_leaky_v1", f"dataset={dataset}"],
                           return_hydra_config=True)
    tuned = OmegaConf.load(Path(CONF_DIR) / "hparams" / f"{dataset}_paper.yaml")
    assert cfg.split.mode == "speaker_cv" and cfg.model.name == "final" and cfg.augment.name == "paper"
    assert cfg.train.lr == tuned.train.lr and cfg.train.batch_size == tuned.train.batch_size
    assert cfg.model.dropout == tuned.model.dropout and cfg.model.lstm_dropout == tuned.model.lstm_dropout
    grid = list(cfg.hydra.sweeper.grid)
    # the committed plan's tiers (recipes/study_v2/plan.yaml): the paper grid, its expensive attacks on 8 segments
    # per fold and seed stratified by speaker, FGSM and the references + FMN on the whole test split
    sub = " attack.n_samples=8 attack.sample_strata=speaker"
    assert sorted(g.replace(sub, "") for g in grid if g.endswith(sub) or g.startswith("attack=fgsm")) == \
        sorted(PAPER_GRID)
    assert [g for g in grid if "n_samples" in g and not g.endswith(sub)] == []
    assert "attack=fmn attack.norm=inf,2" in grid and not any(g.startswith(("attack=fgsm", "attack=fmn", "attack=noise",
                                                                            "attack=autoattack")) and sub in g
                                                              for g in grid)
    make = subprocess.run(["make", "-n", "study", f"DATASET={dataset}", f"PY={sys.executable}", "VENV=/nonexistent"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    words = make.stdout.split()
    fold_arg = next(w for w in words if w.startswith("split.fold="))
    assert fold_arg == "split.fold=" + ",".join(map(str, range(folds)))
    assert f"split.n_folds={folds}" in words and "seed=42,43,44" in words
    # EMOVO's study normalizes per speaker (recipes/speaker_independent/emovo_protocol); its models, their table
    # and the leaky comparison alike; the other corpora keep the default
    norm = ["normalization=speaker_std"] if dataset == "emovo" else []
    assert [w for w in words if w.startswith("normalization=")] == norm
    assert "tracking.save_x_adv=false" in words          # ~10 MB per run of x_adv: ~30 GB over the study
    assert "EXPORT_MERGE=--merge" in words              # a piece adds to the committed export, never replaces it
    piece = subprocess.run(["make", "-n", "study", f"DATASET={dataset}", "FOLDS=1", "SEEDS=43", f"PY={sys.executable}",
                            "VENV=/nonexistent"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "split.fold=1" in piece and "seed=43" in piece and f"split.n_folds={folds}" in piece
    sm = subprocess.run(["make", "-n", "study-models", f"DATASET={dataset}", f"PY={sys.executable}",
                         "VENV=/nonexistent"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    exp = "study-models-speaker-std" if dataset == "emovo" else "study-models"
    assert [w for w in sm if w.startswith("normalization=")] == norm and f"tracking.experiment={exp}" in sm
    assert sm[sm.index("--experiment") + 1] == exp
    if (ROOT / "recipes" / "speaker_independent" / dataset / "models.csv").exists():    # adds to the committed table
        assert sm[sm.index("--from") + 1] == f"recipes/speaker_independent/{dataset}"
    else:
        assert "--from" not in sm
    v1 = subprocess.run(["make", "-n", "study-v1", f"DATASET={dataset}", f"PY={sys.executable}", "VENV=/nonexistent"],
                        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "experiment=study_v1" in v1 and "split.fold=" + ",".join(map(str, range(v1_folds))) in v1
    jobs = list_sweeper_jobs(grid, [f"dataset={dataset}", fold_arg, "seed=42,43,44"])
    n_configs = 37               # the paper grid (26) + AutoAttack + 5 uniform and 3 sparse noise budgets + FMN x 2
    assert len(jobs) == 3 * n_configs * folds and len({tuple(sorted(j)) for j in jobs}) == 3 * n_configs * folds
    attacks = [next(o for o in j if o.startswith("attack=")) for j in jobs]
    assert attacks.count("attack=noise") == 3 * 8 * folds and attacks.count("attack=autoattack") == 3 * folds
    assert leaky.split.mode == "paper" and len(list_sweeper_jobs(list(leaky.hydra.sweeper.grid), [])) == 8
    # v2's leaky comparison: the study's training config and MLflow experiment (the protocol-gap pairs need
    # both), its seeds from make; v1's keeps v1's (val_loss, any epoch) in v1's experiment
    assert leaky.train == cfg.train and leaky.tracking.experiment == cfg.tracking.experiment == "study-v2"
    assert leaky_v1.train.monitor == "val_loss" and leaky_v1.tracking.experiment == "study"
    # v1's leaky grid: the strongest configuration per attack on study v1's 10 segments
    assert sorted(g.split()[0] for g in leaky_v1.hydra.sweeper.grid) == sorted(g.split()[0] for g in PAPER_GRID)
    # v2's: every job is one of the study's jobs and composes to the study's params but split.* (the report's
    # protocol_key), so the protocol-gap table pairs all eight (it had paired FGSM alone: v1's grid ran the
    # expensive attacks on the whole leaky test split while the study ran them on 8 segments per fold and seed)
    from ser_attacks.identity import FOLD_KEYS, SEED_KEYS, is_run_only, logged_params
    study_jobs = {tuple(sorted(j)) for j in list_sweeper_jobs(grid, [])}
    leaky_jobs = list_sweeper_jobs(list(leaky.hydra.sweeper.grid), [])
    assert {tuple(sorted(j)) for j in leaky_jobs} <= study_jobs

    def protocol_key(experiment, job):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            c = compose("config", overrides=[f"experiment={experiment}", f"dataset={dataset}",
                                             f"+hparams={dataset}_paper", *job])
        return {k: v for k, v in logged_params(OmegaConf.to_container(c, resolve=True)).items()
                if not k.startswith("split.") and k not in SEED_KEYS + FOLD_KEYS and not is_run_only(k)}
    for job in leaky_jobs:
        GlobalHydra.instance().clear()
        a = protocol_key("study_leaky", job)
        GlobalHydra.instance().clear()
        b = protocol_key("study", job)
        assert a == b, (job, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})
    lk = subprocess.run(["make", "-n", "study-leaky", f"DATASET={dataset}", f"PY={sys.executable}",
                         "VENV=/nonexistent"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "experiment=study_leaky" in lk and "seed=42,43,44" in lk and "STUDY_EXPERIMENT=study-v2" in lk
    assert [w for w in lk if w.startswith("normalization=")] == norm


def test_study_v2_findings_target_builds_the_analysis_from_the_committed_files():
    """`make study-v2-findings`: the report (with the plan), tables.md and findings.md (with v1's verdicts to
    compare) from results/study_v2/*/ alone, every corpus folder that holds a runs.csv."""
    import subprocess
    import sys
    runs = sorted((ROOT / "results" / "study_v2").glob("*/runs.csv"))
    corpora = " ".join(f"results/study_v2/{p.parent.name}" for p in runs)
    out = subprocess.run(["make", "-n", "study-v2-findings", f"PY={sys.executable}", "VENV=/nonexistent"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    report, rm, tables, findings = [ln for ln in out.replace("\\\n", " ").splitlines() if "recipes/study" in ln]
    assert f"--from-results {corpora} --plan recipes/study_v2/plan.yaml --out recipes/study_v2/report" in report
    assert "report.html" in rm and "tables/runs.csv" in rm
    assert "--out recipes/study_v2/tables.md" in tables
    assert f"findings.py {corpora} --plan recipes/study_v2/plan.yaml" in findings
    assert "--compare recipes/study/verdicts_v1.csv" in findings and "--out recipes/study_v2/findings.md" in findings
