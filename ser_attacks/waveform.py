"""Attacks on the waveform (``input=waveform``): the trained model behind the differentiable TF front end as
ONE ART estimator on audio, budgets as a signal-to-noise ratio, and SNR measurement.

SNR of a perturbation δ of a clean segment x (both ``fe.segment_samples`` samples):
``SNR = 10·log10(Σ x² / Σ δ²)`` dB (∞ for δ = 0). A budget ``attack.snr_db = s`` becomes a per-sample bound:

* L∞ attacks (FGSM, BIM, PGD/AutoAttack with ``norm=inf``): ``eps_i = rms(x_i) · 10^(-s/20)``. Any δ with
  ``|δ|∞ ≤ eps_i`` has ``mean δ² ≤ eps_i²``, so SNR ≥ s; a sign-gradient step (FGSM) meets it with equality.
* L2 attacks (``attack.norm=2``): ``eps_i = ‖x_i‖₂ · 10^(-s/20)``, i.e. SNR ≥ s exactly at the bound.

The step of iterative attacks scales with the bound: ``eps_step_i = input.step_ratio · eps_i`` (attacks whose
config leaves ``eps_step`` unset keep their own rule, e.g. AutoAttack's 2·eps). After the
attack, δ is projected onto the bound once more and x + δ clipped to full scale [-1, 1] (the waveform
estimator's ``clip_values``; widened to the clean peak where a clean sample lies beyond it), so the budget holds
to float rounding whatever the attack did; both only shrink |δ|. Attacks that take no ``eps`` (C&W, DeepFool,
Boundary) are unbounded: their SNR is measured, not budgeted, and ``attack.snr_db`` with them is a configuration error.
"""
from __future__ import annotations

import inspect
import logging

import numpy as np

log = logging.getLogger(__name__)
CLIP = (-1.0, 1.0)        # full-scale audio: the waveform estimator's clip_values


def snr_db(x: np.ndarray, x_adv: np.ndarray) -> np.ndarray:
    """Per-sample SNR (dB) of ``x_adv - x`` against ``x``; ∞ where nothing changed."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    d = np.asarray(x_adv, np.float64).reshape(len(x), -1) - x
    sig, noise = np.sum(x ** 2, axis=1), np.sum(d ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(sig / noise)


def snr_summary(snr: np.ndarray, genders: np.ndarray, name: str = "audio_snr_db") -> dict[str, float]:
    """Mean (and min) SNR over the samples that changed, for all / female / male; ``n_audio_unchanged``."""
    out: dict[str, float] = {}
    for g in ("all", "female", "male"):
        m = np.ones(len(snr), bool) if g == "all" else np.asarray(genders) == g
        sfx = "" if g == "all" else f"_{g}"
        if not m.any():
            continue
        finite = snr[m][np.isfinite(snr[m])]
        out[f"n_audio_unchanged{sfx}"] = float(m.sum() - len(finite))
        if len(finite):
            out[f"{name}{sfx}"] = float(np.mean(finite))
            out[f"{name}_min{sfx}"] = float(np.min(finite))
    return out


def norm_of(attack) -> float:
    n = getattr(attack, "norm", np.inf)
    return np.inf if n in ("inf", np.inf) else float(n)


def budget_eps(x: np.ndarray, snr: float, norm: float) -> np.ndarray:
    """Per-sample bound (see the module docstring) for SNR ``snr`` dB under ``norm`` (inf or 2)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    energy = np.sum(x ** 2, axis=1)
    scale = 10.0 ** (-float(snr) / 20.0)
    if norm == np.inf:
        return np.sqrt(energy / x.shape[1]) * scale
    if norm == 2:
        return np.sqrt(energy) * scale
    raise ValueError(f"attack.snr_db needs an L-inf or L2 attack (norm inf or 2), not norm {norm:g}")


def project(x: np.ndarray, x_adv: np.ndarray, eps: np.ndarray, norm: float) -> np.ndarray:
    """x + δ with δ projected onto the per-sample ``eps`` ball and clipped to full scale."""
    x = np.asarray(x, np.float32)
    d = np.asarray(x_adv, np.float32).reshape(len(x), -1) - x.reshape(len(x), -1)
    e = np.asarray(eps, np.float64)[:, None]
    if norm == np.inf:
        d = np.clip(d, -e, e)
    else:
        n = np.linalg.norm(d.astype(np.float64), axis=1, keepdims=True)
        d = d * np.where(n > e, e / np.maximum(n, 1e-30), 1.0)
    lo, hi = np.minimum(x, CLIP[0]), np.maximum(x, CLIP[1])       # full scale, or the clean sample where beyond
    return np.clip(x + d.reshape(x.shape).astype(np.float32), lo, hi).astype(np.float32)


def takes_eps(attack) -> bool:
    return "eps" in inspect.signature(type(attack).__init__).parameters


class SNRBudget:
    """An ART evasion attack run with a per-sample SNR budget (``attack.snr_db``).

    Per-sample ``eps`` arrays where ART supports them (FGSM/FGM, BIM, PGD: L∞, or L2 without random init).
    Otherwise (e.g. AutoAttack, whose member attacks take ``eps`` when built) the attack is rebuilt for each
    sample with its scalar ``eps`` by ``rebuild(eps, eps_step)`` and run on that sample alone. ``eps_step`` is
    ``step_ratio · eps``, or None (the attack's own rule, e.g. AutoAttack's 2·eps) when ``step_ratio`` is None.
    ``generate`` seeds NumPy's global generator (PGD's random start; ART draws from it)."""

    def __init__(self, attack, snr: float, step_ratio: float | None, seed: int, rebuild=None):
        if not takes_eps(attack):
            raise ValueError(f"attack.snr_db needs an attack with an eps budget; {type(attack).__name__} has none "
                             "(its SNR is measured, not budgeted: leave attack.snr_db unset)")
        self.attack, self.snr, self.seed = attack, float(snr), int(seed)
        self.step_ratio = None if step_ratio is None else float(step_ratio)
        self.rebuild = rebuild
        self.norm = norm_of(attack)
        budget_eps(np.ones((1, 1)), self.snr, self.norm)          # fails now for an unsupported norm

    def __getattr__(self, name):          # targeted, estimator, ... of the wrapped attack
        return getattr(self.attack, name)

    def __repr__(self) -> str:
        return f"{type(self.attack).__name__}(snr_db={self.snr:g})"

    def _batched(self) -> bool:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
        if self.step_ratio is None or not isinstance(self.attack, (FastGradientMethod, ProjectedGradientDescent)):
            return False
        return self.norm == np.inf or not getattr(self.attack, "num_random_init", 0)

    def _one(self, eps: float):
        step = None if self.step_ratio is None else eps * self.step_ratio
        if self.rebuild is not None:
            return self.rebuild(eps, step)
        self.attack.set_params(eps=eps, **({} if step is None else {"eps_step": step}))
        return self.attack

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        x = np.asarray(x, np.float32)
        eps = budget_eps(x, self.snr, self.norm)
        eps = np.maximum(eps, 1e-12)                     # ART wants eps_step > 0 (a silent segment: no change)
        np.random.seed(self.seed)
        if self._batched():
            # one attack batch per call: ART's PGD draws its random start with the WHOLE eps array (ART 1.20.1),
            # which fails once there are more samples than attack.batch_size
            e = eps.astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
            bs = int(getattr(self.attack, "batch_size", len(x)) or len(x))
            x_adv = np.empty_like(x)
            for i in range(0, len(x), bs):
                sl = slice(i, i + bs)
                self.attack.set_params(eps=e[sl], eps_step=(e[sl] * self.step_ratio).astype(np.float32))
                x_adv[sl] = self.attack.generate(x=x[sl], y=None if y is None else y[sl], **kwargs)
        else:
            x_adv = np.empty_like(x)
            for i in range(len(x)):
                x_adv[i:i + 1] = self._one(float(eps[i])).generate(
                    x=x[i:i + 1], y=None if y is None else y[i:i + 1], **kwargs)
        out = project(x, x_adv, eps, self.norm)
        moved = float(np.max(np.abs(out - x_adv))) if len(x) else 0.0
        if moved > 1e-6:
            log.warning("SNR budget: projected the attack's output back onto the budget (max change %.3g)", moved)
        return out


def clip_range(audio: np.ndarray) -> tuple[float, float]:
    """Full scale [-1, 1], widened to the loudest clean sample if one lies beyond it (pitch-shifted audio can),
    so that clipping never moves a clean sample and the budget holds."""
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 1.0
    return (-max(1.0, peak), max(1.0, peak))


def waveform_classifier(tm, fe, kind: str = "compiled", batch_size: int = 64, clip_values=CLIP, defense=None):
    """The trained model behind the TF front end and its normalizer, as one ART classifier on waveforms
    (input (n, segment_samples) within ``clip_values`` (full scale), logits out), built by the one builder
    (``estimator.make_classifier``) with ``defense``: waveform-domain layers before the front end,
    spectrogram-domain ones between the front end and the model."""
    from .estimator import make_classifier
    from .frontend_tf import frontend_layer
    return make_classifier(tm.model, len(tm.classes), tuple(clip_values), kind, batch_size, defense=defense,
                           frontend=frontend_layer(fe, tm.normalizer))
