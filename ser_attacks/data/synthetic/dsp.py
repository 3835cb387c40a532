"""Signal-processing pieces of the synthesiser: smoothing, the glottal pulse, the formant cascade,
its block-wise time-varying filtering, and the second channel of stereo layouts."""
from __future__ import annotations

import numpy as np
from scipy import signal


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Hann-window smoothing along axis 0 with edge padding."""
    if width <= 1:
        return x
    w = np.hanning(width + 2)[1:-1]
    w /= w.sum()
    pad = width // 2
    x2 = x if x.ndim == 2 else x[:, None]
    xp = np.pad(x2, ((pad, width - 1 - pad), (0, 0)), mode="edge")
    out = np.stack([np.convolve(xp[:, j], w, mode="valid") for j in range(x2.shape[1])], axis=1)
    return out if x.ndim == 2 else out[:, 0]


def rosenberg(phi: np.ndarray, tp: float, tn: float) -> np.ndarray:
    """Rosenberg glottal flow pulse for phase ``phi`` in [0, 1)."""
    g = np.zeros_like(phi)
    op = phi < tp
    g[op] = 0.5 * (1.0 - np.cos(np.pi * phi[op] / tp))
    cl = (~op) & (phi < tp + tn)
    g[cl] = np.cos(0.5 * np.pi * (phi[cl] - tp) / tn)
    return g


def cascade_tf(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Cascade of unity-DC-gain two-pole resonators as one transfer function.

    ``freq``/``bw`` have shape (n_frames, n_formants); returns the numerator
    gain (n_frames, 1) and the denominator polynomial (n_frames, 2*n_formants+1).
    (A 10th-order direct form is what LPC synthesis uses; in float64 it is
    accurate to ~1e-8 here and much cheaper to update per block than SOS.)
    """
    r = np.exp(-np.pi * bw / sr)
    c = 2.0 * r * np.cos(2.0 * np.pi * freq / sr)
    n_frames, n_form = freq.shape
    a = np.zeros((n_frames, 2 * n_form + 1))
    a[:, 0] = 1.0
    for j in range(n_form):
        prev = a.copy()
        a[:, 1:] += -c[:, j:j + 1] * prev[:, :-1]
        a[:, 2:] += (r[:, j:j + 1] ** 2) * prev[:, :-2]
    b = np.prod(1.0 - c + r * r, axis=1, keepdims=True)
    return b, a


def blockwise_filter(b: np.ndarray, a: np.ndarray, x: np.ndarray, block: int) -> np.ndarray:
    """Filter ``x`` with the time-varying filter ``b[i]``, ``a[i]`` on its ``i``-th block of ``block``
    samples, carrying the filter state across blocks."""
    out = np.empty(len(x))
    zi = np.zeros(a.shape[1] - 1)
    lfilter = signal.lfilter
    for i in range(len(a)):
        sl = slice(i * block, (i + 1) * block)
        out[sl], zi = lfilter(b[i], a[i], x[sl], zi=zi)
    return out


def to_stereo(x: np.ndarray, seed: int) -> np.ndarray:
    """Second channel = slightly delayed, attenuated copy + its own faint noise."""
    rng = np.random.default_rng(seed)
    delay = int(rng.integers(5, 30))
    gain = float(rng.uniform(0.8, 0.95))
    right = np.zeros_like(x)
    right[delay:] = gain * x[:-delay]
    right += (rng.standard_normal(len(x)) * 10.0 ** (rng.uniform(-72.0, -62.0) / 20.0)).astype(x.dtype)
    return np.stack([x, np.clip(right, -1.0, 1.0)], axis=1)
