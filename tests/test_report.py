"""`python -m ser_attacks.report`: a report built from real sweeps on the embedded corpus, read back
from MLflow, checked against the runs' metrics (read independently with MlflowClient).

Setup (module scope, ~1–2 min on 2 cores): sweep A = fgsm,bim x eps 0.01,0.05 (seed 42, split by
recording); sweep B = fgsm eps 0.05 with seed 1 under split=paper and split=recording. So fgsm eps=0.05
(recording) has two seeds (aggregated), split=paper has only fgsm (bim cells missing) and there is a
protocol gap to report. A re-run of sweep B (all skipped by resume) checks that `--sweep` follows skipped runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, tiny_overrides
from ser_attacks.report import stats

COMMON = ["attack.n_samples=12", "attack.max_iter=3", "attack.eps_step=0.005", "train.max_epochs=3"]


def cli(tmp: Path, module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "SER_ATTACKS_CACHE": str(tmp / "cache")}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def sweep(tmp: Path, corpus: Path, *args: str) -> str:
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    base = [o for o in tiny_overrides(tmp, corpus) if o.split("=", 1)[0] not in given]
    cli(tmp, "ser_attacks", "-m", *args, *COMMON, *base)
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    parents = client.search_runs([exp.experiment_id], "tags.run_type = 'sweep'", order_by=["attributes.start_time DESC"])
    return parents[0].info.run_id


@pytest.fixture(scope="module")
def setup(tmp_path_factory, corpus_root):
    tmp = tmp_path_factory.mktemp("report")
    a = sweep(tmp, corpus_root, "attack=fgsm,bim", "attack.eps=0.01,0.05")
    b = sweep(tmp, corpus_root, "attack=fgsm", "attack.eps=0.05", "seed=1", "split=paper,recording")
    out = tmp / "reports" / "all"
    proc = cli(tmp, "ser_attacks.report", "--out", str(out))
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", max_results=1000)
    return {"tmp": tmp, "corpus": corpus_root, "a": a, "b": b, "out": out, "stdout": proc.stdout, "client": client, "exp": exp,
            "runs": runs}


def _table(out: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{key}.csv")


def _key(r) -> tuple:
    return r.data.tags["attack"], r.data.params["split.mode"], float(r.data.params["attack.eps"])


def _groups(runs) -> dict:
    """Configurations computed independently of the report: attack, split mode, eps (seeds pooled)."""
    out = {}
    for r in runs:
        out.setdefault(_key(r), []).append(r.data.metrics)
    return out


def test_runs_as_expected(setup):
    g = _groups(setup["runs"])
    assert len(setup["runs"]) == 6
    assert len(g[("fgsm", "recording", 0.05)]) == 2          # seeds 42 and 1: aggregated
    assert ("bim", "paper", 0.05) not in g                    # a missing cell


def test_files_exist_and_html_is_self_contained(setup):
    out = setup["out"]
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"fig05_adv_accuracy.png", "fig06_perturbation.png", "robustness_curves.png",
            "time_per_attack.png"} <= names
    assert any(n.startswith("spectrograms_") for n in names), "the attack runs' spectrogram triplets"
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert html.count("data:image/png;base64,") == md.count("![")
    assert 'src="figures/' not in html and "<table>" in html
    assert "6 FINISHED attack runs" in md


def test_param_tables_equal_run_metrics(setup):
    out, groups = setup["out"], _groups(setup["runs"])
    seen = 0
    for atk in ("fgsm", "bim"):
        t = _table(out, f"param_{atk}").dropna(subset=["adv_acc"])
        for row in t.itertuples():
            ms = groups[(atk, row.split, row.x)]
            assert row.n_runs == len(ms)
            for m in ("clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation",
                      "perturbation_female", "perturbation_male", "l2", "linf", "attack_time_s", "success_rate"):
                assert getattr(row, m) == pytest.approx(np.mean([x[m] for x in ms]), rel=1e-9), (atk, row.config, m)
            if len(ms) > 1:    # seed-aggregated: mean ± sample std
                assert row.adv_acc_std == pytest.approx(np.std([x["adv_acc"] for x in ms], ddof=1), abs=1e-12)
            seen += 1
    assert seen == 5      # fgsm: 2 recording + 1 paper configs, bim: 2 recording


def test_best_configuration_tables(setup):
    out, groups = setup["out"], _groups(setup["runs"])
    best = _table(out, "table04_best_config")
    md = (out / "report.md").read_text()
    for (atk, split) in {(k[0], k[1]) for k in groups}:
        cands = {k: (np.mean([m["adv_acc"] for m in v]), np.mean([m["perturbation"] for m in v]))
                 for k, v in groups.items() if k[:2] == (atk, split)}
        want = min(cands, key=lambda k: cands[k])                     # lowest acc, then lowest perturbation
        row = best[(best.attack == atk) & (best.split == split)]
        assert len(row) == 1
        row = row.iloc[0]
        assert row.x == want[2]
        assert row.adv_acc == pytest.approx(cands[want][0], rel=1e-9)
        assert row.perturbation == pytest.approx(cands[want][1], rel=1e-9)
        ms = groups[want]
        assert row.attack_time_s == pytest.approx(np.mean([m["attack_time_s"] for m in ms]), rel=1e-9)
        assert f"{row.adv_acc:.3f}" in md
    # Table 5 in the markdown: bim was not run with split=paper -> shown as missing
    section = md.split("paper Table 5)")[1].split("###")[0]
    bim_line = next(line for line in section.splitlines() if line.startswith("| bim |"))
    assert "—" in bim_line


def test_clean_accuracy_table(setup):
    t = _table(setup["out"], "table03_clean_accuracy")
    assert len(t) == 2                                # synthetic (split=paper), synthetic (split=recording)
    for split in ("paper", "recording"):
        runs = [r for r in setup["runs"] if r.data.params["split.mode"] == split]
        row = t[t.setting.str.contains(f"split={split}")].iloc[0]
        # one value per (model, attacked segments): the mean over the models of their runs' clean_acc
        per_model = {}
        for r in runs:
            per_model.setdefault(r.data.tags["model_run_id"], r.data.metrics["clean_acc"])
            assert r.data.metrics["clean_acc"] == per_model[r.data.tags["model_run_id"]]
        assert row.clean_acc == pytest.approx(np.mean(list(per_model.values())), rel=1e-9)
        assert row.n_models == len(per_model)
        assert row.clean_acc_lo <= row.clean_acc <= row.clean_acc_hi


def test_protocol_gap_and_ranks(setup):
    out, groups = setup["out"], _groups(setup["runs"])
    gap = _table(out, "protocol_gap")
    assert list(gap.attack) == ["fgsm"] and list(gap.config) == ["eps=0.05"]
    pa, re = groups[("fgsm", "paper", 0.05)], groups[("fgsm", "recording", 0.05)]
    assert gap.adv_acc_diff[0] == pytest.approx(np.mean([m["adv_acc"] for m in pa]) - np.mean([m["adv_acc"] for m in re]))
    assert gap.clean_acc_paper[0] == pytest.approx(np.mean([m["clean_acc"] for m in pa]))
    assert 0 < gap.adv_acc_p[0] <= 1
    ranks = _table(out, "table45_rank_accuracy").set_index("attack")
    best = _table(out, "table04_best_config")
    rec = best[best.split == "recording"].set_index("attack").adv_acc
    assert (ranks.filter(like="recording").iloc[:, 0] == rec.rank(method="min").reindex(ranks.index)).all()
    assert ranks.loc["bim", "n_settings"] == 1 and ranks.loc["fgsm", "n_settings"] == 2
    md = (out / "report.md").read_text()
    assert "## Significance" in md and "α = 0.05" in md and "Holm" in md


def test_report_run_logged(setup):
    client, exp = setup["client"], setup["exp"]
    reps = client.search_runs([exp.experiment_id], "tags.run_type = 'report'")
    assert len(reps) >= 1
    files = {f.path for f in client.list_artifacts(reps[0].info.run_id)}
    assert {"report.md", "report.html", "figures", "tables"} <= files
    assert reps[0].data.metrics["n_runs"] == 6


def test_partial_sweep_only_fgsm(setup):
    """Sweep B alone (fgsm only, no bim): renders; the report of a sweep only has its own runs."""
    tmp, out = setup["tmp"], setup["tmp"] / "reports" / "partial"
    proc = cli(tmp, "ser_attacks.report", "--sweep", setup["b"], "--out", str(out), "--no-log")
    assert "2 runs" in proc.stdout
    t = _table(out, "table05_best_accuracy")
    assert set(t.attack) == {"fgsm"} and set(t.split) == {"paper", "recording"}
    assert (out / "report.html").exists()
    # resumed sweep B: every configuration is already FINISHED, so the new sweep run has no children and
    # only `skipped.<run_id>` tags; its report still covers those runs
    resumed = sweep(tmp, setup["corpus"], "attack=fgsm", "attack.eps=0.05", "seed=1", "split=paper,recording")
    assert resumed != setup["b"]
    out2 = tmp / "reports" / "resumed"
    proc = cli(tmp, "ser_attacks.report", "--sweep", resumed, "--out", str(out2), "--no-log")
    assert "2 runs" in proc.stdout
    assert set(_table(out2, "runs").run_id) == set(_table(out, "runs").run_id)
    # a filter that matches nothing: a clear error, non-zero exit
    bad = cli(tmp, "ser_attacks.report", "--dataset", "nope", "--out", str(tmp / "reports" / "bad"), check=False)
    assert bad.returncode != 0 and "no FINISHED attack runs" in bad.stderr


# ------------------------------------------------------------------------- statistics, hand-made
def test_bootstrap_ci():
    rng = np.random.default_rng(1)
    v = (rng.random(200) < 0.3).astype(float)
    m, lo, hi = stats.bootstrap_ci(v, seed=3)
    assert m == v.mean() and lo < m < hi
    assert 0.10 < hi - lo < 0.16              # ~ 2 * 1.96 * sqrt(.3 * .7 / 200) = 0.127
    assert stats.bootstrap_ci(v, seed=3) == (m, lo, hi)          # deterministic with a seed
    assert stats.bootstrap_ci(np.ones(10)) == (1.0, 1.0, 1.0)
    assert np.isnan(stats.bootstrap_ci([])[0])


def test_gap_and_permutation():
    big_a, big_b = np.r_[np.ones(40), np.zeros(10)], np.r_[np.ones(10), np.zeros(40)]
    g, lo, hi = stats.gap_ci(big_a, big_b)
    assert g == pytest.approx(0.6) and lo < 0.6 < hi and lo > 0
    assert stats.permutation_test(big_a, big_b, seed=0) < 0.001
    same = np.r_[np.ones(25), np.zeros(25)]
    assert stats.permutation_test(same, same.copy(), seed=0) == 1.0
    assert stats.permutation_test(big_a, big_b, seed=5) == stats.permutation_test(big_a, big_b, seed=5)
    p = stats.permutation_test(np.r_[np.ones(13), np.zeros(12)], np.r_[np.ones(12), np.zeros(13)], seed=0)
    assert p > 0.5
    assert stats.paired_permutation_test(big_a, big_a) == 1.0


def test_holm_and_mean_std():
    adj = stats.holm([0.01, 0.04, 0.03, np.nan])
    assert adj[0] == pytest.approx(0.03) and adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)
    assert np.isnan(adj[3])
    m, s, n = stats.mean_std([0.2, 0.4, float("nan")])
    assert (m, n) == (pytest.approx(0.3), 2) and s == pytest.approx(np.std([0.2, 0.4], ddof=1))


def test_language_tests_compare_datasets_under_one_protocol():
    """Pairwise dataset tests: different datasets under the same protocol only; a big gap is significant."""
    from ser_attacks.report.collect import Samples
    from ser_attacks.report.tables import language_tests

    def smp(n_ok, n):
        y = np.zeros(n, int)
        pred = np.r_[np.zeros(n_ok, int), np.ones(n - n_ok, int)]
        return Samples(y, np.array(["female", "male"] * (n // 2)), y, pred, np.arange(n))
    best = pd.DataFrame({"attack": ["fgsm"] * 3, "config_id": ["a", "b", "c"],
                         "dataset": ["emodb", "emovo", "emodb"],
                         "setting": ["emodb (split=paper)", "emovo (split=paper)", "emodb (split=recording)"]})
    pooled = {"a": smp(45, 50), "b": smp(5, 50), "c": smp(25, 50)}
    t = language_tests(best, pooled)
    assert len(t) == 1 and (t.a[0], t.b[0]) == ("emodb (split=paper)", "emovo (split=paper)")
    assert t["diff"][0] == pytest.approx(0.8) and t.p[0] < 0.001 and t.p_holm[0] < 0.05


def test_config_keys_across_schema_versions_and_seeds():
    """Older runs lacking a new single-valued key match newer ones; seed-derived keys count as seed."""
    from ser_attacks.report.collect import fill_new_keys, seed_keys
    old = {"seed": "1", "attack.eps": "0.1"}
    new = {"seed": "2", "attack.eps": "0.1", "mode": "attack", "tune.sampler_seed": "2"}
    filled = fill_new_keys([old, new])
    assert filled[0]["mode"] == "attack" and filled[0]["tune.sampler_seed"] == "2"
    assert seed_keys([{"seed": "1", "x.seed": "1", "d.seed": "0"}, {"seed": "2", "x.seed": "2", "d.seed": "0"}]) \
        == ("seed", "split.seed", "x.seed")
    two = fill_new_keys([{"a": "1"}, {"a": "2"}, {}])
    assert "a" not in two[2]                       # several values: absent stays absent
