"""Every attack config on a tiny trained model; the PixelAttack fix; no-op tagging; adversarial.npz."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import compose_config, seed_cache, tiny_overrides

# small iteration counts so the whole file stays fast; the paper's values are in conf/attack/*.yaml
SMALL = {
    "fgsm": [],
    "bim": ["attack.max_iter=5"],
    "deepfool": ["attack.max_iter=5"],
    "jsma": [],
    "cw_l2": ["attack.binary_search_steps=2", "attack.max_iter=5"],
    "cw_linf": ["attack.max_iter=5"],
    "pixel": ["attack.th=5", "attack.max_iter=3"],
    "boundary": ["attack.max_iter=5", "attack.num_trial=2", "attack.sample_size=4", "attack.init_size=20"],
    "noise": ["attack.eps=0.5"],
    "autoattack": ["attack.eps=0.5", "attack.max_iter=3"],
}


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, corpus_root, tiny_cache):
    """(cfg overrides, trained model, raw test log-Mel, labels, genders) of a tiny trained model (the session's,
    ``tiny_cache``)."""
    from ser_attacks.data import prepare
    from ser_attacks.train import get_or_train
    tmp = seed_cache(tiny_cache, tmp_path_factory.mktemp("attacks"))
    base = tiny_overrides(tmp, corpus_root)
    cfg = compose_config(*base)
    data = prepare(cfg, progress=False)
    tm = get_or_train(cfg, data, None)
    X, y, segs = data.part("test")
    return base, tm, X, y, segs.gender.to_numpy()


@pytest.fixture(scope="module")
def trained(trained_model):
    """(cfg overrides, classifier with the global data range as clip_values, normalized test samples,
    labels, genders)."""
    from ser_attacks.estimator import make_classifier
    base, tm, X, y, genders = trained_model
    clf = make_classifier(tm.model, len(tm.classes), tm.normalizer.value_range, "compiled", 16)
    return base, clf, tm.normalizer.transform(X), y, genders


def _attack_cfg(base, *overrides):
    return compose_config(*base, *overrides)


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.e2e
def test_every_attack_config_runs_and_gives_finite_metrics(trained_model, trained, name):
    """Every attack with the estimator's clip_values as the job gives them: the per-band box (an array per
    input cell), or the global range for the attacks that take floats only (attacks.SCALAR_CLIP_ONLY)."""
    from ser_attacks.attacks import attack_labels, build_attack, clip_values_for, select_samples
    from ser_attacks.estimator import make_classifier
    from ser_attacks.metrics import attack_metrics
    base, _, X, y, genders = trained
    tm = trained_model[1]
    cfg = _attack_cfg(base, f"attack={name}", *SMALL[name])
    clip, box = clip_values_for(cfg.attack, tm.normalizer)
    assert box == ("global" if name in ("jsma", "pixel") else "per_band")
    clf = make_classifier(tm.model, len(tm.classes), clip, "compiled", 16)
    idx = select_samples(genders, 4, 0)
    x, yy, g = X[idx], y[idx], genders[idx]
    attack = build_attack(cfg.attack, clf)
    labels, kind = attack_labels(attack, yy, clf.nb_classes, 0)
    x_adv = np.asarray(attack.generate(x=x, y=labels), dtype=np.float32)
    assert x_adv.shape == x.shape and np.isfinite(x_adv).all()
    lo, hi = clf.clip_values
    assert np.all(x_adv >= lo - 1e-5) and np.all(x_adv <= hi + 1e-5), "adversarial examples stay in the data box"
    m = attack_metrics(yy, clf.predict(x), clf.predict(x_adv), x, x_adv, g)
    for k in ("clean_acc", "adv_acc", "perturbation", "l0", "l2", "linf", "adv_confidence"):
        for sfx in ("", "_female", "_male"):
            assert np.isfinite(m[f"{k}{sfx}"]), f"{name}: {k}{sfx} = {m[f'{k}{sfx}']}"
    assert m["n_samples"] == 4 == m["n_samples_female"] + m["n_samples_male"]
    assert kind == ("random_target" if name == "jsma" else "true")
    if box == "per_band":     # one bound per Mel band, the same in every frame
        assert lo.shape == x.shape[1:] and np.array_equal(lo, np.broadcast_to(lo[:1], lo.shape))
        assert np.unique(lo).size > 1


@pytest.mark.e2e
def test_jsma_targets_differ_from_true_labels(trained):
    from ser_attacks.attacks import attack_labels, build_attack
    base, clf, X, y, _ = trained
    attack = build_attack(_attack_cfg(base, "attack=jsma").attack, clf)
    labels, kind = attack_labels(attack, y, clf.nb_classes, 0)
    assert kind == "random_target" and not np.any(labels.argmax(1) == y)


@pytest.mark.e2e
def test_pixel_attack_flips_predictions_with_at_most_th_cells(trained):
    from ser_attacks.attacks.pixel import SpectrogramPixelAttack
    base, clf, X, y, _ = trained
    right = np.flatnonzero(clf.predict(X).argmax(1) == y)
    assert len(right), "the tiny model must classify some test samples correctly"
    x, yy = X[right][:4], y[right][:4]
    np.random.seed(0)
    th = 10
    attack = SpectrogramPixelAttack(clf, th=th, es=1, max_iter=20, batch_size=16)
    x_adv = attack.generate(x, y=yy)
    flipped = clf.predict(x_adv).argmax(1) != yy
    changed = (x_adv != x).reshape(len(x), -1)
    assert flipped.any(), "the pixel attack must flip at least one correctly classified sample"
    assert np.array_equal(flipped, attack.success)
    assert (changed.sum(1) <= th).all() and (changed.sum(1)[flipped] >= 1).all()
    assert np.array_equal(x_adv[~flipped], x[~flipped]), "a failed sample is returned bit-for-bit"
    lo, hi = clf.clip_values
    d = np.abs(x_adv - x).reshape(len(x), -1).max(1)
    assert (d[flipped] > 0.05 * (hi - lo)).all(), "cells change by amounts comparable to the data range"
    assert attack.max_chunk <= 16, "population images are built and predicted batch_size at a time"


@pytest.mark.e2e
def test_art_pixel_attack_round_trip_is_what_was_wrong(trained):
    """ART's PixelAttack maps inputs to 0-255 and back: every cell moves by float round-off."""
    from art.attacks.evasion import PixelAttack
    base, clf, X, y, _ = trained
    x = X[:1]
    art = PixelAttack(clf, th=1, es=1, max_iter=1)
    back = art.rescale_input((x - clf.clip_values[0]) / (clf.clip_values[1] - clf.clip_values[0]) * 255.0)
    d = np.abs(back - x)
    assert (d > 0).mean() > 0.3 and d.max() < 1e-5     # tiny noise in most cells, no real change


def _run_job(base, *overrides):
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    cfg = _attack_cfg(base, *overrides)
    run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", order_by=["start_time DESC"])
    return client, runs[0]


@pytest.mark.e2e
def test_adversarial_examples_are_saved_and_reloadable(trained, tmp_path):
    """The job's adversarial.npz holds FGSM's examples of the test segments it names (every cell moved by at
    most eps, and by exactly eps where the per-band box does not clip it), and the attack_effect tag is the one
    its own predictions imply."""
    base, _, X, _, _ = trained
    eps = 0.5
    client, r = _run_job(base, "attack=fgsm", f"attack.eps={eps}", "attack.n_samples=4")
    assert r.info.status == "FINISHED"
    assert r.data.tags["clip_box"] == "per_band"
    assert r.data.params["n_samples_attacked"] == "4" and r.data.metrics["n_samples"] == 4
    for k in ("clean_acc", "adv_acc", "success_rate", "perturbation", "l0", "l2", "linf", "adv_confidence",
              "attack_time_s", "time_per_sample_s", "adv_acc_female", "l2_male", "perturbation_db", "linf_db",
              "snr_db", "perturbation_db_female", "snr_db_male"):
        assert k in r.data.metrics, k
    path = client.download_artifacts(r.info.run_id, "adversarial.npz", str(tmp_path))
    with np.load(path) as z:
        assert z["x_adv"].shape == (4, 261, 128, 1)
        assert len(z["test_index"]) == len(z["recording_id"]) == len(z["label"]) == len(z["gender"]) == 4
        assert set(z["gender"]) <= {"female", "male"}
        np.testing.assert_array_equal(z["adv_pred"], z["adv_logits"].argmax(1))
        # FGSM: x_adv = clip(x + eps * sign(grad)) of the test segments the file names
        d = np.abs(z["x_adv"] - X[z["test_index"]])
        assert d.max() == pytest.approx(eps, abs=1e-5) and (d <= eps + 1e-5).all()
        np.testing.assert_allclose(z["perturbation"], d.reshape(4, -1).mean(1), rtol=1e-5)
        assert r.data.metrics["linf"] == pytest.approx(eps, abs=1e-5)
        # the tag follows from the saved predictions (metrics.success_rate and app.attack_effect, recomputed)
        correct = z["clean_pred"] == z["label"]
        flipped = correct & (z["adv_pred"] != z["label"])
        want = "undefined" if not correct.any() else "ok" if flipped.any() else "none"
        assert r.data.tags["attack_effect"] == want, (r.data.tags, z["clean_pred"], z["adv_pred"], z["label"])
        # what the report's speaker-level statistics need, per attacked segment
        for k in ("speaker", "recording_id", "utterance", "augment", "fold", "segment", "emotion",
                  "perturbation_db", "linf_db", "snr_db"):
            assert len(z[k]) == 4, k
        assert all(s.startswith("emodb_") for s in z["speaker"]) and set(z["augment"]) == {"none"}
        assert (z["fold"] == -1).all() and np.isfinite(z["snr_db"]).all() and (z["perturbation_db"] > 0).all()
        columns = set(z.files) - {"x_adv"}
    # tracking.save_x_adv=false (disk: ~10 MB per run of 83 segments): every column but x_adv, the same run identity
    client, r2 = _run_job(base, "attack=fgsm", f"attack.eps={eps}", "attack.n_samples=4", "tracking.save_x_adv=false",
                          "force=true")
    assert r2.data.tags["config_hash"] == r.data.tags["config_hash"]
    with np.load(client.download_artifacts(r2.info.run_id, "adversarial.npz", str(tmp_path / "b"))) as z:
        assert set(z.files) == columns


@pytest.mark.e2e
def test_no_op_attack_is_tagged_none(trained, caplog):
    base = trained[0]
    with caplog.at_level("WARNING", logger="ser_attacks"):
        _, r = _run_job(base, "attack=fgsm", "attack.eps=0", "attack.n_samples=4")
    assert r.info.status == "FINISHED"
    assert r.data.tags["attack_effect"] == "none"
    assert r.data.metrics["perturbation"] == 0
    assert "NO effect" in caplog.text


@pytest.mark.parametrize("name", ["boundary", "pixel"])
@pytest.mark.e2e
def test_stochastic_attacks_rerun_gives_identical_x_adv(trained, name):
    """Issue 13 defect 4: boundary and pixel are seeded from cfg.seed (attack.seed: ${seed}); the same config
    gives the same adversarial examples, another seed other ones."""
    from ser_attacks.attacks import attack_labels, build_attack, select_samples
    base, clf, X, y, genders = trained
    right = np.flatnonzero(clf.predict(X).argmax(1) == y)      # samples an untargeted attack can flip
    idx = right[:4] if name == "pixel" else select_samples(genders, 4, 0)
    x, yy = X[idx], y[idx]
    settings = ["attack.th=10", "attack.max_iter=10"] if name == "pixel" else SMALL[name]
    out = {}
    for seed in (7, 7, 8):
        cfg = _attack_cfg(base, f"attack={name}", *settings, f"seed={seed}")
        assert cfg.attack.seed == seed
        attack = build_attack(cfg.attack, clf)
        labels, _ = attack_labels(attack, yy, clf.nb_classes, seed)
        np.random.seed(seed + 100)             # global NumPy state must not matter
        out.setdefault(seed, []).append(np.asarray(attack.generate(x=x, y=labels)))
    np.testing.assert_array_equal(out[7][0], out[7][1])
    assert (out[7][0] != x).any(), f"{name} must change something for the comparison to mean anything"
    assert not np.array_equal(out[7][0], out[8][0])


def test_attack_effect_tags():
    """none: nothing changed or nothing flipped; undefined: no sample was correct to begin with (success rate
    NaN); ok otherwise."""
    from ser_attacks.app import attack_effect
    x = np.zeros((2, 3, 3, 1), np.float32)
    moved = x + 0.1
    assert attack_effect(x, x.copy(), {"success_rate": 0.5})[0] == "none"
    assert attack_effect(x, moved, {"success_rate": 0.0})[0] == "none"
    effect, reason = attack_effect(x, moved, {"success_rate": float("nan")})
    assert effect == "undefined" and "no attacked sample was classified correctly" in reason
    assert attack_effect(x, moved, {"success_rate": 0.5}) == ("ok", "")


@pytest.mark.e2e
def test_clip_false_gives_art_no_box_and_eps0_is_a_no_op(trained_model):
    """normalization.clip=false: test cells outside the training range stay as they are, ART gets no clip_values,
    so FGSM at eps=0 returns the input exactly (with the training range as clip_values, ART clipped those cells
    and counted it as perturbation)."""
    from art.attacks.evasion import FastGradientMethod

    from ser_attacks.attacks import clip_values_for
    from ser_attacks.estimator import make_classifier
    from ser_attacks.normalization import Normalizer
    base, tm, X, y, _ = trained_model
    norm = Normalizer(tm.normalizer.method, tm.normalizer.standardize, clip=False, state=dict(tm.normalizer.state))
    x = norm.transform(np.asarray(X) + 25.0)            # louder than anything in training: out of range
    assert (x > norm.value_range[1]).any()
    cfg = _attack_cfg(base, "attack=fgsm", "attack.eps=0")
    clip, box = clip_values_for(cfg.attack, norm)
    assert clip is None and box == "none"
    clf = make_classifier(tm.model, len(tm.classes), clip, "compiled", 16)
    assert clf.clip_values is None
    np.testing.assert_array_equal(FastGradientMethod(clf, eps=0.0).generate(x), x)
