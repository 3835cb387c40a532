"""Minimum-norm attack (ser_attacks/attacks/fmn.py) and the measures below saturation (ser_attacks/min_norm.py):
minimal perturbation per segment, robustness curves from ε = 0, one-number summaries, per-segment export."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks import min_norm as mn


# -- the per-segment columns and the curve (no model) -------------------------------------------------------
def test_minimal_columns_are_zero_when_already_wrong_and_inf_when_not_found():
    x = np.zeros((4, 2, 3), np.float32)
    x_adv = x.copy()
    x_adv[1, 0, 0] = 0.3            # flipped
    x_adv[2, 1, 2] = -0.5           # changed but not flipped
    y, clean, adv = np.array([0, 0, 0, 0]), np.array([1, 0, 0, 0]), np.array([1, 2, 0, 0])
    cols = mn.segment_columns(x, x_adv, y, clean, adv, minimal=True, audio_snr=np.array([9.0, 12.0, 3.0, np.inf]))
    assert cols["linf"].tolist() == pytest.approx([0, 0.3, 0.5, 0])
    assert cols["min_linf"].tolist() == pytest.approx([0, 0.3, np.inf, np.inf])
    assert cols["min_snr_db"].tolist() == [np.inf, 12.0, -np.inf, -np.inf]
    assert "min_linf" not in mn.segment_columns(x, x_adv, y, clean, adv, minimal=False)


def _segments(seed=0, n_speakers=6, per=8):
    rng = np.random.default_rng(seed)
    n = n_speakers * per
    label = rng.integers(0, 3, n)
    clean = np.where(rng.random(n) < 0.7, label, (label + 1) % 3)
    r = np.where(clean == label, rng.exponential(0.4, n), 0.0)
    r[(rng.random(n) < 0.1) & (clean == label)] = np.inf
    return pd.DataFrame({"speaker": np.repeat([f"s{i}" for i in range(n_speakers)], per), "label": label,
                         "clean_pred": clean, "r": r, "snr": np.where(clean == label, 20 - 10 * r, np.inf)})


def test_curve_starts_at_speaker_level_clean_accuracy_and_falls():
    seg = _segments()
    c = mn.curve(seg, "r", mn.default_grid(seg.r.to_numpy()))
    clean = seg.assign(ok=seg.clean_pred == seg.label).groupby("speaker").ok.mean().mean()
    assert c.budget.iloc[0] == 0 and c.acc.iloc[0] == pytest.approx(clean)
    assert c.success.iloc[0] == 0
    assert np.all(np.diff(c.acc) <= 1e-12) and np.all(np.diff(c.success) >= -1e-12)
    assert (c.acc_lo <= c.acc + 1e-12).all() and (c.acc <= c.acc_hi + 1e-12).all()
    # saturation: beyond the largest finite minimal perturbation only the never-flipped segments are right
    never = seg.assign(k=np.isinf(seg.r)).groupby("speaker").k.mean().mean()
    assert c.acc.iloc[-1] == pytest.approx(never)


def test_snr_curve_runs_from_quiet_to_loud():
    seg = _segments()
    c = mn.curve(seg, "snr", mn.snr_grid(seg.snr.to_numpy()), snr=True)
    assert np.all(np.diff(c.acc) <= 1e-12)          # louder budgets (lower SNR) leave fewer segments right


def test_summaries_have_intervals_that_cover_the_point():
    seg = _segments()
    s = mn.summaries(seg, "r", e_max=1.25, n_boot=200)
    for k in ("median", "eps_half", "auc"):
        assert s[f"{k}_lo"] <= s[k] <= s[f"{k}_hi"]
    ok = seg.clean_pred == seg.label
    assert s["median"] == pytest.approx(np.median(seg.r[ok]))
    assert 0 < s["auc"] < 1
    # eps_half: accuracy there is at most half the clean accuracy, just below it more
    c = mn.curve(seg, "r", [0.0, s["eps_half"], s["eps_half"] * 0.999])
    assert c.acc.iloc[1] <= c.acc.iloc[0] / 2 + 1e-12 < c.acc.iloc[2]


def test_snr_at_half_and_zero_accuracy_read_the_snr_curve():
    """snr_acc50 / snr_acc0: the SNR at which the speaker-level accuracy of the SNR curve first falls to 50 % and
    to 0 % (quiet to loud); +inf where clean accuracy is already there, -inf where never reached."""
    seg = _segments()
    s = mn.summaries(seg, "r", e_max=1.25, n_boot=200)
    c = mn.curve(seg, "snr", [s["snr_acc50"] + 1e-9, s["snr_acc50"], s["snr_acc0"] + 1e-9, s["snr_acc0"]], snr=True)
    assert c.acc.iloc[1] <= 0.5 + 1e-12 < c.acc.iloc[0] or c.acc.iloc[0] <= 0.5      # first at or below 50 %
    never = np.isneginf(seg.snr).any()
    assert (s["snr_acc0"] == -np.inf) if never else (c.acc.iloc[3] == 0 < c.acc.iloc[2])
    assert s["snr_acc50_lo"] <= s["snr_acc50"] <= s["snr_acc50_hi"]
    # by hand: 2 speakers; speaker a: 20 dB, 10 dB; speaker b: 30 dB, wrong (+inf)
    hand = pd.DataFrame({"speaker": ["a", "a", "b", "b"], "label": [0, 0, 0, 0], "clean_pred": [0, 0, 0, 1],
                         "r": [0.1, 0.2, 0.05, 0.0], "snr": [20.0, 10.0, 30.0, np.inf]})
    h = mn.summaries(hand, "r", e_max=1.0, n_boot=50)
    # clean 0.75 (a: 1, b: 0.5); at 30 dB b's 30-dB segment flips → (1 + 0) / 2 = 0.5; at 10 dB all flipped
    assert h["snr_acc50"] == 30.0 and h["snr_acc0"] == 10.0
    assert np.isnan(h["snr_acc50_lo"]) and np.isnan(h["median_hi"])        # 2 speakers: no interval (†)
    wrong = hand.assign(clean_pred=[1, 0, 1, 1], snr=[np.inf, 10.0, np.inf, np.inf])        # clean 0.25
    wrong = pd.concat([wrong, wrong.iloc[2:].assign(speaker="c")])                          # 3 speakers: intervals
    w = mn.summaries(wrong, "r", e_max=1.0, n_boot=50)
    assert w["snr_acc50"] == np.inf and w["snr_acc50_hi"] == np.inf        # an interval reaching ∞ reads ∞, not NaN
    reps = np.array([[1.0], [2.0], [np.inf], [np.inf]])
    assert mn._ci(reps, 10)[1][0] == np.inf and np.isfinite(mn._ci(reps, 10)[0][0])
    never_flipped = hand.assign(snr=[20.0, -np.inf, 30.0, np.inf])
    assert mn.summaries(never_flipped, "r", e_max=1.0, n_boot=50)["snr_acc0"] == -np.inf
    assert np.isnan(mn.summaries(hand.assign(snr=np.nan), "r", e_max=1.0, n_boot=50)["snr_acc50"])
    assert "snr_acc50" not in mn.summaries(hand.drop(columns="snr"), "r", e_max=1.0, n_boot=50)


def test_norm_of_names_the_minimised_norm():
    assert mn.norm_of("fmn", "inf") == "linf" and mn.norm_of("fmn", "2") == "l2"
    assert mn.norm_of("cw_linf") == "linf" and mn.norm_of("deepfool") == "l2" and mn.norm_of("bim") is None


# -- the attack on a model with a known answer ------------------------------------------------------------
def _linear(n_classes):
    import keras

    from ser_attacks.estimator import make_classifier
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(n_classes)])
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (10, 4, 3, 1)).astype(np.float32)
    clf = make_classifier(model, n_classes, (np.float32(-50), np.float32(50)))
    return model, clf, x


@pytest.fixture(scope="module")
def linear():
    """A linear 3-class model on 4x3x1 inputs (a box that does not bind)."""
    return _linear(3)


def _exact(model, x, y, ord_, n_classes=3):
    w, b = (v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in model.layers[-1].weights)
    flat = x.reshape(len(x), -1).astype(np.float64)
    z = flat @ w + b
    out = []
    for i in range(len(x)):
        d = [abs(z[i, y[i]] - z[i, j]) / np.linalg.norm(w[:, y[i]] - w[:, j], ord=ord_) for j in range(n_classes)
             if j != y[i]]
        out.append(min(d))
    return np.array(out)


@pytest.mark.parametrize("norm, ord_", [("inf", 1), (2, 2)])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fmn_finds_the_exact_minimal_perturbation_of_a_linear_model(norm, ord_, n_classes):
    """Exact minimal distance of a linear model: min_j |z_y − z_j| / ‖w_y − w_j‖_dual. With two classes FMN
    finds it within 5% on every sample; with three it follows the runner-up class (as FMN does), whose
    boundary need not be the nearest: never below the minimum, within 5% on most samples."""
    from ser_attacks.attacks.fmn import FastMinimumNorm
    model, clf, x = _linear(n_classes)
    y = clf.predict(x).argmax(1)
    x_adv = FastMinimumNorm(clf, norm=norm, max_iter=100, verbose=False).generate(x, y)
    assert (clf.predict(x_adv).argmax(1) != y).all()
    d = (x_adv - x).reshape(len(x), -1)
    found = np.abs(d).max(1) if norm == "inf" else np.linalg.norm(d, axis=1)
    exact = _exact(model, x, y, ord_, n_classes)
    assert np.all(found >= exact * (1 - 1e-3))            # nothing below the true minimum
    close = found <= exact * 1.05
    assert close.all() if n_classes == 2 else close.mean() >= 0.7


def test_fmn_is_no_larger_than_a_successful_fixed_budget_attack(linear):
    from art.attacks.evasion import BasicIterativeMethod

    from ser_attacks.attacks.fmn import FastMinimumNorm
    model, clf, x = linear
    y = clf.predict(x).argmax(1)
    r = np.abs((FastMinimumNorm(clf, max_iter=100, verbose=False).generate(x, y) - x).reshape(len(x), -1)).max(1)
    for eps in (0.05, 0.1, 0.2, 0.4):
        bim = BasicIterativeMethod(clf, eps=eps, eps_step=eps / 10, max_iter=30, verbose=False).generate(x, y)
        ok = clf.predict(bim).argmax(1) != y
        assert np.all(r[ok] <= eps * (1 + 1e-4))


@pytest.mark.parametrize("kwargs, word", [({"norm": 1}, "norm"), ({"max_iter": 0}, "max_iter"),
                                          ({"learning_rate": -1.0}, "learning_rate"), ({"gamma": 1.5}, "gamma"),
                                          ({"per_sample": "yes"}, "per_sample"), ({"batch_size": 0}, "batch_size")])
def test_fmn_rejects_bad_parameters_before_any_work(linear, kwargs, word):
    from ser_attacks.attacks.fmn import FastMinimumNorm
    with pytest.raises(ValueError, match=word):
        FastMinimumNorm(linear[1], **kwargs)


def test_fmn_config_is_checked_before_the_job():
    from ser_attacks.attacks import AttackConfigError, validate
    from tests.helpers import compose_config
    validate(compose_config("attack=fmn").attack)
    with pytest.raises(AttackConfigError, match="gamma"):
        validate(compose_config("attack=fmn", "attack.gamma=2").attack)


# -- end to end -------------------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.timeout(1800)      # two sweeps, an export and a report: ~15 min at load average 28 on 2 cores
def test_fmn_end_to_end_exports_minimal_perturbations_below_bim(tmp_path, corpus_root):
    """``attack=fmn`` and a BIM sweep on the same segments → MLflow metrics + curve artifact, the export's
    min_* columns, min_linf ≤ BIM's perturbation wherever BIM succeeded, the curve starting at clean accuracy."""
    from mlflow.tracking import MlflowClient

    from tests.helpers.report import cli, sweep
    fmn = sweep(tmp_path, corpus_root, "attack=fmn", "attack.max_iter=20", "report=false", "input.realize=false")
    bim = sweep(tmp_path, corpus_root, "attack=bim", "attack.eps=0.1,0.5", "attack.max_iter=5",
                "attack.eps_step=0.02", "report=false", "input.realize=false")
    out = tmp_path / "export"
    cli(tmp_path, "ser_attacks.report.export", "--sweep", fmn, "--sweep", bim, "--out", str(out))
    seg = pd.read_csv(out / "segments.csv.gz", dtype={"speaker": str})
    for c in mn.COLUMNS:
        assert c in seg.columns
    f = seg[seg.attack == "fmn"].set_index("test_index")
    assert f.min_linf.notna().all() and seg[seg.attack == "bim"].min_linf.isna().all()
    assert ((f.clean_pred != f.label) == (f.min_linf == 0)).all()
    for _, b in seg[seg.attack == "bim"].groupby("config"):
        b = b.set_index("test_index")
        won = b[(b.adv_pred != b.label) & (b.clean_pred == b.label)]
        assert (f.loc[won.index].min_linf <= won.linf + 1e-4).all()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("ser-attacks").experiment_id],
                             "tags.run_type = 'attack' and tags.attack = 'fmn'")[0]
    assert {"minnorm_median", "minnorm_auc", "minnorm_auc_lo"} <= set(run.data.metrics)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"robustness_curve.csv", "robustness_curve.png"} <= arts
    curve = pd.read_csv(client.download_artifacts(run.info.run_id, "robustness_curve.csv", str(tmp_path)))
    first = curve[(curve.gender == "all") & (curve.axis == "sigma")].iloc[0]
    speaker_clean = f.assign(ok=f.clean_pred == f.label).groupby("speaker").ok.mean().mean()
    assert first.budget == 0 and first.acc == pytest.approx(speaker_clean, abs=1e-4)
    # the report from the exported files: the section, its figure and its table
    rep = tmp_path / "report"
    cli(tmp_path, "ser_attacks.report", "--from-results", str(out), "--out", str(rep))
    md = (rep / "report.md").read_text()
    assert "## Measures below saturation" in md and "figures/min_norm_curves.png" in md
    # the study's questions on the minimal perturbations follow it: FMN's curve against the BIM runs
    assert "### The questions on the minimal perturbations" in md and "| fmn | bim | 0.1 |" in md
    summary = pd.read_csv(rep / "tables" / "min_norm_summary.csv")
    assert set(summary.attack) == {"fmn"} and set(summary.gender) == {"all", "female", "male"}
    assert (rep / "figures" / "robustness_curves.png").exists()


# -- the report's figures ----------------------------------------------------------------------------------
def _capture(monkeypatch):
    from ser_attacks.report import figures
    got = {}

    def save(fig, path, tight=True):
        got["fig"] = fig
        return path
    monkeypatch.setattr(figures, "_save", save)
    return figures, got


def test_robustness_curves_start_at_clean_keep_leaky_apart_and_draw_no_lone_dots(monkeypatch, tmp_path):
    """Issue 29: no ε = 0 start, leaky runs as lone dots at ε 1.25, a legend over the data in every panel."""
    figures, got = _capture(monkeypatch)
    rows = []
    for setting, eps_list in (("emodb (split=speaker_cv)", (0.25, 0.5, 1.25)), ("emodb (split=paper)", (1.25,))):
        for e in eps_list:
            r = {"attack": "bim", "setting": setting, "config": f"eps={e}", "x": e, "x_param": "eps"}
            for sfx in ("", "_female", "_male"):
                r.update({f"adv_acc{sfx}": 0.5 - 0.3 * e, f"clean_acc{sfx}": 0.8})
            r.update(adv_acc_lo=0.1, adv_acc_hi=0.6, clean_acc_lo=0.7, clean_acc_hi=0.9)
            rows.append(r)
    figures.robustness_curves(pd.DataFrame(rows), tmp_path / "c.png")
    fig = got["fig"]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["bim", "bim — leaky split=paper (one budget)"]
    for ax in panels:
        assert ax.get_legend() is None                       # the one legend is outside the panels
        for line in [ln for ln in ax.get_lines() if ln.get_marker() not in ("_", "|")]:   # not error-bar caps
            x = np.asarray(line.get_xdata(), float)
            assert len(x) >= 2 and x[0] == 0                 # from the clean input, never a lone dot
            assert np.asarray(line.get_ydata(), float)[0] == pytest.approx(0.8)
    assert sum(ax.get_legend() is not None for ax in fig.axes) + len(fig.legends) == 1


def test_min_norm_curves_figure_has_sigma_and_snr_axes_and_one_legend(monkeypatch, tmp_path):
    figures, got = _capture(monkeypatch)
    seg = _segments()
    parts = []
    for attack in ("fmn", "deepfool"):
        for g in ("all", "female", "male"):
            for axis, col, grid in (("sigma", "r", mn.default_grid(seg.r.to_numpy())),
                                    ("snr_db", "snr", mn.snr_grid(seg.snr.to_numpy()))):
                parts.append(mn.curve(seg, col, grid, snr=axis == "snr_db", n_boot=50).assign(
                    setting="synthetic", leaky=False, attack=attack, config="", norm="linf", gender=g, axis=axis))
    figures.min_norm_curves(pd.concat(parts), tmp_path / "m.png")
    fig = got["fig"]
    assert len(fig.axes) == 2 and len(fig.legends) == 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert fig.axes[1].xaxis_inverted()                      # louder (lower SNR) to the right
