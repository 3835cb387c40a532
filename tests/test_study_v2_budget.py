"""recipes/study_v2/budget.py: measured times of one fold → the committed plan's projected wall time."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, load_script

PLAN = ROOT / "recipes" / "study_v2" / "plan.yaml"


def _budget():
    return load_script("recipes/study_v2/budget.py", "study_v2_budget")


def _runs(tmp_path, configs, seconds, drop=()):
    rows, t = [], pd.Timestamp("2026-12-06T00:00:00Z")
    for name, attack, kv, tier in configs:
        if name in drop:
            continue
        over = f"experiment=study dataset=emodb attack={attack} " + " ".join(f"attack.{k}={v}" for k, v in kv.items())
        if tier == "subsample":
            over += " attack.n_samples=8 attack.sample_strata=speaker"
        s = seconds(attack)
        rows.append({"run_id": name, "tags.attack": attack, "tags.overrides": over, "start_time": t.isoformat(),
                     "metrics.attack_time_s": s * 8, "metrics.time_per_sample_s": s})
        t += pd.Timedelta(seconds=s * 8 + 20)          # 20 s of overhead per job
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)


def test_projection_follows_the_plan_tiers_folds_and_seeds(tmp_path):
    b = _budget()
    study = yaml.safe_load(PLAN.read_text())["study"]
    configs = b.plan_configs(study)
    assert len(configs) == 37 and sum(c[3] == "subsample" for c in configs) == 21
    _runs(tmp_path, configs, lambda a: 2.0 if a == "jsma" else 1.0)
    per, overhead = b.measured(tmp_path / "runs.csv", configs)
    assert overhead == pytest.approx((20.0, 0.0)) and len(per) == 37
    proj = b.project(per, overhead, study, {"emodb": 600.0, "emovo": 700.0, "ravdess": 1200.0}).set_index("corpus")
    seg = b.CORPORA["emodb"]["test_segments"]
    per_model = 16 * 1.0 * seg + (17 * 1.0 + 4 * 2.0) * 8          # whole tier on the split, subsample on 8
    assert proj.loc["emodb", "models"] == 15 and proj.loc["ravdess", "models"] == 18
    assert proj.loc["emodb", "attack_hours"] == round((15 * per_model + 15 * 37 * 20) / 3600, 1)
    assert proj.loc["emodb", "train_hours"] == round(15 * 600 / 3600, 1)


def test_noise_cells_runs_are_not_read_as_the_default_eps(tmp_path):
    b = _budget()
    configs = b.plan_configs(yaml.safe_load(PLAN.read_text())["study"])
    assert b.run_config("attack=noise attack.cells=5 progress=False", configs) == "noise cells=5"
    assert b.run_config("attack=noise attack.eps=0.5", configs) == "noise eps=0.5"
    sub = "attack.n_samples=8 attack.sample_strata=speaker"
    assert b.run_config(f"attack=bim attack.eps=1 {sub}", configs) == "bim eps=1"
    assert b.run_config("attack=bim attack.eps=0.05", configs) is None          # not in the plan: left out


def test_a_configuration_not_measured_is_an_error_not_a_zero(tmp_path, capsys):
    b = _budget()
    configs = b.plan_configs(yaml.safe_load(PLAN.read_text())["study"])
    _runs(tmp_path, configs, lambda a: 1.0, drop={"jsma theta=1", "cw_l2"})
    pd.DataFrame({"dataset": ["emodb"], "train_seconds": [600.0]}).to_csv(tmp_path / "models.csv", index=False)
    with pytest.raises(SystemExit, match="2 configuration.s. of the plan not measured.*cw_l2"):
        b.main(["--runs", str(tmp_path), "--models", str(tmp_path / "models.csv"), "--machine", "x",
                "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()                 # nothing half-written


def test_training_time_scaled_from_emodb_where_a_corpus_has_none(tmp_path):
    b = _budget()
    pd.DataFrame({"dataset": ["emodb", "emodb"], "train_seconds": [500.0, 700.0]}).to_csv(tmp_path / "m.csv",
                                                                                         index=False)
    t = b.training_seconds([tmp_path / "m.csv"], ["emodb", "ravdess"])
    assert t["emodb"] == 600.0
    assert t["ravdess"] == pytest.approx(600.0 * b.CORPORA["ravdess"]["train_segments"]
                                         / b.CORPORA["emodb"]["train_segments"])


def test_missing_inputs_are_one_line_errors_before_any_work(tmp_path):
    b = _budget()
    with pytest.raises(SystemExit, match="--runs: .*runs.csv: no such file"):
        b.main(["--runs", str(tmp_path), "--machine", "x", "--out", str(tmp_path / "out")])
    pd.DataFrame({"run_id": []}).to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(SystemExit, match="no `study:` design"):
        b.main(["--runs", str(tmp_path), "--plan", str(ROOT / "recipes" / "study" / "analysis_plan.yaml"),
                "--machine", "x", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="--models: .*: no such file"):
        b.main(["--runs", str(tmp_path), "--models", str(tmp_path / "m.csv"), "--machine", "x",
                "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_overhead_grows_with_the_segments_a_job_attacks():
    """The resynthesis scales with the attacked segments: 8-segment jobs 5 s, 83-segment jobs 20 s of overhead
    → 3.4 s fixed + 0.2 s per segment; a 160-segment split (RAVDESS) pays 35.4 s per whole-split job."""
    b = _budget()
    jobs = pd.DataFrame({"tier": ["subsample"] * 3 + ["whole"] * 3, "overhead": [4.0, 5.0, 6.0, 19.0, 20.0, 21.0],
                         "segments": [8] * 3 + [83] * 3})
    fixed, slope = b.overhead_model(jobs)
    assert slope == pytest.approx(0.2) and fixed == pytest.approx(3.4)
    assert b.overhead_model(jobs.assign(segments=8)) == pytest.approx((12.5, 0.0))    # one size: a constant


def test_pieces_time_each_fold_and_seed_from_the_files(tmp_path, capsys):
    """recipes/study_v2/pieces.py: a piece's wall time runs from the start of its training (the training run is
    logged when it ends) to the end of its last attack; --since leaves out a piece resumed across sessions."""
    mod = load_script("recipes/study_v2/pieces.py", "study_v2_pieces")
    t0 = pd.Timestamp("2026-12-06T20:00:00Z")
    pd.DataFrame({"model_run_id": ["m1", "m0"], "dataset": "emodb", "fold": [2, 0], "seed": [42, 42],
                  "epochs": [24, 20], "train_seconds": [600.0, 500.0],
                  "start_time": [(t0 + pd.Timedelta(seconds=600)).isoformat(), "2026-12-05T08:00:00+00:00"]}
                 ).to_csv(tmp_path / "models.csv", index=False)
    starts = [t0 + pd.Timedelta(seconds=s) for s in (610, 700, 900)]
    pd.DataFrame({"start_time": [s.isoformat() for s in starts] + ["2026-12-06T09:00:00+00:00"],
                  "tags.model_run_id": ["m1", "m1", "m1", "m0"], "metrics.attack_time_s": [50.0, 100.0, 300.0, 9.0],
                  "metrics.n_samples": [8, 85, 85, 8]}).to_csv(tmp_path / "runs.csv", index=False)
    got = mod.pieces(tmp_path, pd.Timestamp("2026-12-06T19:00", tz="UTC"))
    assert len(got) == 1
    row = got.iloc[0]
    assert (row.fold, row.training_began, row.jobs, row.attacked_segments, row.attack_s) == (2, "20:00", 3, 178, 450)
    assert row.wall_min == 20.0                       # 20:00 → the last attack's end at 20:15 + 300 s
    assert len(mod.pieces(tmp_path)) == 2
    assert mod.main([str(tmp_path), "--since", "2026-12-06T19:00"]) == 0
    # an export from before models.csv's resumed_after_epoch: the column is blank
    assert "| emodb | 2 | 42 | 20:00 | 24 | 600 |  | 3 | 178 | 450 | 20.0 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no piece"):
        mod.main([str(tmp_path), "--since", "2026-12-07T00:00"])
    with pytest.raises(SystemExit, match="holds no runs.csv"):
        mod.pieces(tmp_path / "nothing")
