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
