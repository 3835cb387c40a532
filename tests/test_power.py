"""report.power: what a design can decide before it runs (issue 27)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ser_attacks.report import power


def test_v2_layouts_come_from_the_fold_code():
    emodb, emovo, ravdess = power.design("emodb", 5), power.design("emovo", 6), power.design("ravdess")
    assert emodb.folds == ((1, 1),) * 5 and emodb.relabellings == 32
    assert sorted(emovo.folds) == [(0, 1)] * 3 + [(1, 0)] * 3 and emovo.relabellings == 1   # one speaker per fold
    assert ravdess.folds == ((2, 2),) * 6 and ravdess.relabellings == 6 ** 6
    with pytest.raises(ValueError, match="corpus 'timit'"):
        power.design("timit")


def test_smallest_attainable_p_one_and_two_sided():
    emodb = power.design("emodb", 5)
    assert emodb.min_p("two-sided") == 2 / 32 and emodb.min_p("less") == 1 / 32
    assert power.smallest_detectable(emodb, 0.1, "two-sided") == "not testable"       # 1/16 > 0.05
    assert power.smallest_detectable(power.design("emovo", 6), 0.1, "less") == "not testable"
    assert power.power(emodb, -0.5, 0.1, "two-sided") == 0.0


def test_emodb_one_sided_power_is_all_five_folds_in_the_planned_direction():
    """With 32 relabellings p <= 0.05 only for the most extreme one: every fold's female − male difference below 0
    (continuous values: no ties), so power = P(d < 0)^5 with d ~ N(delta, 2 sd^2)."""
    d, sd, delta = power.design("emodb", 5), 0.1, -0.15
    expected = norm.cdf(-delta / (sd * np.sqrt(2))) ** 5
    got = power.power(d, delta, sd, "less", n_sim=4000)
    assert abs(got - expected) < 0.03
    # the bisection finds where that reaches 0.8: P = 0.8 ** (1/5) per fold
    analytic = norm.ppf(0.8 ** 0.2) * sd * np.sqrt(2)
    assert abs(power.smallest_detectable(d, sd, "less") - analytic) < 0.01
    assert power.power(d, +0.15, sd, "less") < 0.01            # the wrong direction is not detected


def test_ravdess_size_and_power_near_the_normal_approximation():
    d, sd = power.design("ravdess"), 0.1
    assert power.power(d, 0.0, sd, "two-sided", n_sim=2000) < 0.05 + 0.015          # size at most alpha
    normal = (norm.ppf(0.975) + norm.ppf(0.8)) * sd * np.sqrt(1 / 12 + 1 / 12)
    sde = power.smallest_detectable(d, sd, "two-sided")
    assert normal * 0.95 < sde < normal * 1.2
    assert power.power(d, 0.05, sd) < power.power(d, 0.1, sd) < power.power(d, 0.2, sd)


def test_equivalence_halfwidth_and_projected_sd():
    d = power.design("ravdess")
    from ser_attacks.report.stats import small_sample_factor
    expected = 1.959964 * 0.1 * np.sqrt(1 / 6) * small_sample_factor(24)
    assert power.equivalence_halfwidth(d, 0.1) == pytest.approx(expected)
    assert power.projected_sd(0.1, 0.5, 25, 0.2, 4) == pytest.approx(np.sqrt(0.01 + 0.01 + 0.01))


def test_pilot_between_speaker_sd_is_net_of_the_binomial_part(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):                     # 40 speakers, true accuracies spread with SD 0.15, 60 segments each
        p = float(np.clip(0.6 + 0.15 * rng.standard_normal(), 0.02, 0.98))
        for j in range(60):
            label = 1
            rows.append({"dataset": "x", "split": "speaker_cv", "speaker": f"s{i}", "recording_id": f"s{i}/{j}",
                         "segment": 0, "label": label, "clean_pred": int(rng.random() < p),
                         "gender": "female" if i % 2 else "male", "fold": i % 5})
    pd.DataFrame(rows).to_csv(tmp_path / "segments.csv.gz", index=False)
    got = power.between_from_pilot(tmp_path)["x"]
    assert got["speakers"] == 40 and got["segments_per_speaker"] == 60
    assert got["sd_observed"] > got["sd_between"] and abs(got["sd_between"] - 0.15) < 0.04
    assert power.between_from_pilot(tmp_path, seed_sd=0.5)["x"]["sd_between"] == 0.0


def test_seed_sd_from_counts(tmp_path):
    pd.DataFrame({"fold": [0, 0, 0, 0], "seed": [1, 2, 1, 2], "speaker": ["a", "a", "b", "b"],
                  "n_correct": [8, 6, 5, 5], "n": [10, 10, 10, 10]}).to_csv(tmp_path / "s.csv", index=False)
    assert power.seed_sd_from_counts(tmp_path / "s.csv") == pytest.approx(np.sqrt(np.var([0.8, 0.6], ddof=1) / 2))
    pd.DataFrame({"fold": [0], "seed": [1], "speaker": ["a"], "n_correct": [1], "n": [2]}).to_csv(
        tmp_path / "one.csv", index=False)
    with pytest.raises(ValueError, match="no speaker was tested by two seeds"):
        power.seed_sd_from_counts(tmp_path / "one.csv")


def test_cli_needs_a_pilot_or_both_numbers(capsys):
    with pytest.raises(SystemExit):
        power.main(["--corpus", "emodb", "--segments", "38", "--sd-between", "0.1"])
    assert "give either --pilot or both" in capsys.readouterr().err
    power.main(["--corpus", "emodb", "--n-folds", "5", "--segments", "38", "--sd-between", "0.1", "--rate", "0.7",
                "--seed-sd", "0.05", "--alternative", "less"])
    out = capsys.readouterr().out
    assert "relabellings: 32" in out and "min_p: 0.03125" in out and "negligible_reachable: false" in out


def test_report_modules_run_as_scripts_without_the_sys_modules_warning():
    """The package re-exported build_report eagerly, so ``python -m ser_attacks.report.plan`` warned that the
    module was in sys.modules before it ran; the re-export is now lazy."""
    import subprocess
    import sys

    from tests.helpers import subprocess_env
    for mod in ("plan", "power"):
        proc = subprocess.run([sys.executable, "-m", f"ser_attacks.report.{mod}", "--help"], capture_output=True,
                              text=True, env=subprocess_env(), timeout=120)
        assert proc.returncode == 0 and "usage" in proc.stdout
        assert "RuntimeWarning" not in proc.stderr, proc.stderr[-500:]
    from ser_attacks.report import build_report
    assert callable(build_report)


def test_cli_names_a_missing_pilot_or_seed_file(capsys, tmp_path):
    with pytest.raises(SystemExit):
        power.main(["--corpus", "emodb", "--segments", "38", "--pilot", str(tmp_path)])
    assert "no segments.csv.gz there" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        power.main(["--corpus", "emodb", "--segments", "38", "--sd-between", "0.1", "--rate", "0.5",
                    "--seed-counts", str(tmp_path / "none.csv")])
    assert "--seed-counts" in capsys.readouterr().err
