"""Attack metrics, for all samples and per gender (the paper reports all / female / male).

Perturbations are measured twice: in the model's input units (normalized log-Mel: per-band standard
deviations for the ``_std`` normalizations, which differ per band and dataset) and in physical units,
from the perturbation in dB of log-Mel (``Normalizer.to_db``) and the raw log-Mel spectrogram in dB:

- ``perturbation_db``: mean |δ_dB| over all cells (the paper's mean |x_adv - x|, in dB);
- ``linf_db``: per-sample max |δ_dB|, averaged;
- ``snr_db``: per sample, 10·log10(Σ P / Σ (√P' − √P)²) with P = 10^(X/10) the original Mel power and
  P' = 10^((X + δ_dB)/10) the perturbed one, i.e. the energy of the original Mel magnitudes over the
  energy of the change the attack made to them (higher = quieter perturbation). Averaged over the
  samples the attack changed (an unchanged sample has infinite SNR); NaN when it changed none.
"""
from __future__ import annotations

import numpy as np

GROUPS = ("all", "female", "male")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def db_units(delta_db: np.ndarray, ref_db: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample perturbation in physical units: ``perturbation_db`` (mean |δ_dB|), ``linf_db`` and
    ``snr_db`` (+inf for an unchanged sample), from δ_dB and the original log-Mel dB, both (n, frames, n_mels)."""
    n = len(ref_db)
    d = np.asarray(delta_db, np.float64).reshape(n, -1)
    x = np.asarray(ref_db, np.float64).reshape(n, -1)
    mag = 10.0 ** (x / 20.0)                               # √P
    change = 10.0 ** ((x + d) / 20.0) - mag
    noise = np.sum(change ** 2, axis=1)
    with np.errstate(divide="ignore"):
        snr = np.where(noise > 0, 10.0 * np.log10(np.sum(mag ** 2, axis=1) / np.where(noise > 0, noise, 1.0)),
                       np.inf)
    return {"perturbation_db": np.mean(np.abs(d), axis=1), "linf_db": np.max(np.abs(d), axis=1), "snr_db": snr}


def attack_metrics(y: np.ndarray, clean_logits: np.ndarray, adv_logits: np.ndarray, x: np.ndarray,
                   x_adv: np.ndarray, genders: np.ndarray, delta_db: np.ndarray | None = None,
                   ref_db: np.ndarray | None = None) -> dict[str, float]:
    """Metric name → value; per-gender metrics get a ``_female`` / ``_male`` suffix.

    - clean_acc / adv_acc: accuracy on the original / adversarial samples (``n_correct_clean`` /
      ``n_correct_adv`` of ``n_samples``). adv_acc is the paper's measure: it also counts a segment the model
      got wrong that the attack moved INTO its true class (attacks that follow the model's own prediction, as
      ART's DeepFool and Boundary do, move many).
    - robust_acc: right before AND after the attack (``n_correct_both`` of ``n_samples``): robust accuracy
      as RobustBench counts it, never above clean_acc.
    - success_rate: share of the samples the model got right whose prediction the attack changed
      (``n_flipped`` of ``n_correct_clean``; NaN when none was right).
    - perturbation: the paper's mean |x_adv - x| over all cells of all samples (model input units).
    - l0 (fraction of changed cells), l2, linf: per-sample norms of x_adv - x, averaged.
    - changed: share of samples the attack changed at all (``n_changed`` of ``n_samples``).
    - adv_confidence: mean max-softmax probability on the adversarial samples.
    - with ``delta_db`` (x_adv - x in dB of log-Mel) and ``ref_db`` (the original log-Mel, dB):
      perturbation_db, linf_db, snr_db (module docstring).
    """
    clean_pred, adv_pred = clean_logits.argmax(1), adv_logits.argmax(1)
    d = (x_adv - x).reshape(len(x), -1).astype(np.float64)
    conf = softmax(adv_logits).max(1)
    units = db_units(delta_db, ref_db) if delta_db is not None else None
    out: dict[str, float] = {}
    for g in GROUPS:
        m = np.ones(len(y), bool) if g == "all" else genders == g
        sfx = "" if g == "all" else f"_{g}"
        out[f"n_samples{sfx}"] = float(m.sum())
        if not m.any():
            continue
        correct = m & (clean_pred == y)
        # the exact counts behind the shares below (the shares are logged to 4 decimals: tracking.shown)
        out[f"n_correct_clean{sfx}"] = float(correct.sum())
        out[f"n_correct_adv{sfx}"] = float((m & (adv_pred == y)).sum())
        out[f"n_correct_both{sfx}"] = float((correct & (adv_pred == y)).sum())
        out[f"n_flipped{sfx}"] = float((correct & (adv_pred != y)).sum())
        out[f"n_changed{sfx}"] = float(np.any(d[m] != 0, axis=1).sum())
        out[f"clean_acc{sfx}"] = float(np.mean(clean_pred[m] == y[m]))
        out[f"adv_acc{sfx}"] = float(np.mean(adv_pred[m] == y[m]))
        out[f"robust_acc{sfx}"] = out[f"n_correct_both{sfx}"] / out[f"n_samples{sfx}"]
        out[f"success_rate{sfx}"] = float(np.mean(adv_pred[correct] != y[correct])) if correct.any() else float("nan")
        out[f"perturbation{sfx}"] = float(np.mean(np.abs(d[m])))
        out[f"l0{sfx}"] = float(np.mean(np.mean(np.abs(d[m]) > 1e-7, axis=1)))
        out[f"l2{sfx}"] = float(np.mean(np.linalg.norm(d[m], axis=1)))
        out[f"linf{sfx}"] = float(np.mean(np.max(np.abs(d[m]), axis=1)))
        out[f"changed{sfx}"] = float(np.mean(np.any(d[m] != 0, axis=1)))
        out[f"adv_confidence{sfx}"] = float(np.mean(conf[m]))
        if units is not None:
            out[f"perturbation_db{sfx}"] = float(np.mean(units["perturbation_db"][m]))
            out[f"linf_db{sfx}"] = float(np.mean(units["linf_db"][m]))
            snr = units["snr_db"][m]
            out[f"snr_db{sfx}"] = float(np.mean(snr[np.isfinite(snr)])) if np.isfinite(snr).any() else float("nan")
    return out


def robust_note(metrics: dict) -> str:
    """``", robust 0.000"`` where robust accuracy (right before and after) is below adversarial accuracy, i.e. the
    attack turned wrong segments right (a log line's and the sweep summary's hint); "" otherwise."""
    r, a = metrics.get("robust_acc"), metrics.get("adv_acc")
    return f", robust {r:.3f}" if r is not None and a is not None and r < a else ""


# share of segments → (its count, the count it is a share of), as attack_metrics logs them (per gender too)
COUNTS = {"clean_acc": ("n_correct_clean", "n_samples"), "adv_acc": ("n_correct_adv", "n_samples"),
          "robust_acc": ("n_correct_both", "n_samples"),
          "success_rate": ("n_flipped", "n_correct_clean"), "changed": ("n_changed", "n_samples"),
          "val_acc": ("n_correct_val", "n_segments_val"), "test_acc": ("n_correct_test", "n_segments_test")}


def exact_fractions(metrics: dict) -> dict:
    """``metrics`` (a run's as read back: an attack run's, a training run's) with every share of segments
    recomputed from its exact counts where the run logged them (runs before the counts keep their logged value):
    MLflow holds the shares to 4 decimals (``tracking.shown``), the report computes from k / n."""
    out = dict(metrics)
    for g in ("", *(f"_{g}" for g in GROUPS if g != "all")):
        for share, (k, n) in COUNTS.items():
            kv, nv = out.get(f"{k}{g}"), out.get(f"{n}{g}")
            try:
                kv, nv = float(kv), float(nv)
            except (TypeError, ValueError):
                continue
            if np.isfinite(kv) and np.isfinite(nv):
                out[f"{share}{g}"] = kv / nv if nv > 0 else float("nan")
    return out
