"""Randomized smoothing (ser_attacks/defenses/smoothing.py) on a closed-form classifier: a linear two-class model
whose smoothed probability is known analytically (pA = Φ(margin / σ), the certified radius can never exceed the
distance to the decision boundary); the Clopper–Pearson bound, abstention at a tie, seeded draws, parameter and
input checks before any model call, the SNR reading of a radius, the noise layer, the logged curve."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta, norm

from ser_attacks.defenses.smoothing import (
    ABSTAIN,
    RandomizedSmoothing,
    Smoothed,
    certification_summary,
    certified_accuracy,
    log_certification,
    radius_snr_db,
)

SHAPE = (4, 3, 1)
W = np.zeros(SHAPE, np.float32)
W[0, 0, 0] = 1.0                     # unit normal: the margin w·x is the L2 distance to the boundary


class Linear:
    """logits (0, w·x): class 1 where w·x > 0; counts its forward passes."""

    def __init__(self):
        self.calls = 0

    def __call__(self, xb):
        self.calls += 1
        m = np.tensordot(np.asarray(xb, np.float64), W, axes=W.ndim)
        return np.stack([np.zeros_like(m), m], axis=1)


def points(margins) -> np.ndarray:
    x = np.zeros((len(margins), *SHAPE), np.float32)
    x[:, 0, 0, 0] = margins
    x[:, 1:, :, 0] = 0.3               # off the normal direction: irrelevant to the classifier
    return x


def test_certified_radius_is_sigma_times_phi_inverse_of_the_clopper_pearson_bound():
    """R = σ Φ⁻¹(p̲A) with p̲A the one-sided Clopper–Pearson bound of the counts, never above the analytic radius
    (the distance |w·x| to the boundary = σ Φ⁻¹(pA)) on 30 segments; a point estimate nA/n in place of the bound
    would exceed it on about half of them (and is checked to)."""
    sigma, n, alpha = 0.5, 2000, 0.001
    margins = np.linspace(-0.9, 0.9, 30)
    margins = margins[np.abs(margins) > 0.1]
    sm = Smoothed(Linear(), 2, sigma=sigma, n0=50, n=n, alpha=alpha, batch=256, seed=3)
    cert = sm.certify(points(margins))
    truth = (margins > 0).astype(int)
    assert (cert.pred == truth).all()                              # far enough from the boundary: all certified
    k = cert.counts[np.arange(len(margins)), cert.pred]
    p_lower = beta.ppf(alpha, k, n - k + 1)
    np.testing.assert_allclose(cert.p_lower, p_lower, rtol=1e-12)
    np.testing.assert_allclose(cert.radius, sigma * norm.ppf(p_lower), rtol=1e-12)
    analytic = np.abs(margins)                                     # σ Φ⁻¹(Φ(|m|/σ)) = |m|
    assert (cert.radius <= analytic).all() and (cert.radius > 0.5 * analytic - 0.1).all()
    point = sigma * norm.ppf(k / n)                                # what the point estimate would claim
    assert (point > analytic).sum() >= 5


def test_a_near_tie_abstains_under_the_bound_but_not_under_the_point_estimate():
    """pA = 0.52: the point estimate certifies a radius; the lower bound at alpha 0.001 with n = 1000 stays below
    1/2, so CERTIFY abstains (radius 0) and PREDICT abstains too."""
    sigma = 0.5
    m = sigma * norm.ppf(0.52)
    sm = Smoothed(Linear(), 2, sigma=sigma, n0=100, n=1000, alpha=0.001, batch=500, seed=0)
    cert = sm.certify(points([m, m, m]))
    assert (cert.pred == ABSTAIN).all() and (cert.radius == 0).all() and (cert.p_lower <= 0.5).all()
    assert (cert.counts[:, 1] / 1000 > 0.5).sum() >= 2             # the point estimate would have certified
    assert (sm.predict(points([m, m, m])) == ABSTAIN).all()


def test_classes_that_tie_abstain_and_a_clear_margin_predicts():
    sm = Smoothed(Linear(), 2, sigma=0.25, n0=100, n=1000, alpha=0.01, batch=300, seed=1)
    x = points([0.0, 0.0, 1.0, -1.0])                              # on the boundary: pA = 1/2 exactly
    cert = sm.certify(x)
    assert cert.pred.tolist()[:2] == [ABSTAIN, ABSTAIN] and cert.pred.tolist()[2:] == [1, 0]
    assert (cert.radius[:2] == 0).all()
    assert sm.predict(x).tolist() == [ABSTAIN, ABSTAIN, 1, 0]
    # every draw in the top class: p̲A = alpha^(1/n), R = σ Φ⁻¹(alpha^(1/n))
    assert cert.counts[2, 1] == 1000
    assert cert.radius[2] == pytest.approx(0.25 * norm.ppf(0.01 ** (1 / 1000)), rel=1e-9)


def test_draws_are_seeded_and_independent_of_the_batch_size():
    x = points([0.05, -0.02, 0.1])
    a = Smoothed(Linear(), 2, sigma=0.3, n0=20, n=400, alpha=0.01, batch=400, seed=7).certify(x)
    b = Smoothed(Linear(), 2, sigma=0.3, n0=20, n=400, alpha=0.01, batch=33, seed=7).certify(x)
    c = Smoothed(Linear(), 2, sigma=0.3, n0=20, n=400, alpha=0.01, batch=400, seed=8).certify(x)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.radius, b.radius)
    assert not np.array_equal(a.counts, c.counts)


@pytest.mark.parametrize("kw,match", [
    ({"sigma": 0}, "sigma must be > 0"), ({"sigma": float("nan")}, "sigma must be finite"),
    ({"n0": 0}, "n0"), ({"n": 50, "n0": 100}, "must exceed n0"), ({"n": 10.5}, "integer"),
    ({"alpha": 0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"batch": 0}, "batch")])
def test_bad_parameters_raise_one_clear_error_before_any_model_call(kw, match):
    f = Linear()
    with pytest.raises(ValueError, match=match):
        Smoothed(f, 2, **{"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.01, "batch": 10, **kw})
    with pytest.raises(ValueError, match=match):
        RandomizedSmoothing(**{"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.01, "batch": 10, **kw})
    assert f.calls == 0


@pytest.mark.parametrize("x", [points([np.nan]), np.zeros((0, *SHAPE)), np.zeros(3), points([np.inf])])
def test_a_wrong_input_raises_before_any_sampling(x):
    f = Linear()
    sm = Smoothed(f, 2, sigma=0.25, n0=10, n=100, alpha=0.01, batch=10)
    for fn in (sm.certify, sm.predict):
        with pytest.raises(ValueError, match="defense smoothing: x"):
            fn(x)
    assert f.calls == 0


def test_a_logits_function_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="expected"):
        Smoothed(Linear(), 3, sigma=0.25, n0=10, n=100, alpha=0.01, batch=10).certify(points([1.0]))


def test_radius_as_snr_db_is_the_evenly_spread_change_in_the_projects_units():
    """``original`` without standardization: a model-input unit is 1 dB, so the radius r spread over d cells lowers
    every cell by a = r/√d dB, whose SNR (metrics.db_units) is −20 log10(1 − 10^(−a/20)) whatever the segment."""
    from ser_attacks.normalization import Normalizer
    rng = np.random.default_rng(0)
    X = np.minimum(-40 + 15 * rng.standard_normal((3, 20, 8)), 0).astype(np.float32)
    nz = Normalizer("original", standardize=False, clip=False).fit(X)
    r = np.array([0.0, 1.0, 4.0])
    s = radius_snr_db(r, nz, X)
    a = r[1:] / np.sqrt(160)
    assert s[0] == np.inf
    np.testing.assert_allclose(s[1:], -20 * np.log10(1 - 10 ** (-a / 20)), rtol=1e-4)
    # standardized: the per-band std scales the change (a bigger dB change, a lower SNR)
    st = Normalizer("original", standardize=True, clip=False).fit(X)
    assert (radius_snr_db(r, st, X)[1:] < s[1:]).all() and np.all(np.diff(radius_snr_db(r, st, X)) < 0)
    with pytest.raises(ValueError, match="radii"):
        radius_snr_db(r[:2], nz, X)


def test_the_noise_layer_follows_the_defense_contract():
    import tensorflow as tf
    assert (RandomizedSmoothing.domain, RandomizedSmoothing.randomized, RandomizedSmoothing.differentiable) == \
        ("spectrogram", True, True)
    x = tf.zeros((64, *SHAPE))
    a = RandomizedSmoothing(sigma=0.5, seed=3, stage="inference", eot=4, name="smoothing")
    out = a(x).numpy()
    assert out.std() == pytest.approx(0.5, rel=0.1) and np.abs(out.mean()) < 0.05
    assert not np.array_equal(out, a(x).numpy())                        # a fresh draw per call
    np.testing.assert_array_equal(out, RandomizedSmoothing(sigma=0.5, seed=3)(x).numpy())   # seeded
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(a(x) * 2.0)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.full(x.shape, 2.0))
    sm = a.smoothed(Linear(), 2)
    assert (sm.sigma, sm.n0, sm.n, sm.alpha, sm.seed) == (0.5, 100, 1000, 0.001, 3)


class FakeTracking:
    def __init__(self):
        self.metrics, self.texts, self.figures = {}, {}, {}

    def log_metrics(self, run_id, metrics):
        self.metrics.update(metrics)

    def log_text(self, run_id, text, name):
        self.texts[name] = text

    def log_figure(self, run_id, fig, name):
        self.figures[name] = fig

    from ser_attacks.tracking.runs import Tracking
    log_curve = Tracking.log_curve          # the real one: table and figure through the two calls above


def _segs(n_spk=4, per=5):
    return pd.DataFrame({"speaker": np.repeat([f"s{i}" for i in range(n_spk)], per),
                         "gender": np.repeat(["female", "male"] * (n_spk // 2), per)})


def test_certified_accuracy_counts_correct_certified_segments_at_each_radius_speaker_level():
    """Speaker s0 has all 5 segments certified correct at radius 1, the others none: speaker level 1/4 at r ≤ 1 (a
    segment-level mean would say 5/20 too, but s1's 10 extra segments would pull it down: they do not here);
    abstentions and wrong classes never count, also at r = 0."""
    from ser_attacks.defenses.smoothing import Certificate
    segs = pd.concat([_segs(), pd.DataFrame({"speaker": ["s1"] * 10, "gender": ["male"] * 10})], ignore_index=True)
    n = len(segs)
    y = np.zeros(n, int)
    pred = np.full(n, ABSTAIN)
    pred[:5] = 0
    pred[5:8] = 1                                            # s1: certified, but the wrong class
    rad = np.where(pred != ABSTAIN, 1.0, 0.0)
    cert = Certificate(pred, rad, np.full(n, 0.9), np.zeros((n, 2), int))
    metrics, table = certification_summary(cert, np.full(n, 10.0), y, segs, radii=(0.0, 1.0, 1.5), n_boot=200)
    assert metrics["certified_acc_r0"] == pytest.approx(0.25) and metrics["certified_acc_r1"] == pytest.approx(0.25)
    assert metrics["certified_acc_r1.5"] == 0.0
    assert certified_accuracy(pred, rad, y, 1.0) == pytest.approx(5 / n)
    assert metrics["smoothing_abstain_rate"] == pytest.approx((n - 8) / n)
    assert set(table.axis) == {"sigma", "snr_db"} and set(table.gender) == {"all", "female", "male"}
    assert {"budget", "acc", "acc_lo", "acc_hi", "n_speakers"} <= set(table.columns)


def test_log_certification_logs_metrics_the_curve_and_returns_per_segment_columns():
    from ser_attacks.normalization import Normalizer
    rng = np.random.default_rng(1)
    segs = _segs()
    margins = rng.uniform(-1, 1, len(segs))
    x = points(margins)
    y = (margins > 0).astype(int)
    y[:3] = 1 - y[:3]                                        # three labels the model gets wrong
    X_db = np.minimum(-40 + 10 * rng.standard_normal((len(segs), 4, 3)), 0).astype(np.float32)
    nz = Normalizer("original", standardize=True, clip=False).fit(X_db)
    tr = FakeTracking()
    cfg = {"name": "smoothing", "stage": "inference", "sigma": 0.5, "n0": 20, "n": 300, "alpha": 0.01, "batch": 100,
           "seed": 0}
    cols = log_certification(tr, "run", Linear(), x, y, segs, cfg, normalizer=nz, X_db=X_db)
    assert set(cols) == {"certified_pred", "certified_radius", "certified_p_lower", "certified_snr_db"}
    assert all(len(v) == len(segs) for v in cols.values())
    ok = cols["certified_pred"] == y
    assert not ok[:3].any()
    assert tr.metrics["certified_acc_r0"] == pytest.approx(
        pd.Series(ok).groupby(segs.speaker).mean().mean())
    assert tr.metrics["smoothing_forward_passes"] == len(segs) * 320
    assert "certified_accuracy.csv" in tr.texts and "certified_accuracy.png" in tr.figures
    assert np.isfinite(cols["certified_snr_db"][cols["certified_radius"] > 0]).all()
    again = log_certification(FakeTracking(), "run", Linear(), x, y, segs, cfg, normalizer=nz, X_db=X_db)
    for k in cols:
        np.testing.assert_array_equal(cols[k], again[k])


@pytest.mark.e2e
def test_an_attack_job_with_defense_smoothing_logs_its_certification(tmp_path, corpus_root, tiny_cache):
    """``defense=smoothing``: the job certifies its attacked segments with the base model and logs the metrics,
    the curve (CSV + PNG) and the per-segment radii in adversarial.npz; a job without the defense logs none."""
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    from tests.helpers import compose_config, seed_cache, tiny_overrides
    seed_cache(tiny_cache, tmp_path)                 # the session's trained tiny model: loaded, not trained again
    cfg = compose_config(*tiny_overrides(tmp_path, corpus_root), "attack=fgsm", "attack.n_samples=4",
                         "defense=smoothing", "defense.n0=10", "defense.n=60", "defense.batch=30")
    run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    r = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'")[0]
    assert r.info.status == "FINISHED"
    for k in ("certified_acc_r0", "certified_acc_r0.25", "certified_acc_r0_lo", "smoothing_abstain_rate",
              "certify_time_s"):
        assert k in r.data.metrics, k
    assert r.data.metrics["smoothing_forward_passes"] == 4 * 70
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"certified_accuracy.csv", "certified_accuracy.png", "adversarial.npz"} <= names
    with np.load(client.download_artifacts(r.info.run_id, "adversarial.npz", str(tmp_path))) as z:
        assert len(z["certified_radius"]) == len(z["certified_pred"]) == len(z["label"]) == 4
        assert ((z["certified_radius"] > 0) == (z["certified_pred"] >= 0)).all()
    run(compose_config(*tiny_overrides(tmp_path, corpus_root), "attack=fgsm", "attack.n_samples=4", "attack.eps=0.3"))
    r2 = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", order_by=["start_time DESC"])[0]
    assert not any(k.startswith("certified") for k in r2.data.metrics)
