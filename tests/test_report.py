"""`python -m ser_attacks.report`: a report built from real sweeps on the embedded corpus, read back
from MLflow, checked against the runs' metrics (read independently with MlflowClient).

Setup (module scope, ~1–2 min on 2 cores): sweep A = fgsm,bim x eps 0.01,0.05 (seed 42, split by
recording); sweep B = fgsm eps 0.05 with seed 1 under split=paper and split=recording. So fgsm eps=0.05
(recording) has two seeds (aggregated), split=paper has only fgsm (bim cells missing) and there is a
protocol gap to report. A re-run of sweep B (all skipped by resume) checks that `--sweep` follows skipped runs.
Every sweep here runs with ``input.realize=false`` (``NO_AUDIO``): no test of this module reads the realized audio,
whose report section tests/test_report_audio.py checks; resynthesis was about half of each attack job's time.
A second setup (``cv``, ~2.5 CPU-minutes) runs split=speaker_cv over all 3 folds of a 6-speaker corpus with
fgsm/bim/noise/autoattack at two eps: fold pooling, speaker-level tests, dB/SNR, the checklist, the sweep summary.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ser_attacks.metrics import exact_fractions
from ser_attacks.report import stats
from tests.helpers.report import cli, sweep

NO_AUDIO = "input.realize=false"      # the adversarial audio and its report section: tests/test_report_audio.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory, corpus_root):
    tmp = tmp_path_factory.mktemp("report")
    a = sweep(tmp, corpus_root, "attack=fgsm,bim", "attack.eps=0.01,0.05", NO_AUDIO)
    b = sweep(tmp, corpus_root, "attack=fgsm", "attack.eps=0.05", "seed=1", "split=paper,recording", NO_AUDIO)
    out = tmp / "reports" / "all"
    proc = cli(tmp, "ser_attacks.report", "--out", str(out))
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", max_results=1000)
    return {"tmp": tmp, "corpus": corpus_root, "a": a, "b": b, "out": out, "stdout": proc.stdout, "client": client,
            "exp": exp, "runs": runs}


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    """split=speaker_cv on a 6-speaker corpus (3 female, 3 male → 3 folds of 1 + 1), all folds, FGSM / BIM /
    noise / AutoAttack at two eps; the report over all folds, and one over fold 0 alone."""
    from ser_attacks.data.synthetic import generate_corpus
    tmp = tmp_path_factory.mktemp("cv")
    corpus = tmp / "corpus6"
    generate_corpus(corpus, layout="emodb", n_speakers=6, n_sentences=3, seed=0)
    printed = {}
    sweep(tmp, corpus, "dataset.generate.n_speakers=6", "split=speaker_cv", "split.fold=0,1,2",
          "attack=fgsm,bim,noise,autoattack", "attack.eps=0.05,0.25", NO_AUDIO, stdout=printed)
    out, one = tmp / "reports" / "cv", tmp / "reports" / "fold0"
    cli(tmp, "ser_attacks.report", "--out", str(out), "--no-log")
    cli(tmp, "ser_attacks.report", "--out", str(one), "--no-log", "--tag", "params.split.fold=0")
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", max_results=1000)
    return {"out": out, "one": one, "runs": runs, "stdout": printed["sweep"]}


def _table(out: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{key}.csv")


def _key(r) -> tuple:
    return r.data.tags["attack"], r.data.params["split.mode"], float(r.data.params["attack.eps"])


def _groups(runs) -> dict:
    """Configurations computed independently of the report: attack, split mode, eps (seeds pooled). Shares of
    segments as their exact k / n from the logged counts (MLflow shows them to 4 decimals)."""
    out = {}
    for r in runs:
        out.setdefault(_key(r), []).append(exact_fractions(r.data.metrics))
    return out


@pytest.mark.e2e
def test_runs_as_expected(setup):
    g = _groups(setup["runs"])
    assert len(setup["runs"]) == 6
    assert len(g[("fgsm", "recording", 0.05)]) == 2          # seeds 42 and 1: aggregated
    assert ("bim", "paper", 0.05) not in g                    # a missing cell


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_param_tables_equal_run_metrics(setup):
    out, groups = setup["out"], _groups(setup["runs"])
    seen = 0
    for atk in ("fgsm", "bim"):
        t = _table(out, f"param_{atk}").dropna(subset=["adv_acc"])
        for row in t.itertuples():
            ms = groups[(atk, row.split, row.x)]
            assert row.n_runs == len(ms)
            for m in ("clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation",
                      "perturbation_female", "perturbation_male", "l2", "linf", "attack_time_s", "success_rate",
                      "robust_acc", "robust_acc_female"):     # robust_acc: from the segments, = the runs' metric
                assert getattr(row, m) == pytest.approx(np.mean([x[m] for x in ms]), rel=1e-9), (atk, row.config, m)
            assert row.robust_acc <= min(row.clean_acc, row.adv_acc) + 1e-12
            if len(ms) > 1:    # seed-aggregated: mean ± sample std
                assert row.adv_acc_std == pytest.approx(np.std([x["adv_acc"] for x in ms], ddof=1), abs=1e-12)
            seen += 1
    assert seen == 5      # fgsm: 2 recording + 1 paper configs, bim: 2 recording


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_protocol_gap_and_ranks(setup):
    out, groups = setup["out"], _groups(setup["runs"])
    gap = _table(out, "protocol_gap")
    assert list(gap.attack) == ["fgsm"] and list(gap.config) == ["eps=0.05"]
    pa, re = groups[("fgsm", "paper", 0.05)], groups[("fgsm", "recording", 0.05)]
    assert gap.adv_acc_diff[0] == pytest.approx(np.mean([m["adv_acc"] for m in pa])
                                                - np.mean([m["adv_acc"] for m in re]))
    assert gap.clean_acc_paper[0] == pytest.approx(np.mean([m["clean_acc"] for m in pa]))
    # the p-values, recomputed from the runs' adversarial.npz: per segment the share of runs (seeds) that got it
    # right, per speaker the mean over its segments, then the exact two-sided sign-flip test over the speakers
    runs = {split: [r for r in setup["runs"] if _key(r) == ("fgsm", split, 0.05)] for split in ("paper", "recording")}
    for kind in ("clean", "adv"):
        p, n_speakers = _sign_flip_p(*[_speaker_acc(setup, runs[split], f"{kind}_pred") for split in runs])
        assert n_speakers == 4 and gap[f"{kind}_acc_min_p"][0] == pytest.approx(2 / 2 ** 4)
        # 4 speakers: the smallest attainable p, 1/8, exceeds α, so the comparison is not testable (issue 25)
        assert np.isnan(gap[f"{kind}_acc_p"][0]) and "smallest attainable p 0.125 > α" in gap[f"{kind}_acc_test"][0]
        assert 0 < p <= 1, kind
    ranks = _table(out, "table45_rank_accuracy").set_index("attack")
    best = _table(out, "table04_best_config")
    rec = best[best.split == "recording"].set_index("attack").adv_acc
    assert (ranks.filter(like="recording").iloc[:, 0] == rec.rank(method="min").reindex(ranks.index)).all()
    assert ranks.loc["bim", "n_settings"] == 1 and ranks.loc["fgsm", "n_settings"] == 2
    md = (out / "report.md").read_text()
    assert "## Significance" in md and "α = 0.05" in md and "Holm" in md


def _speaker_acc(setup, runs, pred: str) -> dict[str, float]:
    """Accuracy of ``pred`` (clean_pred / adv_pred) per speaker over the runs' attacked segments, each segment once
    (the runs on a segment averaged)."""
    rows = []
    for r in runs:
        dst = setup["tmp"] / "npz" / r.info.run_id
        dst.mkdir(parents=True, exist_ok=True)
        path = setup["client"].download_artifacts(r.info.run_id, "adversarial.npz", str(dst))
        with np.load(path) as z:
            rows += [(f"{rec}|{seg}|{aug}", str(spk), float(a == y)) for rec, seg, aug, spk, a, y in
                     zip(z["recording_id"], z["segment"], z["augment"], z["speaker"], z[pred], z["label"])]
    seg = pd.DataFrame(rows, columns=["key", "speaker", "ok"]).groupby(["key", "speaker"]).ok.mean().reset_index()
    return seg.groupby("speaker").ok.mean().to_dict()


def _sign_flip_p(a: dict[str, float], b: dict[str, float]) -> tuple[float, int]:
    """Exact sign-flip p of |mean(a - b)| over the speakers in both, and their number."""
    common = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in common])
    null = (np.array(list(itertools.product((1, -1), repeat=len(d)))) * d).mean(1)
    return float(np.mean(np.abs(null) >= abs(d.mean()) - 1e-12)), len(common)


@pytest.mark.e2e
def test_report_run_logged(setup):
    client, exp = setup["client"], setup["exp"]
    reps = client.search_runs([exp.experiment_id], "tags.run_type = 'report'")
    assert len(reps) >= 1
    files = {f.path for f in client.list_artifacts(reps[0].info.run_id)}
    assert {"report.md", "report.html", "figures", "tables"} <= files
    assert reps[0].data.metrics["n_runs"] == 6


@pytest.mark.e2e
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
    resumed = sweep(tmp, setup["corpus"], "attack=fgsm", "attack.eps=0.05", "seed=1", "split=paper,recording", NO_AUDIO)
    assert resumed != setup["b"]
    out2 = tmp / "reports" / "resumed"
    proc = cli(tmp, "ser_attacks.report", "--sweep", resumed, "--out", str(out2), "--no-log")
    assert "2 runs" in proc.stdout
    assert set(_table(out2, "runs").run_id) == set(_table(out, "runs").run_id)
    # a filter that matches nothing: a clear error, non-zero exit
    bad = cli(tmp, "ser_attacks.report", "--dataset", "nope", "--out", str(tmp / "reports" / "bad"), check=False)
    assert bad.returncode != 0 and "no FINISHED attack runs" in bad.stderr


# ------------------------------------------------------------------------- statistics, hand-made
def _segments(n_spk=10, n_rec=8, n_seg=3, p_f=0.8, p_m=0.5, spread=0.0, seed=0) -> pd.DataFrame:
    """Segments (speaker, recording_id, gender, ok) of speakers with their own accuracy (``spread``: speaker
    effect), half female."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_spk):
        female = s < n_spk // 2
        p = np.clip((p_f if female else p_m) + rng.normal(0, spread), 0, 1)
        for r in range(n_rec):
            for k in range(n_seg):
                rows.append(dict(speaker=f"s{s}", recording_id=f"s{s}r{r}", gender="female" if female else "male",
                                 ok=float(rng.random() < p), key=f"s{s}r{r}|{k}"))
    return pd.DataFrame(rows)


def test_hierarchical_ci_widens_with_speaker_effects_and_matches_the_plain_bootstrap_without():
    from scipy.stats import bootstrap
    flat = _segments(n_spk=200, n_rec=1, n_seg=1, p_f=0.6, p_m=0.6)           # one segment per speaker
    m, lo, hi = stats.hier_ci(flat.speaker, flat.recording_id, flat.ok)
    plain = bootstrap((flat.ok.to_numpy(),), np.mean, method="percentile", n_resamples=2000, random_state=0)
    assert m == flat.ok.mean() and lo < m < hi
    assert hi - lo == pytest.approx(plain.confidence_interval.high - plain.confidence_interval.low, rel=0.15)
    assert stats.hier_ci(flat.speaker, flat.recording_id, flat.ok, seed=3) == \
        stats.hier_ci(flat.speaker, flat.recording_id, flat.ok, seed=3)          # deterministic with a seed
    # 6 speakers, 40 recordings each: speakers differ a lot → the segment-level interval is far too narrow
    clus = _segments(n_spk=6, n_rec=40, n_seg=2, p_f=0.5, p_m=0.5, spread=0.35, seed=1)
    _, hlo, hhi = stats.hier_ci(clus.speaker, clus.recording_id, clus.ok)
    naive = bootstrap((clus.ok.to_numpy(),), np.mean, method="percentile", n_resamples=2000, random_state=0)
    assert hhi - hlo > 2 * (naive.confidence_interval.high - naive.confidence_interval.low)
    assert np.isnan(stats.hier_ci([], [], [])).all()                             # no data: NaNs, not 0 ± 0
    assert np.isnan(stats.hier_ci(["s"], ["r"], [1.0], den=[0.0])).all()


def test_gender_test_uses_speakers_and_says_when_it_cannot():
    """1 female and 1 male speaker: a segment-level test would call any gap significant; here it is not
    testable. 5 + 5 speakers perfectly separated: exact p = 2/252, the smallest this design allows."""
    two = _segments(n_spk=2, n_rec=30, n_seg=2, p_f=0.9, p_m=0.3)
    t = stats.speaker_test(two[two.gender == "female"], two[two.gender == "male"], "ok")
    assert not t.testable and t.text() == "not testable (n speakers per gender < 3: 1 vs 1)"
    ten = _segments(n_spk=10, n_rec=6, n_seg=2, p_f=1.0, p_m=0.0)
    t = stats.speaker_test(ten[ten.gender == "female"], ten[ten.gender == "male"], "ok")
    assert t.testable and t.p == pytest.approx(2 / 252) and t.min_p == pytest.approx(2 / 252)
    assert "exact over 252" in t.note and "5 vs 5 speakers" in t.text()
    same = _segments(n_spk=6, n_rec=6, n_seg=2, p_f=0.5, p_m=0.5, seed=4)
    t = stats.speaker_test(same[same.gender == "female"], same[same.gender == "male"], "ok")
    # 3 + 3 speakers can never reach p < 0.1: not testable at α = 0.05, and it says why
    assert not t.testable and t.min_p == pytest.approx(0.1) and "smallest attainable p 0.1 > α" in t.note
    g, lo, hi = stats.hier_gap_ci(ten[ten.gender == "female"], ten[ten.gender == "male"], "ok")
    assert g == 1.0 and lo == hi == 1.0
    paired = stats.paired_speaker_test(ten, ten.assign(ok=0.0), "ok")
    # only the 5 female differences are non-zero: all-plus or all-minus of 2^5 sign patterns reach |mean|
    assert paired.testable and paired.n_a == 10 and paired.p == pytest.approx(2 / 2 ** 5)


def test_repeated_runs_are_averaged_per_segment_not_counted_twice():
    """Three runs on the same segments give exactly the intervals and p-values of one (concatenating them,
    as before, shrank the interval by ~√3 and the p-value)."""
    from ser_attacks.report.aggregate import interval_columns, speaker_test
    from ser_attacks.report.collect import Samples, pool
    seg = _segments(n_spk=6, n_rec=5, n_seg=2, p_f=0.8, p_m=0.4, seed=2)
    n = len(seg)
    label = np.zeros(n, int)
    run = Samples(label, seg.gender.to_numpy(), label, np.where(seg.ok > 0, 0, 1), np.arange(n),
                  seg.speaker.to_numpy(), seg.recording_id.to_numpy(), np.arange(n) % 2, np.full(n, "none"),
                  np.full(n, -1))
    one, three = pool([run]), pool([run, run, run])
    assert len(three) == len(one) == n and (three.n_runs == 3).all()
    a, b = {}, {}
    interval_columns(a, one)
    interval_columns(b, three)
    assert a == b
    assert speaker_test(one[one.gender == "female"], one[one.gender == "male"], "adv_ok") == \
        speaker_test(three[three.gender == "female"], three[three.gender == "male"], "adv_ok")
    cat = pd.concat([run.table()] * 3)               # what concatenation did
    _, lo1, hi1 = stats.hier_ci(one.recording_id, one.recording_id, one.adv_ok)
    _, lo3, hi3 = stats.hier_ci(np.arange(len(cat)), np.arange(len(cat)), cat.adv_ok)
    assert hi3 - lo3 < 0.7 * (hi1 - lo1)


def test_holm_and_mean_std():
    adj = stats.holm([0.01, 0.04, 0.03, np.nan])
    assert adj[0] == pytest.approx(0.03) and adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)
    assert np.isnan(adj[3])
    m, s, n = stats.mean_std([0.2, 0.4, float("nan")])
    assert (m, n) == (pytest.approx(0.3), 2) and s == pytest.approx(np.std([0.2, 0.4], ddof=1))


def test_language_tests_compare_datasets_under_one_protocol():
    """Pairwise dataset tests: different datasets under the same protocol only; speakers are the unit."""
    from ser_attacks.report.collect import Samples, pool
    from ser_attacks.report.gaps import language_table, language_tests

    def smp(n_ok, n, n_spk, prefix):
        y = np.zeros(n, int)
        pred = np.r_[np.zeros(n_ok, int), np.ones(n - n_ok, int)]
        spk = np.array([f"{prefix}{i % n_spk}" for i in range(n)])
        return pool([Samples(y, np.array(["female", "male"] * (n // 2)), y, pred, np.arange(n), spk,
                             np.array([f"{s}_{i}" for i, s in enumerate(spk)]))])
    best = pd.DataFrame({"attack": ["fgsm"] * 3, "config_id": ["a", "b", "c"],
                         "dataset": ["emodb", "emovo", "emodb"],
                         "setting": ["emodb (split=paper)", "emovo (split=paper)", "emodb (split=recording)"]})
    pooled = {"a": smp(45, 50, 5, "d"), "b": smp(5, 50, 5, "o"), "c": smp(25, 50, 5, "d")}
    t = language_tests(best, pooled)
    assert list(t.attack) == ["clean", "fgsm"]                  # one pair: a clean row, then the attack's
    assert {(r.a, r.b) for r in t.itertuples()} == {("emodb (split=paper)", "emovo (split=paper)")}
    clean, fgsm = t.iloc[0], t.iloc[1]
    assert clean.clean_acc_a == clean.clean_acc_b == 1.0 and clean.clean_diff == 0.0
    assert fgsm["diff"] == pytest.approx(0.8) and fgsm.p < 0.05 and "5 vs 5 speakers" in fgsm.test
    # every segment was right before the attack: success rate = 1 - adversarial accuracy, on 50 of each
    assert (fgsm.success_a, fgsm.success_b) == (pytest.approx(0.1), pytest.approx(0.9))
    assert fgsm.success_diff == pytest.approx(-0.8) and fgsm.success_p < 0.05
    assert (fgsm.n_correct_a, fgsm.n_correct_b) == (50, 50)
    table = language_table(t)
    assert table.key == "language_gaps" and list(table.display.attack) == ["clean (no attack)", "fgsm"]
    assert table.display["success rate a / b"].iloc[1] == "0.100 / 0.900 (of 50 / 50)"
    pooled["b"] = smp(5, 50, 2, "o")                                        # EMOVO with 2 speakers
    t = language_tests(best, pooled)
    assert np.isnan(t.p[1]) and t.test[1].startswith("not testable (n speakers per dataset < 3")
    assert np.isnan(t.success_p[1]) and np.isnan(t.clean_p[0])


def test_language_tests_correct_each_protocol_on_its_own():
    """Holm over one protocol's comparisons: adding the leaky split's pairs leaves speaker_cv's adjusted p."""
    from ser_attacks.report.collect import Samples, pool
    from ser_attacks.report.gaps import language_tests

    def smp(n_ok, prefix):
        y, pred = np.zeros(40, int), np.r_[np.zeros(n_ok, int), np.ones(40 - n_ok, int)]
        spk = np.array([f"{prefix}{i % 8}" for i in range(40)])
        return pool([Samples(y, np.array(["female", "male"] * 20), y, pred, np.arange(40), spk,
                             np.array([f"{s}_{i}" for i, s in enumerate(spk)]))])
    cv = pd.DataFrame({"attack": ["fgsm"] * 2, "config_id": ["a", "b"], "dataset": ["emodb", "emovo"],
                       "setting": ["emodb (split=speaker_cv)", "emovo (split=speaker_cv)"]})
    leaky = pd.DataFrame({"attack": ["fgsm"] * 2, "config_id": ["c", "d"], "dataset": ["emodb", "emovo"],
                          "setting": ["emodb (split=paper)", "emovo (split=paper)"]})
    pooled = {"a": smp(30, "d"), "b": smp(12, "o"), "c": smp(20, "d"), "d": smp(21, "o")}
    alone = language_tests(cv, pooled)
    both = language_tests(pd.concat([cv, leaky], ignore_index=True), pooled)
    assert len(both) == 2 * len(alone)
    one = both[both.a == "emodb (split=speaker_cv)"].set_index("attack")
    for col in ("p_holm", "success_p_holm"):
        assert one.loc["fgsm", col] == alone.set_index("attack").loc["fgsm", col] == alone.set_index("attack").loc[
            "fgsm", col.replace("_holm", "")]                          # a family of one pair: Holm = raw p
    assert one.loc["fgsm", "p_holm"] < 0.05


def test_config_keys_across_schema_versions_and_seeds():
    """Older runs lacking a new single-valued key match newer ones; seed-derived keys count as seed."""
    from ser_attacks.report.collect import SEED_KEYS, fill_new_keys, seed_keys
    old = {"seed": "1", "attack.eps": "0.1"}
    new = {"seed": "2", "attack.eps": "0.1", "mode": "attack", "tune.sampler_seed": "2"}
    filled = fill_new_keys([old, new])
    assert filled[0]["mode"] == "attack" and filled[0]["tune.sampler_seed"] == "2"
    assert seed_keys([{"seed": "1", "x.seed": "1", "d.seed": "0"}, {"seed": "2", "x.seed": "2", "d.seed": "0"}]) \
        == SEED_KEYS + ("x.seed",)
    two = fill_new_keys([{"a": "1"}, {"a": "2"}, {}])
    assert "a" not in two[2]                       # several values: absent stays absent


def test_a_swept_norm_is_never_the_curve_axis():
    """FMN swept over norm=2,inf drew a 'robustness curve' with norm on the x axis (one point at 2)."""
    import pandas as pd

    from ser_attacks.report.collect import annotate
    runs = [{"seed": "1", "attack.norm": n} for n in ("2", "inf")] + [{"seed": "1", "attack.eps": e} for e in "12"]
    df = pd.DataFrame({"params": runs, "dataset": "emodb", "attack": ["fmn", "fmn", "fgsm", "fgsm"]})
    out = annotate(df)[0]
    assert out.x_param.tolist() == ["", "", "eps", "eps"] and out.x.isna().tolist() == [True, True, False, False]


def test_a_split_modes_own_parameters_do_not_name_the_setting():
    """Study v2 beside its leaky comparison: speaker_cv runs carry split.val_utterances=0.16 and split=paper runs
    none. The settings stay "emodb (split=speaker_cv)" / "emodb (split=paper)" (findings.py selects them by that
    name, and the protocol-gap pairs need them); a mode parameter that varies within one mode still names it."""
    import pandas as pd

    from ser_attacks.report.collect import annotate
    cv = {"seed": "1", "attack.eps": "1.25", "split.mode": "speaker_cv", "split.val_utterances": "0.16"}
    paper = {"seed": "1", "attack.eps": "1.25", "split.mode": "paper", "split.val": "0.16"}
    out = annotate(pd.DataFrame({"params": [cv, paper], "dataset": "emodb", "attack": "fgsm"}))[0]
    assert out.setting.tolist() == ["emodb (split=speaker_cv)", "emodb (split=paper)"]
    assert out.protocol_key.nunique() == 1                         # the pair the protocol-gap table compares
    other = {**cv, "split.val_utterances": "0.2"}
    out = annotate(pd.DataFrame({"params": [cv, other, paper], "dataset": "emodb", "attack": "fgsm"}))[0]
    assert out.setting.tolist() == ["emodb (split=speaker_cv, split.val_utterances=0.16)",
                                    "emodb (split=speaker_cv, split.val_utterances=0.2)",
                                    "emodb (split=paper, split.val_utterances=None)"]


def test_undefended_runs_are_not_pooled_with_the_one_defense_of_a_sweep():
    """defense=none logs no defense.* params (identity.NEUTRAL): an absent defense.name is "none", not the one
    defense of the sweep, and eot=1 runs (eot left out) are not pooled with eot=8 ones."""
    import pandas as pd

    from ser_attacks.report.collect import annotate, fill_new_keys
    none = {"seed": "1", "attack.eps": "0.1"}
    quant = {**none, "defense.name": "quantize", "defense.stage": "inference", "defense.bits": "5"}
    filled = fill_new_keys([none, quant])
    assert filled[0]["defense.name"] == "none" and "defense.bits" not in filled[0]
    smooth1 = {**none, "defense.name": "smoothing", "defense.sigma": "0.25"}
    smooth8 = {**smooth1, "defense.eot": "8"}
    df = pd.DataFrame({"params": [none, quant], "dataset": "emodb", "attack": "fgsm"})
    assert annotate(df)[0].group.nunique() == 2
    df = pd.DataFrame({"params": [smooth1, smooth8], "dataset": "emodb", "attack": "fgsm"})
    assert annotate(df)[0].group.nunique() == 2


# ------------------------------------------------------------------------------ robustness checklist
def _cfg_row(cid, attack, adv_acc, setting="emodb", linf=np.nan, **params):
    p = {f"attack.{k}": str(v) for k, v in params.items()}
    p["attack.name"] = attack
    config = ", ".join(f"{k}={v}" for k, v in params.items()) or "default"
    return dict(config_id=cid, setting=setting, attack=attack, config=config, params=p, adv_acc=adv_acc, linf=linf)


def _pooled(adv, clean=None, n_spk=6, per_spk=10) -> pd.DataFrame:
    """Segments s<i>r<j> of n_spk speakers with the given per-segment adversarial correctness."""
    n = n_spk * per_spk
    adv = np.broadcast_to(np.asarray(adv, float), (n,)).copy()
    clean = np.ones(n) if clean is None else np.broadcast_to(np.asarray(clean, float), (n,))
    spk = np.repeat([f"s{i}" for i in range(n_spk)], per_spk)
    return pd.DataFrame({"key": [f"k{i}" for i in range(n)], "speaker": spk, "speaker_known": True,
                         "recording_id": [f"r{i}" for i in range(n)], "gender": "female", "label": 0,
                         "clean_ok": clean, "adv_ok": adv, "kept": adv * clean, "n_runs": 1})


def test_checklist_flags_what_a_reviewer_would_catch():
    """Hand-made configurations, one per check: rising and flat budget curves, an unconverged BIM, DeepFool
    that leaves half the correct segments correct, BIM weaker than FGSM, an attack no better than noise,
    FGSM weaker than AutoAttack — each FLAGged with its numbers; the sound ones PASS."""
    from ser_attacks.report.checklist import checklist, flag_lines
    rng = np.random.default_rng(0)
    n = 60

    def acc(p):
        return (rng.random(n) < p).astype(float)
    low, mid, high = acc(0.1), acc(0.5), acc(0.9)
    rows, pooled = [], {}

    def add(cid, attack, a, adv, **params):
        rows.append(_cfg_row(cid, attack, float(np.mean(adv)), **params))
        pooled[cid] = _pooled(adv)
    # FGSM: accuracy RISES from eps 0.1 to 0.2 (the paper's RAVDESS FGSM), falls at 0.3
    add("f1", "fgsm", None, mid, eps=0.1)
    add("f2", "fgsm", None, high, eps=0.2)
    add("f3", "fgsm", None, low, eps=0.3)
    # BIM: identical at every eps (the paper's BIM) — and weaker than FGSM at eps 0.3
    for i, e in enumerate((0.1, 0.2, 0.3)):
        add(f"b{i}", "bim", None, mid, eps=e, max_iter=10)
    add("b20", "bim", None, low, eps=0.2, max_iter=20)          # doubling the iterations changes a lot
    add("df", "deepfool", None, mid, max_iter=20)                # unbounded, half the correct ones survive
    add("cw", "cw_l2", None, np.zeros(n))                       # unbounded, reaches 0
    add("n1", "noise", None, mid, eps=0.1)
    add("n2", "noise", None, high, eps=0.2)
    add("n3", "noise", None, high, eps=0.3)
    add("a1", "autoattack", None, low, eps=0.1, max_iter=20)
    add("a3", "autoattack", None, low, eps=0.3, max_iter=20)
    cf = pd.DataFrame(rows)
    cf.loc[cf.config_id == "df", "linf"] = 0.15
    cl = checklist(cf, pooled)
    v = {(r.attack, r.config, r.check): (r.verdict, r.result) for r in cl.itertuples()}
    verdict = {k: x[0] for k, x in v.items()}
    assert verdict[("fgsm", "default", "budget")] == "FLAG"
    assert "rises beyond its CI" in v[("fgsm", "default", "budget")][1]
    assert verdict[("bim", "max_iter=10", "budget")] == "FLAG" and "identical" in v[("bim", "max_iter=10", "budget")][1]
    assert verdict[("bim", "eps=0.2", "iterations")] == "FLAG"
    assert "not converged" in v[("bim", "eps=0.2", "iterations")][1]
    assert verdict[("deepfool", "max_iter=20", "unbounded → ~0")] == "FLAG"
    # 0 of 60 correct segments stay correct: exact upper bound 0.060 > 0.05, decided on the interval
    assert verdict[("cw_l2", "default", "unbounded → ~0")] == "undecided"
    assert verdict[("bim", "eps=0.3, max_iter=10", "iterative ≥ single-step")] == "FLAG"
    assert verdict[("bim", "eps=0.1, max_iter=10", "iterative ≥ single-step")] == "PASS"
    assert verdict[("fgsm", "eps=0.1", "beats noise")] == "FLAG"                  # same accuracy as noise
    assert verdict[("fgsm", "eps=0.3", "beats noise")] == "PASS"
    deepfool_vs_noise = v[("deepfool", "max_iter=20", "beats noise")][1]
    assert "noise" in deepfool_vs_noise and "eps=0.2" in deepfool_vs_noise
    assert verdict[("fgsm", "eps=0.1", "reference")] == "FLAG"
    assert "overstates robustness" in v[("fgsm", "eps=0.1", "reference")][1]
    assert verdict[("fgsm", "eps=0.3", "reference")] == "PASS"
    assert verdict[("fgsm", "eps=0.2", "reference")] == "n/a"                      # no AutoAttack at 0.2
    assert ("autoattack", "max_iter=20", "budget") in v and not any(k[0] == "noise" for k in v)
    assert all(line.startswith("FLAG emodb") for line in flag_lines(cl))
    assert len(flag_lines(cl)) == (cl.verdict == "FLAG").sum()


def test_checklist_flags_a_slow_rise_that_no_single_step_shows():
    """FGSM gaining 3 correct segments (3 speakers) per eps step: no step beyond its CI, the whole range is."""
    from ser_attacks.report.checklist import checklist
    n_spk, per = 24, 10
    adv = np.zeros(n_spk * per)
    rows, pooled = [], {}
    for i, e in enumerate((0.25, 0.5, 0.75, 1.0, 1.25)):
        if i:
            for s in range(3 * (i - 1), 3 * i):
                adv[s * per] = 1                       # the first segment of three new speakers
        rows.append(_cfg_row(f"f{i}", "fgsm", float(adv.mean()), eps=e))
        pooled[f"f{i}"] = _pooled(adv.copy(), n_spk=n_spk, per_spk=per)
    row = checklist(pd.DataFrame(rows), pooled).query("check == 'budget'").iloc[0]
    assert row.verdict == "FLAG" and "from eps=0.25 to 1.25" in row.result and "overall eps 0.25→1.25" in row.result
    assert "from eps=0.25 to 0.5" not in row.result and "from eps=1 to 1.25" not in row.result


@pytest.mark.e2e
def test_speaker_cv_report_pools_folds_tests_speakers_and_runs_the_checklist(cv):
    """Every fold's runs are one configuration (each speaker tested once); metrics are the folds pooled by
    their segments; the gender test rests on all 3 + 3 speakers; dB/SNR columns and the checklist are there."""
    out, runs = cv["out"], cv["runs"]
    assert len(runs) == 3 * 4 * 2 and {r.data.params["split.fold"] for r in runs} == {"0", "1", "2"}
    cf = _table(out, "configurations")
    assert len(cf) == 8 and (cf.n_runs == 3).all() and (cf.folds == "0,1,2").all()
    assert (cf.n_speakers_female == 3).all() and (cf.n_speakers_male == 3).all()
    for row in cf.itertuples():
        ms = [exact_fractions(r.data.metrics) for r in runs if r.data.tags["attack"] == row.attack
              and float(r.data.params["attack.eps"]) == row.x]
        n = np.array([m["n_samples"] for m in ms])
        assert row.n_segments == n.sum()
        assert row.adv_acc == pytest.approx(np.dot([m["adv_acc"] for m in ms], n) / n.sum(), rel=1e-9)
        assert row.perturbation_db == pytest.approx(np.dot([m["perturbation_db"] for m in ms], n) / n.sum(), rel=1e-9)
        assert row.attack_time_s == pytest.approx(sum(m["attack_time_s"] for m in ms), rel=1e-9)
        assert row.adv_acc_lo <= row.adv_acc <= row.adv_acc_hi
    t3 = _table(out, "table03_clean_accuracy")
    assert len(t3) == 1 and t3.n_speakers_female[0] == 3 and t3.n_speakers_male[0] == 3
    # 3 folds of 1 F + 1 M, gender permuted within folds (one model per fold): 8 relabellings, smallest p 1/4
    assert t3.min_p[0] == pytest.approx(0.25) and "smallest attainable p 0.25 > α" in t3.test[0]
    md = (out / "report.md").read_text()
    assert "## Robustness checklist" in md and "Cross-validation (`split=speaker_cv`)" in md
    assert " dB / " in md.split("Perturbation of the best configuration in physical units")[1].split("###")[0]
    cl = _table(out, "checklist")
    assert set(cl.verdict) <= {"PASS", "FLAG", "undecided", "n/a"} and {"budget", "beats noise", "reference",
                                                          "iterative ≥ single-step"} <= set(cl.check)
    assert set(cl[cl.check == "reference"].attack) == {"fgsm", "bim"}
    # the sweep's closing summary prints the checklist's verdicts (and any FLAG lines)
    n = cl.verdict.value_counts()
    assert (f"Robustness checklist: {n.get('PASS', 0)} PASS, {n.get('FLAG', 0)} FLAG, {n.get('undecided', 0)} "
            f"undecided, {n.get('n/a', 0)} n/a" in cv["stdout"])
    assert cv["stdout"].count("\n  FLAG ") == n.get("FLAG", 0)
    # one fold alone: one female and one male speaker, so no gender test
    one = (cv["one"] / "report.md").read_text()
    assert "not testable (n speakers per gender < 3: 1 vs 1)" in one
    assert "†" in one.split("paper Table 5)")[1].split("###")[0]


def test_headline_names_seeds_and_folds_apart():
    """The headline's "(n seeds)" counts seeds, not runs: three folds of one seed are "(3 folds)"."""
    from ser_attacks.report.summary import repetitions
    row = lambda **kw: pd.Series({"n_runs": 1, "n_reps": 1, "folds": "", **kw})    # noqa: E731
    assert repetitions(row()) == ""
    assert repetitions(row(n_runs=3, n_reps=1, folds="0,1,2")) == " (3 folds)"
    assert repetitions(row(n_runs=3, n_reps=3)) == " (3 seeds)"
    assert repetitions(row(n_runs=6, n_reps=2, folds="0,1,2")) == " (2 seeds × 3 folds)"


def test_a_failed_report_build_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    """The report is built beside --out and moved into place at the end: an error midway keeps the previous
    report (and the folder's other files) as they were and leaves no half-written folder behind."""
    from ser_attacks.report import build, export

    class FakeRuns(list):
        uri, filters = "results", {}
    out = tmp_path / "rep"
    (out / "tables").mkdir(parents=True)
    (out / "report.md").write_text("old")
    (out / "tables" / "t.csv").write_text("a\n1\n")
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(export, "load_results", lambda results: (FakeRuns([1]), {}))

    def boom(runs, samples, stage, *args):
        (stage / "report.md").write_text("half")
        raise RuntimeError("boom")
    monkeypatch.setattr(build, "_write_report", boom)
    with pytest.raises(RuntimeError, match="boom"):
        build.build_report(results=["x"], out=out)
    assert (out / "report.md").read_text() == "old" and (out / "tables" / "t.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]

    def ok(runs, samples, stage, *args):
        (stage / "tables").mkdir()
        (stage / "report.md").write_text("new")
        return None, {}
    monkeypatch.setattr(build, "_write_report", ok)
    rep = build.build_report(results=["x"], out=out)
    assert rep.out == out and (out / "report.md").read_text() == "new"
    assert not (out / "tables" / "t.csv").exists() and (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_a_rerun_supersedes_its_job_and_mixed_models_are_flagged():
    """tidy keeps the latest FINISHED run per config_hash (force=true reruns a job: the new run replaces it);
    runs that should share a trained model but name several training runs are flagged."""
    from ser_attacks.report.collect import tidy
    from ser_attacks.report.summary import mixed_models

    def raw(run_id, start, config_hash, model_run_id, fold, attack):
        return {"run_id": run_id, "status": "FINISHED", "start_time": start, "tags.config_hash": config_hash,
                "tags.model_run_id": model_run_id, "tags.attack": attack, "params.split.mode": "speaker_cv",
                "params.split.fold": fold, "params.seed": "0", "params.model.name": "final",
                "params.dataset.root": f"/copy{run_id}", "params.attack.name": attack, "metrics.adv_acc": 0.0}
    df = tidy(pd.DataFrame([raw("old", 1, "h1", "m1", "0", "fgsm"), raw("new", 3, "h1", "m2", "0", "fgsm"),
                            raw("bim", 2, "h2", "m2", "0", "bim"), raw("f1", 2, "h3", "m3", "1", "fgsm"),
                            raw("legacy", 0, "", "m1", "1", "bim")]))
    assert list(df.run_id) == ["legacy", "bim", "f1", "new"]        # "old" superseded by its rerun "new"
    df["setting"] = "emodb"
    assert mixed_models(df[df.run_id != "legacy"]) == []              # fold 0: m2 only; fold 1: m3 only
    (line,) = mixed_models(df)                                        # fold 1: m3 and m1 (legacy run)
    assert "emodb fold 1 seed 0" in line and "2 trained models" in line and "`m3` (1 runs)" in line


def test_summary_gender_not_testable_names_why_and_where_the_planned_test_is():
    """EmoDB's 5 folds of 1 F + 1 M have 5 speakers per gender but no two-sided p below α: the summary must not say
    "too few speakers" alone, and points to the minimal-perturbation test (one-sided where planned)."""
    from types import SimpleNamespace as NS

    from ser_attacks.report import summary
    t3 = pd.DataFrame({"setting": ["emodb"], "gap": [0.04], "p": [float("nan")]})
    t47 = pd.DataFrame({"setting": ["emodb"], "attack": ["fgsm"], "gap": [0.0], "p": [float("nan")],
                        "p_holm": [float("nan")]})
    line = summary._gender({"table03_clean_accuracy": NS(data=t3), "table47_gender_accuracy": NS(data=t47)})
    assert line.startswith("Gender: not testable on clean or adversarial accuracy")
    assert "relabellings within folds" in line and "Measures below saturation" in line
