"""The defenses recipe's table builder (ser_attacks/report/defenses.py) on hand-made run tables: no training, no
MLflow. Per-segment outcomes are drawn per speaker, so the numbers behind each cell are known."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_attacks.report import collect
from ser_attacks.report import defenses as D

SEG = 10          # segments per speaker


def _speakers(n):
    return [(f"s{i}", "female" if i % 2 == 0 else "male") for i in range(n)]


def _samples(ok_clean, ok_adv, n_spk, extra=None) -> collect.Samples:
    """Segments of ``n_spk`` speakers; ``ok_*``: per-segment correctness (1/0 arrays of n_spk * SEG)."""
    spk = _speakers(n_spk)
    n = n_spk * SEG
    speaker = np.repeat([s for s, _ in spk], SEG)
    gender = np.repeat([g for _, g in spk], SEG)
    label = np.zeros(n, int)
    return collect.Samples(label, gender, np.where(ok_clean > 0, 0, 1), np.where(ok_adv > 0, 0, 1), np.arange(n),
                           speaker, np.array([f"{s}_r{i % 5}" for i, s in enumerate(speaker)]), np.arange(n) % SEG,
                           np.full(n, "none"), np.zeros(n, int), extra)


def _draw(p, n, seed):
    return (np.random.default_rng(seed).random(n) < p).astype(float)


class Sweep:
    """Rows as ``collect.tidy`` makes them, and their samples; ``runs()`` annotates them like ``collect.collect``."""

    def __init__(self, n_spk=6):
        self.n_spk, self.rows, self.samples, self.k = n_spk, [], {}, 0

    def add(self, defense, attack, eps=None, clean=0.9, adv=0.1, tags=None, extra=None, snr=20.0, dparams=None,
            clean_ok=None, adv_ok=None, time_s=10.0, model_run_id="m0", metrics=None, **aparams):
        n = self.n_spk * SEG
        self.k += 1
        rid = f"run{self.k:03d}"
        c = _draw(clean, n, 1) if clean_ok is None else clean_ok
        a = (c * _draw(adv / max(clean, 1e-9), n, self.k + 100)) if adv_ok is None else adv_ok
        params = {"attack.name": attack, "seed": "42", "split.mode": "recording", "dataset.name": "emodb"}
        if eps is not None:
            params["attack.eps"] = str(eps)
        params.update({f"attack.{k}": str(v) for k, v in aparams.items()})
        if defense != "none":
            params.update({"defense.name": defense, **{f"defense.{k}": str(v) for k, v in (dparams or {}).items()}})
        row = {"run_id": rid, "status": "FINISHED", "start_time": pd.Timestamp("2026-12-06") + pd.Timedelta(
            seconds=self.k), "params": params, "dataset": "emodb", "language": "de", "attack": attack,
            "sweep_id": "", "config_hash": rid, "attack_effect": "ok", "model_key": model_run_id,
            "model_run_id": model_run_id, "defense": defense, "defense_stage": "", "defense_randomized": "",
            "defense_differentiable": "", "attack_eot": "1", "attack_bpda": "true", "attack_transfer": "",
            "split": "recording", "seed": "42", "fold": "", "clean_acc": c.mean(), "adv_acc": a.mean(),
            "n_samples": float(n), "snr_db": snr, "snr_db_female": snr - 1, "snr_db_male": snr + 1,
            "attack_time_s": time_s, "time_per_sample_s": time_s / n, **(metrics or {})}
        row.update(tags or {})
        self.rows.append(row)
        self.samples[rid] = _samples(c, a, self.n_spk, extra)
        return rid

    def runs(self) -> collect.Runs:
        df, swept, skeys, seeds = collect.annotate(D.mark_transfer(pd.DataFrame(self.rows)))
        return collect.Runs(df, "test:", "defenses", swept=swept, setting_keys=skeys, seed_keys=seeds)

    def data(self, train=None, certificates=None) -> D.Data:
        df, swept, skeys, seeds = collect.annotate(D.mark_transfer(pd.DataFrame(self.rows)))
        runs = collect.Runs(df, "test:", "defenses", swept=swept, setting_keys=skeys, seed_keys=seeds)
        return D.build(runs, self.samples, certificates, train)


def _grid(sw: Sweep, defense, accs, clean=0.9, **kw):
    for eps, acc in accs.items():
        sw.add(defense, "fgsm", eps, clean=clean, adv=acc, **kw)


def test_gain_over_undefended_and_clean_cost_are_paired_with_speaker_intervals():
    sw = Sweep(6)
    n = 6 * SEG
    clean = _draw(0.9, n, 1)
    for eps in (0.05, 0.25):
        sw.add("none", "fgsm", eps, clean_ok=clean, adv_ok=np.zeros(n), snr=30 - 40 * eps)
        sw.add("quantize", "fgsm", eps, clean_ok=clean, adv_ok=clean, dparams={"bits": 5})
    long = D.long_table(sw.data())
    a = long[(long.group == "all") & (long.defense == "quantize") & (long.measure == "attack")]
    assert list(a.budget_sigma) == [0.05, 0.25]
    assert np.allclose(a.acc, clean.mean()) and np.allclose(a.gain_vs_undefended, clean.mean())
    assert (a.gain_lo > 0).all() and (a.interval == "95% speaker bootstrap").all()
    c = long[(long.group == "all") & (long.defense == "quantize") & (long.measure == "clean")].iloc[0]
    assert c.gain_vs_undefended == 0 and c.n_speakers == 6
    f = long[(long.group == "female") & (long.defense == "none") & (long.measure == "attack")]
    assert (f.n_speakers == 3).all() and (f.snr_db == f.snr_db).all()
    lines = "\n".join(D.verdicts(long, D.masking_flags(sw.data())))
    assert f"**quantize**: clean {clean.mean():.3f} → {clean.mean():.3f} (+0.000 [" in lines
    assert "fgsm 0.25 σ (20.0 dB): 0.000 undefended → 0.900, robust accuracy gained +0.900 [" in lines


def test_a_wrong_segment_the_attack_turns_right_is_not_robust():
    """The cells are robust accuracy (right before AND after): segments the model got wrong that the attack moved
    into their true class (FGSM adversarial training's label leaking, noise) count as wrong, and so in the gain."""
    sw = Sweep(6)
    n = 6 * SEG
    clean = (np.arange(n) % 2 == 0).astype(float)                    # half right
    sw.add("none", "fgsm", 1.25, clean_ok=clean, adv_ok=np.zeros(n))
    sw.add("fgsm_at", "fgsm", 1.25, clean_ok=clean, adv_ok=1.0 - clean)  # every wrong one turned right, no right kept
    long = D.long_table(sw.data())
    a = long[(long.group == "all") & (long.defense == "fgsm_at") & (long.measure == "attack")].iloc[0]
    assert a.acc == 0.0 and a.gain_vs_undefended == 0.0


def test_two_speakers_one_fold_gives_no_interval_but_says_so():
    sw = Sweep(2)
    _grid(sw, "none", {0.25: 0.1})
    _grid(sw, "quantize", {0.25: 0.6}, dparams={"bits": 5})
    data = sw.data()
    long = D.long_table(data)
    assert long.acc_lo.isna().all() and long.gain_lo.isna().all()
    assert (long.interval == "not informative (< 3 speakers)").all()
    wide = D.wide_table(long, D.masking_flags(data), D.times(data))
    cell = wide[(wide.defense == "quantize") & (wide.group == "all")]["fgsm 0.25 σ"].iloc[0]
    assert cell.startswith("0.") and D.FEW in cell and "[" not in cell
    assert all(D.FEW in v and "[" not in v for v in wide.clean)
    lines = "\n".join(D.verdicts(long, D.masking_flags(data)))
    assert "robust accuracy gained" not in lines and "gain (no interval: 2 speakers) +" in lines


def test_a_rise_with_eps_on_one_fold_is_stated_as_suspected_not_decided():
    """Two speakers: the checklist's rule (a) cannot fire (its interval spans everything), yet FGSM at 1.25 σ far
    above 0.25 σ is written out as suspected."""
    sw = Sweep(2)
    _grid(sw, "none", {0.25: 0.05, 1.25: 0.0})
    _grid(sw, "fgsm_at", {0.25: 0.1, 1.25: 0.85}, dparams={"eps": 1.25}, model_run_id="m1")
    data = sw.data()
    flags = D.masking_flags(data)
    assert not (flags.verdict == "FLAG").any()
    lines = "\n".join(D.verdicts(D.long_table(data), flags))
    assert "not monotone in the point estimates: fgsm at 1.25 σ (" in lines
    assert "2 speakers: not testable" in lines and "gradient masking suspected, not shown" in lines


def test_accuracy_rising_with_eps_is_reported_as_gradient_masking_in_words():
    """The notebook's pattern: FGSM at 1.25 σ far above FGSM at 0.25 σ on the adversarially trained model."""
    sw = Sweep(6)
    _grid(sw, "none", {0.25: 0.05, 1.25: 0.0})
    _grid(sw, "fgsm_at", {0.25: 0.1, 1.25: 0.85}, dparams={"eps": 1.25}, model_run_id="m1")
    data = sw.data()
    flags = D.masking_flags(data)
    f = flags[(flags.defense == "fgsm_at") & (flags.verdict == "FLAG")]
    assert f.rule.tolist() == ["(a)"]
    lines = "\n".join(D.verdicts(D.long_table(data), flags))
    f = f.iloc[0]
    assert f"fgsm at 1.25 σ ({f_at(data, 1.25):.3f}) above fgsm at 0.25 σ ({f_at(data, 0.25):.3f}), beyond its " \
        "interval: not monotone in ε → gradient masking suspected (checklist (a))" in lines
    assert "not monotone in the point estimates" not in lines           # decided by the checklist: said once
    wide = D.wide_table(D.long_table(data), flags, D.times(data))
    assert wide[(wide.defense == "fgsm_at") & (wide.group == "all")]["gradient masking"].iloc[0].startswith("(a) fgsm")
    assert wide[(wide.defense == "undefended") & (wide.group == "all")]["gradient masking"].iloc[0] in (
        "nothing to check", ) or "none raised" in wide[(wide.defense == "undefended")]["gradient masking"].iloc[0]


def f_at(data, eps):
    long = D.long_table(data)
    return long[(long.defense == "fgsm_at") & (long.group == "all") & (long.attack == "fgsm")
                & np.isclose(long.budget_sigma, eps)].acc.iloc[0]


def test_fmn_minimal_perturbations_give_accuracy_at_each_grid_budget():
    sw = Sweep(6)
    n = 6 * SEG
    r = np.tile(np.array([0.0, 0.02, 0.1, 0.3, np.inf]), n // 5)       # 0: already wrong
    clean = (r > 0).astype(float)
    sw.add("none", "fgsm", 0.05, clean_ok=clean, adv_ok=np.zeros(n))
    sw.add("none", "fgsm", 0.25, clean_ok=clean, adv_ok=np.zeros(n))
    sw.add("none", "fmn", None, clean_ok=clean, adv_ok=np.zeros(n), extra={"min_linf": r, "linf": r},
           norm="inf")
    long = D.long_table(sw.data())
    fmn = long[(long.attack == "fmn") & (long.group == "all")].set_index("budget_sigma").acc
    board = D.leaderboard(sw.data(), D.masking_flags(sw.data()))
    assert board["FMN median minimal L∞ (σ)"].iloc[0] == f"{np.median(r[r > 0]):.4f}"   # over the right ones
    assert fmn[0.05] == pytest.approx(np.mean(r > 0.05)) and fmn[0.25] == pytest.approx(np.mean(r > 0.25))
    assert long[long.attack == "fmn"].snr_db.isna().all()      # its run's SNR is of the minimal perturbations


def test_a_minimum_norm_attack_on_the_waveform_is_one_column_at_its_measured_snr():
    """Boundary on the waveform: its minimal perturbations are audio amplitudes, not σ, so it never reads the σ
    grid; it is one column without a budget (robust accuracy after the run, the mean SNR of its changes beside it),
    paired with the undefended model's run like any column."""
    sw = Sweep(6)
    n = 6 * SEG
    clean = _draw(0.9, n, 1)
    r = np.where(np.arange(n) % 3 == 0, np.inf, 0.01)             # in amplitude units: far below any σ budget
    for d, kept in (("none", clean * (np.arange(n) % 3 == 0)), ("mp3", clean)):
        sw.add(d, "pgd", None, clean_ok=clean, adv_ok=np.zeros(n), snr=40.0, snr_db=40)
        rid = sw.add(d, "boundary", None, clean_ok=clean, adv_ok=kept, snr=2.5, extra={"min_l2": r, "l2": r},
                     snr_db=None)
    for row in sw.rows:
        row["params"]["input.name"] = "waveform"
        row.update({f"audio_snr_db{x}": row[f"snr_db{x}"] - 5 for x in ("", "_female", "_male")})
    long = D.long_table(sw.data())
    b = long[(long.attack == "boundary") & (long.group == "all")].set_index("defense")
    assert len(b) == 2 and b.budget_sigma.isna().all() and (b.snr_db == -2.5).all()   # the audio's SNR
    assert b.acc["none"] == pytest.approx((clean * (np.arange(n) % 3 == 0)).mean())
    assert b.gain_vs_undefended["mp3"] == pytest.approx(clean.mean() - b.acc["none"])
    data = sw.data()
    wide = D.wide_table(long, D.masking_flags(data), D.times(data))
    assert "boundary" in wide.columns and wide.boundary.iloc[0].endswith("-2.5 dB")
    assert rid in data.samples


def test_leaderboard_counts_a_segment_robust_only_against_every_attack_at_the_budget():
    """Worst case per segment: FGSM and BIM each break a different third of the segments, so the worst case at 0.05 σ
    is right on neither third; a larger budget's attack never counts at 0.05 σ, noise never; a defense attacked by
    FGSM alone is marked an upper bound and listed after the comparable ones, whatever its value."""
    sw = Sweep(6)
    n = 6 * SEG
    i = np.arange(n)
    clean = np.ones(n)
    for d in ("none", "quantize"):
        sw.add(d, "fgsm", 0.05, clean_ok=clean, adv_ok=(i % 3 != 0).astype(float), dparams={"bits": 5})
        sw.add(d, "bim", 0.05, clean_ok=clean, adv_ok=(i % 3 != 1).astype(float), dparams={"bits": 5},
               eps_step=0.0125)
        sw.add(d, "fgsm", 0.25, clean_ok=clean, adv_ok=np.zeros(n), dparams={"bits": 5})
        sw.add(d, "noise", 0.05, clean_ok=clean, adv_ok=np.zeros(n), dparams={"bits": 5})
    sw.add("median_filter", "fgsm", 0.05, clean_ok=clean, adv_ok=clean)
    data = sw.data()
    t, names = D.worst_case(data, "quantize", 0.05)
    assert t.kept.mean() == pytest.approx(np.mean(i % 3 == 2)) and sorted(names) == ["bim 0.05 σ", "fgsm 0.05 σ"]
    board = D.leaderboard(data, D.masking_flags(data))
    assert list(board.defense)[-1] == "median_filter"          # 1.000 from FGSM alone: after the comparable rows
    mf = board.set_index("defense").loc["median_filter"]
    assert mf["worst case ≤ 0.05 σ"].endswith(D.FEWER) and "not run: bim 0.05 σ" in mf["attacks ≤ 0.05 σ"]
    # its gain against the undefended model's worst case over the same attack (FGSM: 2/3 kept), not over FGSM + BIM
    assert mf["gain at 0.05 σ (paired)"].startswith(f"+{1 - np.mean(i % 3 != 0):.3f}")
    assert (board["FMN median minimal L∞ (σ)"] == "—").all()                 # no FMN run here
    q = board.set_index("defense").loc["quantize"]
    assert q["worst case ≤ 0.05 σ"].startswith(f"{np.mean(i % 3 == 2):.3f}") and q["worst case ≤ 0.25 σ"].startswith(
        "0.000") and q["gain at 0.05 σ (paired)"].startswith("+0.000")


def test_further_attacks_are_columns_by_name_and_budget_transfer_marked():
    sw = Sweep(6)
    _grid(sw, "none", {0.25: 0.05})
    sw.add("quantize", "fgsm", 0.25, adv=0.3, dparams={"bits": 5})
    sw.add("quantize", "fgsm", 0.25, adv=0.5, dparams={"bits": 5}, tags={"attack_transfer": "true"})
    sw.add("quantize", "square", 0.25, adv=0.4, dparams={"bits": 5})
    data = sw.data()
    long = D.long_table(data)
    q = long[(long.defense == "quantize") & (long.measure == "attack") & (long.group == "all")]
    assert set(q.attack) == {"fgsm", "fgsm (transfer)", "square"}
    wide = D.wide_table(long, D.masking_flags(data), D.times(data))
    assert {"fgsm 0.25 σ", "fgsm (transfer) 0.25 σ", "square 0.25 σ"} <= set(wide.columns)
    lines = "\n".join(D.verdicts(long, D.masking_flags(data)))
    assert "square 0.25 σ (20.0 dB)" in lines and "no undefended run to compare" in lines


def test_an_snr_budget_is_no_sigma_budget_and_still_pairs_with_the_undefended_run():
    """Waveform attacks (attack.snr_db): their eps is the config's unused default, so the column names the SNR, not
    "0.25 σ"; and the gain over the undefended run of the same SNR is computed (a NaN budget never matched)."""
    sw = Sweep(6)
    sw.add("none", "pgd", 0.25, adv=0.0, snr=40.0, snr_db=40, max_iter=20)
    sw.add("gaussian_noise", "pgd", 0.25, adv=0.3, snr=40.0, snr_db=40, max_iter=20)
    data = sw.data()
    long = D.long_table(data)
    g = long[(long.defense == "gaussian_noise") & (long.measure == "attack") & (long.group == "all")].iloc[0]
    assert g.budget_sigma != g.budget_sigma and g.gain_vs_undefended == pytest.approx(g.acc)
    wide = D.wide_table(long, D.masking_flags(data), D.times(data))
    assert any("snr_db=40" in c and "σ" not in c for c in wide.columns)
    import tempfile
    with tempfile.TemporaryDirectory() as d:      # nothing on the σ axis: no empty figure
        assert D.figure(data, long, Path(d) / "f.png") is None and not (Path(d) / "f.png").exists()


def test_certified_accuracy_at_the_logged_radii_from_the_certificates():
    sw = Sweep(6)
    n = 6 * SEG
    _grid(sw, "none", {0.25: 0.05})
    radius = np.tile([0.0, 0.3, 0.6, 1.2], n // 4 + 1)[:n]
    pred = np.where(np.arange(n) % 7 == 0, -1, 0)                # abstentions count wrong
    rid = sw.add("smoothing", "fgsm", 0.25, adv=0.3, dparams={"sigma": 0.25}, tags={"attack_eot": "8"},
                 metrics={"certified_acc_r0": 0.8, "certified_acc_r0.5": 0.4, "certify_time_s": 30.0})
    data = sw.data(certificates={rid: {"certified_pred": pred, "certified_radius": radius}})
    long = D.long_table(data)
    cert = long[(long.measure == "certified") & (long.group == "all")].set_index("budget_sigma").acc
    assert list(cert.index) == [0.0, 0.5]
    assert cert[0.5] == pytest.approx(np.mean((pred == 0) & (radius >= 0.5)))
    assert set(long.defense) == {"none", "smoothing (EOT 8)"}
    tm = D.times(data)
    assert tm.set_index("defense").certify_seconds["smoothing (EOT 8)"] == 30.0


def test_defense_labels_name_the_attacker_and_the_parameters_that_differ():
    df = pd.DataFrame({"defense": ["", "smoothing", "smoothing", "quantize", "quantize"],
                       "attack_eot": ["1", "1", "8", "1", "1"], "attack_bpda": ["true"] * 3 + ["false", "true"],
                       "defense_differentiable": ["", "true", "true", "false", "false"],
                       "params": [{}, {"defense.sigma": "0.25"}, {"defense.sigma": "0.25"},
                                  {"defense.bits": "5"}, {"defense.bits": "3"}]})
    assert D.defense_labels(df).tolist() == ["none", "smoothing", "smoothing (EOT 8)", "quantize (no BPDA, bits=5)",
                                             "quantize (bits=3)"]


def test_training_time_relative_to_the_undefended_model():
    sw = Sweep(6)
    _grid(sw, "none", {0.25: 0.05}, time_s=5)
    _grid(sw, "fgsm_at", {0.25: 0.2}, dparams={"eps": 1.25}, model_run_id="m1", time_s=7)
    train = pd.DataFrame({"defense_label": ["none", "fgsm_at"], "model_run_id": ["m0", "m1"],
                          "train_seconds": [100.0, 160.0]})
    data = sw.data(train=train)
    tm = D.times(data).set_index("defense")
    assert tm.train_x_undefended["fgsm_at"] == pytest.approx(1.6) and tm.attack_seconds["fgsm_at"] == 7
    wide = D.wide_table(D.long_table(data), D.masking_flags(data), tm.reset_index())
    assert wide[(wide.defense == "fgsm_at") & (wide.group == "all")]["training s (× undefended)"].iloc[0] == \
        "160 (1.60x)"


def test_write_produces_the_table_the_long_csv_and_the_figure(tmp_path):
    sw = Sweep(6)
    n = 6 * SEG
    r = np.tile(np.array([0.0, 0.02, 0.1, 0.3, np.inf]), n // 5)
    for d, accs in (("none", {0.05: 0.3, 0.25: 0.05}), ("quantize", {0.05: 0.6, 0.25: 0.3})):
        _grid(sw, d, accs, dparams={"bits": 5} if d != "none" else None)
        sw.add(d, "fmn", None, clean_ok=(r > 0).astype(float), adv_ok=np.zeros(n), extra={"min_linf": r},
               dparams={"bits": 5} if d != "none" else None)
    paths = D.write(sw.data(), tmp_path, "test")
    md = paths["md"].read_text()
    assert "## Verdicts" in md and "robustness_curves.png" in md and paths["png"].stat().st_size > 10_000
    long = pd.read_csv(paths["long"])
    assert {"defense", "group", "measure", "attack", "budget_sigma", "snr_db", "acc", "acc_lo", "acc_hi",
            "gain_vs_undefended"} <= set(long.columns)
    assert set(long.group) == {"all", "female", "male"}


def test_load_reads_runs_artifacts_and_training_runs_from_mlflow(tmp_path):
    """The MLflow side (``load``): attack runs by tag, their adversarial.npz (with smoothing's certificates), the
    training runs named by ``model_run_id``; the CLI writes the folder."""
    import mlflow
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("defenses", artifact_location=(tmp_path / "mlruns").as_uri())
    trained = {}
    for name, sec in (("none", 100.0), ("fgsm_at", 170.0)):
        r = client.create_run(exp, tags={"run_type": "train", "dataset": "emodb", "defense": name})
        client.log_metric(r.info.run_id, "train_seconds", sec)
        client.set_terminated(r.info.run_id)
        trained[name] = r.info.run_id
    n = 6 * SEG
    for defense, model, eps, acc in (("none", "none", 0.25, 0.1), ("quantize", "none", 0.25, 0.5),
                                     ("fgsm_at", "fgsm_at", 0.25, 0.3), ("smoothing", "none", 0.25, 0.4)):
        tags = {"run_type": "attack", "dataset": "emodb", "attack": "fgsm", "model_run_id": trained[model],
                "defense": defense, "attack_eot": "8" if defense == "smoothing" else "1",
                "defense_randomized": str(defense == "smoothing").lower()}
        r = client.create_run(exp, tags=tags)
        rid = r.info.run_id
        client.log_param(rid, "attack.eps", str(eps))
        client.log_param(rid, "attack.name", "fgsm")
        if defense != "none":
            client.log_param(rid, "defense.name", defense)
        s = _samples(_draw(0.9, n, 1), _draw(acc, n, 2), 6)
        arrays = dict(label=s.label, gender=s.gender, clean_pred=s.clean_pred, adv_pred=s.adv_pred,
                      test_index=s.test_index, speaker=s.speaker, recording_id=s.recording_id, segment=s.segment,
                      augment=s.augment, fold=s.fold)
        metrics = {"clean_acc": 0.9, "adv_acc": acc, "snr_db": 7.0, "attack_time_s": 3.0, "n_samples": float(n)}
        if defense == "smoothing":
            arrays.update(certified_pred=np.zeros(n, int), certified_radius=np.tile([0.1, 0.6], n // 2))
            metrics.update({"certified_acc_r0": 1.0, "certified_acc_r0.5": 0.5})
        for k, v in metrics.items():
            client.log_metric(rid, k, v)
        np.savez(tmp_path / "adversarial.npz", **arrays)
        client.log_artifact(rid, str(tmp_path / "adversarial.npz"))
        client.set_terminated(rid)
    mlflow.set_tracking_uri(uri)
    data = D.load(uri, "defenses", dataset="emodb", cache=tmp_path / "cache")
    assert set(data.cf.defense_label) == {"none", "quantize", "fgsm_at", "smoothing (EOT 8)"}
    # a local artifact store is read in place: nothing copied into the download cache
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))
    assert collect.local_artifact(uri, rid, "adversarial.npz").is_relative_to(tmp_path / "mlruns")
    remote = client.create_run(client.create_experiment("remote", artifact_location="s3://bucket/x")).info.run_id
    assert collect.local_artifact(uri, remote, "adversarial.npz") is None      # downloaded as before
    tm = D.times(data).set_index("defense")
    assert tm.train_x_undefended["fgsm_at"] == pytest.approx(1.7) and tm.same_models_as_undefended["quantize"]
    long = D.long_table(data)
    cert = long[(long.measure == "certified") & (long.group == "all")].set_index("budget_sigma").acc
    assert cert.to_dict() == {0.0: 1.0, 0.5: 0.5}
    assert D.main(["--tracking-uri", uri, "--dataset", "emodb", "--cache", str(tmp_path / "cache"),
                   "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "defenses.md").exists() and (tmp_path / "out" / "robustness_curves.png").exists()


def test_runs_of_two_protocols_are_refused_with_how_to_pick_one():
    sw = Sweep(6)
    _grid(sw, "none", {0.25: 0.05})
    _grid(sw, "quantize", {0.25: 0.3}, dparams={"bits": 5})
    D.check_one_setting(sw.runs())                                  # the defense alone: fine
    sw.add("none", "fgsm", 0.25)
    sw.rows[-1]["params"]["split.mode"] = "speaker_cv"
    with pytest.raises(SystemExit, match=r"error: the runs differ in split.mode besides the defense; pick one "
                                         r"setting \(--dataset D, --tag params.KEY=VALUE"):
        sw.data()
    raw = pd.DataFrame([{**{f"params.{k}": v for k, v in r["params"].items()}, "run_id": r["run_id"],
                         "status": "FINISHED", "start_time": r["start_time"], "tags.dataset": "emodb",
                         "tags.attack": r["attack"], "tags.defense": r["defense"]} for r in sw.rows])
    with pytest.raises(SystemExit, match="or pool over a key"):
        D.check_one_setting(D.runs_of(raw, "test:", "defenses"))
    D.check_one_setting(D.runs_of(raw, "test:", "defenses", pool_over=["split.mode"]))      # pooled: fine


def test_verdicts_read_the_undefended_model_on_the_defense_s_own_segments():
    """EmoDB: the undefended model attacked on folds 0 and 1 (4 speakers), fgsm_at on fold 0 only. The verdict line
    printed the undefended cell pooled over both folds beside the defense's fold-0 value ("0.736 → 0.627", a cost
    of 0.109, while the paired cost was 0.133); it reads both on the segments both attacked."""
    sw = Sweep(6)
    n = 6 * SEG
    clean = np.r_[np.ones(3 * SEG), np.zeros(3 * SEG)]          # speakers s0-s2 always right, s3-s5 always wrong
    sw.add("none", "fgsm", 0.25, clean_ok=clean, adv_ok=np.zeros(n))
    rid = sw.add("quantize", "fgsm", 0.25, clean_ok=clean, adv_ok=clean, dparams={"bits": 5})
    sw.samples[rid] = _samples(clean[:3 * SEG], clean[:3 * SEG], 3)        # the defense: the first 3 speakers only
    long = D.long_table(sw.data())
    lines = "\n".join(D.verdicts(long, D.masking_flags(sw.data())))
    assert "**quantize**: clean 1.000 → 1.000 (+0.000" in lines          # not 0.500 (all six speakers) → 1.000
    assert "fgsm 0.25 σ (20.0 dB): 0.000 undefended → 1.000" in lines


def test_a_leaderboard_budget_of_zero_is_refused_before_any_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        D.main(["--eps", "0", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--eps must be a budget above 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "none.db").exists()
