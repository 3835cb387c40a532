"""Randomized smoothing (Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019): a smoothed classifier with Monte-Carlo certification of an L2 radius per segment.

The base classifier f (the trained model, logits out) is smoothed with Gaussian noise of standard deviation
``sigma`` in the MODEL'S INPUT UNITS (the normalized log-Mel, "σ units", the unit of every ε of the attacks):
g(x) = argmax_c P(f(x + η) = c), η ~ N(0, sigma² I). If the top class has probability pA ≥ p̲A > 1/2 under
the noise, g's prediction is constant on the L2 ball of radius R = sigma · Φ⁻¹(p̲A) around x (Cohen et al.,
Theorem 1, with p̄B = 1 − p̲A). pA is unknown; it is estimated by sampling:

- ``Smoothed.predict`` (Cohen's PREDICT): ``n`` noisy draws, the top two classes' counts nA, nB; the top class
  unless a two-sided binomial test of nA against nA + nB at p = 1/2 has p-value > ``alpha`` (then ABSTAIN,
  -1). g's prediction, wrong with probability at most ``alpha``.
- ``Smoothed.certify`` (Cohen's CERTIFY): ``n0`` draws choose the class cA; ``n`` fresh draws count it; p̲A =
  the one-sided (1 − ``alpha``) Clopper–Pearson lower bound of cA's probability; R = sigma · Φ⁻¹(p̲A), or ABSTAIN
  (-1, radius 0) when p̲A ≤ 1/2. With probability at least 1 − ``alpha`` over the draws, a returned radius is a
  true certificate. The POINT estimate nA / n in place of p̲A would overstate R (and certify segments whose pA is
  1/2 + noise); the lower bound is what makes R a certificate.

Cost: n0 + n forward passes of the base model per segment (``batch`` noisy copies per call); R can never
exceed sigma · Φ⁻¹(alpha^(1/n)) (all n draws in cA), e.g. 2.46 sigma for n = 1000, alpha = 0.001.

Every draw is seeded: segment i of a call draws from ``np.random.default_rng([seed, i])`` (selection draws and
estimation draws from two such generators), so a segment's result depends on the seed and its position i in
the call, not on ``batch`` (a generator's normal draws in chunks equal one draw of them all).

Certified accuracy at radius r (``certified_accuracy``, ``certified_curve``): the share of segments certified
WITH THE CORRECT CLASS and R ≥ r (abstentions and wrong classes count as not certified; r = 0 gives the
smoothed classifier's accuracy with abstentions counted wrong); speaker level as every curve of the project
(``ser_attacks.min_norm``): the mean of each speaker, then across speakers, 95 % bootstrap over speakers.

Radii as SNR dB (``radius_snr_db``): an L2 radius in σ units says nothing about loudness by itself. It is
expressed with the project's own conversions: the perturbation of L2 norm R spread evenly over the cells
(every cell LOWERED by R/√d, d = frames × bands; lowering is the quieter of the two signs), mapped to dB of
log-Mel by the normalizer (``Normalizer.to_db``) and to the SNR of the change of the Mel magnitudes against the
segment (``metrics.db_units``, the ``snr_db`` of every attack run). It is an indicative reading of R, not an
SNR certificate: the L2 ball also holds louder perturbations (R concentrated in the loudest cells) and some
quieter ones outside it.

Inference side (``conf/defense/smoothing.yaml``, the defense contract): ``RandomizedSmoothing`` is a
``keras.layers.Layer`` that adds the same N(0, sigma²) noise in front of the model (domain spectrogram,
randomized, differentiable), so that attacks run against the smoothed model with EOT (``defense.eot``: k draws
averaged per gradient); it carries the certification parameters for ``log_certification``, which the attack job
calls when ``defense.name == smoothing``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger("ser_attacks")

ABSTAIN = -1
RADII = (0.0, 0.25, 0.5, 1.0)        # certified accuracy logged at these radii (σ units)


def check_params(sigma, n0, n, alpha, batch) -> None:
    """Clear one-line ValueErrors for the smoothing parameters (before any model call or draw)."""
    def num(v, what):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"defense smoothing: {what} must be a number, not {v!r}") from None
        if not math.isfinite(f):
            raise ValueError(f"defense smoothing: {what} must be finite, not {v!r}")
        return f

    def count(v, what, least):
        if isinstance(v, bool) or num(v, what) != int(num(v, what)) or int(v) < least:
            raise ValueError(f"defense smoothing: {what} must be an integer ≥ {least}, not {v!r}")
        return int(v)

    if num(sigma, "sigma") <= 0:
        raise ValueError(f"defense smoothing: sigma must be > 0 (noise std, σ units of the model input), not {sigma!r}")
    n0 = count(n0, "n0 (selection draws)", 1)
    n = count(n, "n (estimation draws)", 2)
    if n <= n0:
        raise ValueError(f"defense smoothing: n (estimation draws, {n}) must exceed n0 (selection draws, {n0}); "
                         "the certificate rests on the n draws (Cohen et al. use n0=100, n=100000)")
    a = num(alpha, "alpha")
    if not 0 < a < 1:
        raise ValueError(f"defense smoothing: alpha must lie in (0, 1), not {alpha!r}")
    count(batch, "batch (noisy copies per forward pass)", 1)


def lower_confidence_bound(k, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 − alpha) Clopper–Pearson lower bound of a binomial proportion with k successes of n: the
    alpha quantile of Beta(k, n − k + 1) (0 for k = 0)."""
    from scipy.stats import beta
    k = np.asarray(k, np.float64)
    with np.errstate(invalid="ignore"):
        lo = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, lo, 0.0)


def radius(p_lower, sigma: float) -> np.ndarray:
    """sigma · Φ⁻¹(p̲A) where p̲A > 1/2, else 0 (abstain)."""
    from scipy.stats import norm
    p = np.asarray(p_lower, np.float64)
    return np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)


@dataclass
class Certificate:
    """Per segment: ``pred`` (class, or ABSTAIN = -1), ``radius`` (σ units; 0 when abstaining), ``p_lower`` (the
    Clopper–Pearson lower bound of the chosen class's probability), ``counts`` (n draws per class)."""
    pred: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    counts: np.ndarray


class Smoothed:
    """The smoothed classifier of a base logits function ``logits_fn(x_batch) -> (b, n_classes)`` (numpy) on model
    inputs (module docstring)."""

    def __init__(self, logits_fn: Callable[[np.ndarray], np.ndarray], n_classes: int, sigma: float = 0.25,
                 n0: int = 100, n: int = 1000, alpha: float = 0.001, batch: int = 200, seed: int = 0):
        check_params(sigma, n0, n, alpha, batch)
        if int(n_classes) < 2:
            raise ValueError(f"defense smoothing: n_classes must be ≥ 2, not {n_classes!r}")
        self.logits_fn, self.n_classes = logits_fn, int(n_classes)
        self.sigma, self.n0, self.n, self.alpha = float(sigma), int(n0), int(n), float(alpha)
        self.batch, self.seed = int(batch), int(seed)

    # -- sampling ---------------------------------------------------------------------------------------------
    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"defense smoothing: x must be a non-empty batch (n, ...), got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise ValueError("defense smoothing: x must be finite numbers (NaN or inf in the input)")
        return x.astype(np.float32)

    def _rng(self, i: int, stream: int) -> np.random.Generator:
        """Segment i's generator: stream 0 = selection draws (n0), 1 = estimation draws (n)."""
        return np.random.default_rng([self.seed, int(i), int(stream)])

    def counts(self, xi: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
        """How often each class wins on ``num`` noisy copies of one segment ``xi`` (``batch`` per forward pass)."""
        out = np.zeros(self.n_classes, np.int64)
        left = num
        while left > 0:
            b = min(self.batch, left)
            noise = rng.standard_normal((b, *xi.shape), dtype=np.float32) * np.float32(self.sigma)
            logits = np.asarray(self.logits_fn(xi[None] + noise))
            if logits.shape != (b, self.n_classes):
                raise ValueError(f"defense smoothing: logits_fn returned shape {logits.shape}, expected "
                                 f"{(b, self.n_classes)}")
            out += np.bincount(logits.argmax(1), minlength=self.n_classes)
            left -= b
        return out

    # -- Cohen et al.'s PREDICT and CERTIFY ----------------------------------------------------------------------
    def predict(self, x) -> np.ndarray:
        """PREDICT: per segment the top class of ``n`` draws, or ABSTAIN when a two-sided binomial test of the top
        two counts (nA of nA + nB at p = 1/2) has p-value > alpha."""
        from scipy.stats import binomtest
        x = self._check_input(x)
        out = np.full(len(x), ABSTAIN, np.int64)
        for i, xi in enumerate(x):
            c = self.counts(xi, self.n, self._rng(i, 1))
            top2 = np.argsort(-c, kind="stable")[:2]
            na, nb = int(c[top2[0]]), int(c[top2[1]])
            if binomtest(na, na + nb, 0.5).pvalue <= self.alpha:
                out[i] = top2[0]
        return out

    def certify(self, x, progress: bool = False) -> Certificate:
        """CERTIFY: class from ``n0`` selection draws, its Clopper–Pearson lower bound p̲A from ``n`` fresh draws,
        radius sigma · Φ⁻¹(p̲A); ABSTAIN (radius 0) when p̲A ≤ 1/2. ``progress``: a bar (or one log line)."""
        from ..progress import track
        x = self._check_input(x)
        m = len(x)
        pred = np.full(m, ABSTAIN, np.int64)
        p_lower = np.zeros(m)
        counts = np.zeros((m, self.n_classes), np.int64)
        for i in track(range(m), "certification", progress, unit="segment"):
            xi = x[i]
            c0 = self.counts(xi, self.n0, self._rng(i, 0))
            ca = int(np.argmax(c0))
            counts[i] = self.counts(xi, self.n, self._rng(i, 1))
            p_lower[i] = float(lower_confidence_bound(counts[i, ca], self.n, self.alpha))
            if p_lower[i] > 0.5:
                pred[i] = ca
        return Certificate(pred, radius(p_lower, self.sigma), p_lower, counts)


# -- the inference-side layer (defense contract) -----------------------------------------------------------------
class RandomizedSmoothing(keras.layers.Layer):
    """Gaussian noise N(0, sigma²) added to the model input on every call (the smoothed model an attacker faces;
    EOT averages its gradients over draws). Carries the certification parameters (n0, n, alpha, batch) for
    ``Smoothed`` (``smoothed``)."""
    domain = "spectrogram"
    randomized = True
    differentiable = True

    def __init__(self, sigma: float = 0.25, n0: int = 100, n: int = 1000, alpha: float = 0.001,
                 batch: int = 200, seed: int = 0, **kwargs):
        for k in ("stage", "eot", "bpda"):           # attacker options of the defense node, not the layer's
            kwargs.pop(k, None)
        super().__init__(**kwargs)
        self.sigma, self.n0, self.n, self.alpha, self.batch, self.seed = sigma, n0, n, alpha, batch, seed
        self._check_params()
        self.sigma, self.n0, self.n, self.alpha = float(sigma), int(n0), int(n), float(alpha)
        self.batch, self.seed = int(batch), int(seed)
        self._gen = tf.random.Generator.from_seed(self.seed)

    def _check_params(self) -> None:
        check_params(self.sigma, self.n0, self.n, self.alpha, self.batch)

    def call(self, x, training=False):
        return x + tf.cast(self.sigma, x.dtype) * self._gen.normal(tf.shape(x), dtype=x.dtype)

    def compute_output_shape(self, s):
        return s

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha,
                "batch": self.batch, "seed": self.seed}

    def smoothed(self, logits_fn, n_classes: int) -> Smoothed:
        """The certifier of ``logits_fn`` (the UNDEFENDED base model) with this layer's parameters."""
        return Smoothed(logits_fn, n_classes, self.sigma, self.n0, self.n, self.alpha, self.batch, self.seed)


# -- certification of an attack run's segments ------------------------------------------------------------------
def base_logits(model) -> Callable[[np.ndarray], np.ndarray]:
    """``x_batch -> logits`` (numpy) of the UNDEFENDED Keras model (its fast form where it has one), one compiled
    graph: the base classifier f that ``Smoothed`` adds its own noise to."""
    from ..fast_model import maybe_fast
    m = maybe_fast(model)
    f = tf.function(lambda b: m(b, training=False), reduce_retracing=True)
    return lambda b: f(tf.convert_to_tensor(np.asarray(b, np.float32))).numpy()


def radius_snr_db(r, normalizer, X_db) -> np.ndarray:
    """Per segment, the SNR (dB) of the L2 radius ``r`` (σ units) spread evenly over the cells, every cell lowered
    by r/√d, in the project's units: ``Normalizer.to_db`` (model input → dB of log-Mel) and ``metrics.db_units``
    (SNR of the change of the Mel magnitudes against the segment's raw log-Mel ``X_db``, (n, frames, n_mels));
    +inf for r = 0 (module docstring: indicative, not an SNR certificate)."""
    from ..metrics import db_units
    X = np.asarray(X_db, np.float32)
    r = np.asarray(r, np.float64).reshape(-1)
    if len(r) != len(X):
        raise ValueError(f"radius_snr_db: {len(r)} radii for {len(X)} segments")
    d = X[0].size
    delta = np.broadcast_to((-r / np.sqrt(d)).astype(np.float32)[:, None, None], X.shape)
    return np.where(r > 0, db_units(normalizer.to_db(delta, X), X)["snr_db"], np.inf)


def certified_accuracy(pred, rad, y, r: float) -> float:
    """Share of segments certified with the correct class and radius ≥ ``r`` (segment level)."""
    pred, rad, y = np.asarray(pred), np.asarray(rad), np.asarray(y)
    return float(np.mean((pred == y) & (rad >= r)))


def certified_curve(speaker, hit: np.ndarray, grid, n_boot: int = 1000, seed: int = 0):
    """Speaker-level certified accuracy at each budget of ``grid`` (``hit``: (n, len(grid)) bool, segment i
    counts at budget j), with the 95 % bootstrap over speakers of ``ser_attacks.min_norm`` (same helpers)."""
    import pandas as pd

    from ..min_norm import _boot, _ci, _speaker_matrix
    speaker = np.asarray(speaker).astype(str)
    _, mat = _speaker_matrix(speaker, np.asarray(hit, np.float64))
    lo, hi = _ci(_boot(mat, n_boot, seed), len(mat), upper=1.0)
    return pd.DataFrame({"budget": np.asarray(grid, np.float64), "acc": np.nanmean(mat, axis=0), "acc_lo": lo,
                         "acc_hi": hi, "n_speakers": len(mat), "n_segments": len(speaker)})


def certification_summary(cert: Certificate, snr, y, segs, radii=RADII, seed: int = 0, n_boot: int = 1000):
    """(MLflow metrics, curve table) of a certification: ``certified_acc_r<r>`` (+ ``_lo``/``_hi``, speaker level)
    at each radius, ``smoothing_abstain_rate``, ``certified_radius_median`` / ``certified_snr_median_db`` of the
    segments certified correct, all / female / male; the curve on the σ axis and (where finite) the SNR axis."""
    import pandas as pd

    from ..min_norm import default_grid, snr_grid
    y = np.asarray(y)
    ok = cert.pred == y
    r_ok = np.where(ok, cert.radius, -np.inf)              # counts at radius r iff certified correct and R ≥ r
    s_ok = np.where(ok, np.asarray(snr, np.float64), np.inf)    # ... at SNR budget s iff its SNR ≤ s
    speaker, gender = segs.speaker.astype(str).to_numpy(), segs.gender.astype(str).to_numpy()
    grid = np.union1d(default_grid(r_ok), np.asarray(radii, np.float64))
    sgrid = snr_grid(s_ok) if np.isfinite(s_ok).any() else None
    metrics, tables = {}, []
    for g in ("all", "female", "male"):
        m = np.ones(len(y), bool) if g == "all" else gender == g
        if not m.any():
            continue
        sfx = "" if g == "all" else f"_{g}"
        c = certified_curve(speaker[m], r_ok[m][:, None] >= grid[None, :], grid, n_boot, seed)
        for r in radii:
            row = c[np.isclose(c.budget, r)].iloc[0]
            for k, col in (("", "acc"), ("_lo", "acc_lo"), ("_hi", "acc_hi")):
                metrics[f"certified_acc_r{r:g}{k}{sfx}"] = float(row[col])
        metrics[f"smoothing_abstain_rate{sfx}"] = float(np.mean(cert.pred[m] == ABSTAIN))
        if ok[m].any():
            metrics[f"certified_radius_median{sfx}"] = float(np.median(cert.radius[m & ok]))
            metrics[f"certified_snr_median_db{sfx}"] = float(np.median(s_ok[m & ok]))
        tables.append(c.assign(axis="sigma", gender=g))
        if sgrid is not None:
            tables.append(certified_curve(speaker[m], s_ok[m][:, None] <= sgrid[None, :], sgrid, n_boot, seed)
                          .assign(axis="snr_db", gender=g))
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "norm", "l2")
    return {k: v for k, v in metrics.items() if np.isfinite(v)}, table


def log_certification(tracking, run_id: str, logits_fn, x, y, segs, defense_cfg, n_classes: int | None = None,
                      normalizer=None, X_db=None, radii=RADII, seed: int = 0, progress: bool = False
                      ) -> dict[str, np.ndarray]:
    """Certify the run's segments ``x`` (model inputs) with the smoothing parameters of ``defense_cfg`` and log:
    metrics (``certification_summary``, ``certify_time_s``, ``smoothing_forward_passes``), the curve
    ``certified_accuracy.csv`` / ``.png`` (σ and SNR dB axes, all / female / male, speaker level). ``logits_fn``:
    the UNDEFENDED base model (``base_logits``). SNR dB needs the ``normalizer`` and the raw log-Mel ``X_db``.
    Returns the per-segment columns for the run's ``adversarial.npz``: ``certified_pred`` (-1 = abstain),
    ``certified_radius`` (σ), ``certified_p_lower``, ``certified_snr_db``."""
    import time
    p = {k: defense_cfg.get(k) for k in ("sigma", "n0", "n", "alpha", "batch", "seed")
         if defense_cfg.get(k) is not None}
    check_params(p.get("sigma", 0.25), p.get("n0", 100), p.get("n", 1000), p.get("alpha", 0.001),
                 p.get("batch", 200))
    if n_classes is None:
        n_classes = int(np.asarray(logits_fn(np.asarray(x[:1], np.float32))).shape[1])
    sm = Smoothed(logits_fn, n_classes, **p)
    log.info("Randomized smoothing: certifying %d segments (sigma %g, n0 %d, n %d, alpha %g: %d forward passes)",
             len(x), sm.sigma, sm.n0, sm.n, sm.alpha, len(x) * (sm.n0 + sm.n))
    t0 = time.perf_counter()
    cert = sm.certify(x, progress)
    seconds = time.perf_counter() - t0
    snr = radius_snr_db(cert.radius, normalizer, X_db) if normalizer is not None and X_db is not None \
        else np.full(len(x), np.nan)
    metrics, table = certification_summary(cert, snr, y, segs, radii, int(seed))
    metrics.update(certify_time_s=seconds, smoothing_forward_passes=float(len(x) * (sm.n0 + sm.n)))
    tracking.log_metrics(run_id, metrics)
    tracking.log_curve(run_id, table, plot_certified(table, f"randomized smoothing, sigma {sm.sigma:g}, n {sm.n}, "
                                                     f"alpha {sm.alpha:g}: certified accuracy vs radius, "
                                                     "speaker-level, 95% bootstrap over speakers"),
                       "certified_accuracy")
    log.info("Randomized smoothing: certified accuracy %s; abstained %.3f (%.1f s)",
             ", ".join(f"r={r:g}: {metrics.get(f'certified_acc_r{r:g}', np.nan):.3f}" for r in radii),
             metrics.get("smoothing_abstain_rate", np.nan), seconds)
    return {"certified_pred": cert.pred, "certified_radius": cert.radius.astype(np.float32),
            "certified_p_lower": cert.p_lower.astype(np.float32), "certified_snr_db": snr.astype(np.float32)}


def plot_certified(table, title: str):
    """``min_norm.plot_run_curve``'s figure with the certification's axis labels."""
    from ..min_norm import plot_run_curve
    fig = plot_run_curve(table, title)
    for ax in fig.axes:
        ax.set_ylabel("certified accuracy")
        if ax.xaxis_inverted():
            ax.set_xlabel("certified radius as SNR of an evenly spread change (dB)")
        else:
            ax.set_xlabel("certified radius: L2 (σ)")
    return fig
