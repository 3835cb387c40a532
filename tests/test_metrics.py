"""Metric definitions on hand-checked numbers."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.attacks import select_samples
from ser_attacks.metrics import attack_metrics


def test_attack_metrics_by_gender():
    y = np.array([0, 1, 2, 0])
    genders = np.array(["female", "female", "male", "male"])
    clean = np.eye(3)[[0, 1, 1, 0]] * 5          # correct, correct, wrong, correct
    adv = np.eye(3)[[1, 1, 2, 2]] * 5            # flipped, kept, (now right), flipped
    x = np.zeros((4, 2, 2, 1), np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 0.4
    x_adv[3] = -0.1
    m = attack_metrics(y, clean, adv, x, x_adv, genders)
    assert m["clean_acc"] == 0.75 and m["adv_acc"] == 0.5
    assert m["clean_acc_female"] == 1.0 and m["adv_acc_female"] == 0.5
    assert m["clean_acc_male"] == 0.5 and m["adv_acc_male"] == 0.5
    # segment 2 was wrong and the attack moved it into its true class: adversarial accuracy counts it, robust
    # accuracy (right before and after) does not
    assert m["robust_acc"] == 0.25 and m["n_correct_both"] == 1 and m["n_correct_adv"] == 2
    assert m["robust_acc_female"] == 0.5 and m["robust_acc_male"] == 0.0
    assert m["success_rate"] == pytest.approx(2 / 3)          # 2 of the 3 correct ones flipped
    assert m["success_rate_male"] == 1.0 and m["success_rate_female"] == 0.5
    assert m["perturbation"] == pytest.approx((0.4 + 4 * 0.1) / 16)
    assert m["perturbation_female"] == pytest.approx(0.4 / 8)
    assert m["l0"] == pytest.approx((0.25 + 0 + 0 + 1) / 4)
    assert m["linf"] == pytest.approx((0.4 + 0.1) / 4)
    assert m["l2"] == pytest.approx((0.4 + 0.2) / 4)
    assert m["n_samples_female"] == 2 and m["n_samples"] == 4
    assert m["adv_confidence"] == pytest.approx(np.exp(5) / (np.exp(5) + 2))


def test_select_samples_is_stratified_by_gender_and_deterministic():
    g = np.array(["female"] * 30 + ["male"] * 10)
    idx = select_samples(g, 8, seed=0)
    assert len(idx) == 8 and (g[idx] == "female").sum() == 6
    assert np.array_equal(idx, select_samples(g, 8, seed=0))
    assert len(select_samples(g, None, 0)) == 40 and len(select_samples(g, 100, 0)) == 40


def test_select_samples_keeps_every_gender_and_emotion_and_uses_its_own_seed():
    """Gender x emotion strata: a rare gender is never dropped (the gender-only rule gave 30 F / 3 M, n=5 → 5 F),
    every emotion of a gender appears once n allows, and the choice depends on the sample seed only."""
    g = np.array(["female"] * 30 + ["male"] * 3)
    idx = select_samples(g, 5, seed=0)
    assert len(idx) == 5 and set(g[idx]) == {"female", "male"}
    emo = np.array((["happy", "sad", "neutral"] * 10) + ["happy", "sad", "sad"])
    idx = select_samples(g, 12, seed=0, emotions=emo)
    strata = {f"{a}|{b}" for a, b in zip(g[idx], emo[idx])}
    assert len(idx) == 12 and (g[idx] == "male").sum() == 2
    assert strata == {"female|happy", "female|sad", "female|neutral", "male|happy", "male|sad"}
    assert np.array_equal(idx, select_samples(g, 12, seed=0, emotions=emo))
    assert not np.array_equal(idx, select_samples(g, 12, seed=1, emotions=emo))


def _select_v1(genders, n, seed, emotions):
    """The gender x emotion selection as it was before attack.sample_strata (study v1's segments)."""
    from ser_attacks.attacks import _allocate
    idx = np.arange(len(genders))
    rng, chosen = np.random.default_rng(seed), []
    g_values, g_counts = np.unique(genders, return_counts=True)
    for g, k_g in zip(g_values, _allocate(g_counts, n)):
        in_g = genders == g
        e_values, e_counts = np.unique(emotions[in_g], return_counts=True)
        for e, k in zip(e_values, _allocate(e_counts, int(k_g))):
            if k:
                chosen.append(rng.choice(idx[in_g & (emotions == e)], int(k), replace=False))
    return np.sort(np.concatenate(chosen))


def test_select_samples_by_speaker_keeps_every_speaker_and_the_gender_default_is_unchanged():
    """attack.sample_strata=speaker (study v2's subsample): every test speaker represented, in proportion within
    its gender; without speakers, exactly the segments the gender x emotion rule chose before (v1 reproduces)."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        n_seg = int(rng.integers(20, 80))
        g = rng.choice(["female", "male"], n_seg)
        emo = rng.choice(["angry", "happy", "sad", "neutral", "bored"], n_seg)
        n = int(rng.integers(2, n_seg))
        assert np.array_equal(select_samples(g, n, trial, emo), _select_v1(g, n, trial, emo))
    # RAVDESS-like fold: 2 F + 2 M, one speaker with many more segments; gender x emotion alone can skip a speaker
    spk = np.array(["f1"] * 60 + ["f2"] * 6 + ["m1"] * 30 + ["m2"] * 30)
    g = np.where(np.char.startswith(spk, "f"), "female", "male")
    emo = np.array(["a", "b", "c"] * 42)
    idx = select_samples(g, 8, 0, emo, spk)
    assert len(idx) == 8 and set(spk[idx]) == {"f1", "f2", "m1", "m2"}
    assert sorted(np.unique(spk[idx], return_counts=True)[1].tolist()) == [1, 2, 2, 3]
    assert np.array_equal(idx, select_samples(g, 8, 0, emo, spk))
    skipped = [s for s in range(20) if "f2" not in set(spk[select_samples(g, 4, s, emo)])]
    assert skipped and all("f2" in set(spk[select_samples(g, 4, s, emo, spk)]) for s in skipped)


def test_sample_strata_checked_and_neutral_in_the_identity(cfg_factory):
    from ser_attacks.attacks import AttackConfigError, check_params
    from ser_attacks.identity import config_hash
    check_params({"name": "fgsm", "sample_strata": "speaker"})
    with pytest.raises(AttackConfigError, match="attack.sample_strata=age"):
        check_params({"name": "fgsm", "sample_strata": "age"})
    base = cfg_factory()
    assert config_hash(base) == config_hash(cfg_factory("attack.sample_strata=null"))
    assert config_hash(base) != config_hash(cfg_factory("attack.sample_strata=speaker"))


def test_attack_job_selects_with_the_sample_seed_not_the_training_seed(cfg_factory):
    a, b = cfg_factory("seed=1"), cfg_factory("seed=2")
    assert a.attack.sample_seed == b.attack.sample_seed == 0
    assert cfg_factory("attack.sample_seed=3").attack.sample_seed == 3


def test_perturbation_in_db_and_snr_on_hand_numbers():
    """δ of 2 model units in a band with σ = 3 dB is 6 dB; SNR of a uniform +6 dB change of every cell:
    10·log10(Σ P / Σ (√P' − √P)²) = −20·log10(10^(6/20) − 1) for any spectrogram."""
    from ser_attacks.metrics import db_units
    from ser_attacks.normalization import Normalizer
    rng = np.random.default_rng(0)
    X = (-40 + 10 * rng.standard_normal((4, 5, 2)) * np.array([1.0, 3.0])).astype(np.float32)
    norm = Normalizer("original", True).fit(X)
    delta = np.zeros((4, 5, 2, 1), np.float32)
    delta[:, :, 1] = 2.0
    d_db = norm.to_db(delta, X)
    np.testing.assert_allclose(d_db[:, :, 1], 2.0 * norm.state["std"][1], rtol=1e-6)
    assert (d_db[:, :, 0] == 0).all()
    u = db_units(np.full(X.shape, 6.0), X)
    np.testing.assert_allclose(u["snr_db"], -20 * np.log10(10 ** (6 / 20) - 1), rtol=1e-6)
    np.testing.assert_allclose(u["perturbation_db"], 6.0) and np.testing.assert_allclose(u["linf_db"], 6.0)
    assert np.isinf(db_units(np.zeros(X.shape), X)["snr_db"]).all()     # unchanged: infinite SNR
    # a change in a quiet cell costs less SNR than the same dB change in a loud one
    quiet, loud = np.zeros(X.shape), np.zeros(X.shape)
    i = np.unravel_index(np.argmin(X[0]), X[0].shape)
    j = np.unravel_index(np.argmax(X[0]), X[0].shape)
    quiet[(0, *i)], loud[(0, *j)] = 6.0, 6.0
    assert db_units(quiet, X)["snr_db"][0] > db_units(loud, X)["snr_db"][0]


def test_attack_metrics_in_db_per_gender():
    from ser_attacks.metrics import attack_metrics
    y = np.array([0, 1])
    logits = np.eye(2)[[0, 1]] * 3
    x = np.zeros((2, 2, 2, 1), np.float32)
    x_adv = x.copy()
    x_adv[0] += 1.0
    ref = np.full((2, 2, 2), -30.0, np.float32)
    d_db = np.zeros((2, 2, 2), np.float32)
    d_db[0] = 3.0
    m = attack_metrics(y, logits, logits, x, x_adv, np.array(["female", "male"]), d_db, ref)
    assert m["perturbation_db"] == pytest.approx(1.5) and m["perturbation_db_female"] == pytest.approx(3.0)
    assert m["snr_db_female"] == pytest.approx(-20 * np.log10(10 ** (3 / 20) - 1), rel=1e-6)
    assert m["snr_db"] == m["snr_db_female"] and np.isnan(m["snr_db_male"])       # male sample unchanged
    assert m["changed"] == 0.5 and m["perturbation_db_male"] == 0


def test_robust_note_only_where_the_attack_turned_wrong_segments_right():
    from ser_attacks.metrics import robust_note
    assert robust_note({"robust_acc": 0.0, "adv_acc": 0.5}) == ", robust 0.000"
    assert robust_note({"robust_acc": 0.25, "adv_acc": 0.25}) == ""
    assert robust_note({"adv_acc": 0.25}) == ""              # a run logged before robust_acc
