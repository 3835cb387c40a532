"""Attack metrics, for all samples and per gender (the paper reports all / female / male)."""
from __future__ import annotations

import numpy as np

GROUPS = ("all", "female", "male")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def attack_metrics(y: np.ndarray, clean_logits: np.ndarray, adv_logits: np.ndarray, x: np.ndarray,
                   x_adv: np.ndarray, genders: np.ndarray) -> dict[str, float]:
    """Metric name → value; per-gender metrics get a ``_female`` / ``_male`` suffix.

    - clean_acc / adv_acc: accuracy on the original / adversarial samples.
    - success_rate: share of the samples the model got right whose prediction the attack changed
      (NaN when none was right).
    - perturbation: the paper's mean |x_adv - x| over all cells of all samples.
    - l0 (fraction of changed cells), l2, linf: per-sample norms of x_adv - x, averaged.
    - adv_confidence: mean max-softmax probability on the adversarial samples.
    """
    clean_pred, adv_pred = clean_logits.argmax(1), adv_logits.argmax(1)
    d = (x_adv - x).reshape(len(x), -1).astype(np.float64)
    conf = softmax(adv_logits).max(1)
    out: dict[str, float] = {}
    for g in GROUPS:
        m = np.ones(len(y), bool) if g == "all" else genders == g
        sfx = "" if g == "all" else f"_{g}"
        out[f"n_samples{sfx}"] = float(m.sum())
        if not m.any():
            continue
        correct = m & (clean_pred == y)
        out[f"clean_acc{sfx}"] = float(np.mean(clean_pred[m] == y[m]))
        out[f"adv_acc{sfx}"] = float(np.mean(adv_pred[m] == y[m]))
        out[f"success_rate{sfx}"] = float(np.mean(adv_pred[correct] != y[correct])) if correct.any() else float("nan")
        out[f"perturbation{sfx}"] = float(np.mean(np.abs(d[m])))
        out[f"l0{sfx}"] = float(np.mean(np.mean(np.abs(d[m]) > 1e-7, axis=1)))
        out[f"l2{sfx}"] = float(np.mean(np.linalg.norm(d[m], axis=1)))
        out[f"linf{sfx}"] = float(np.mean(np.max(np.abs(d[m]), axis=1)))
        out[f"adv_confidence{sfx}"] = float(np.mean(conf[m]))
    return out
