"""Realizability of spectrogram attacks: turn an adversarial log-Mel spectrogram back into sound, play it
"back" through the real front end, and classify again.

Method (``resynthesize``), per attacked segment, with the segment's own audio y (``segment_audio``):

1. The attack's change in dB: the normalized change mapped back through the saved normalizer,
   ``Δ = inverse(x_adv) − inverse(x)`` (per-band std; the method's scale: 1 for ``original``/``norm_sum``,
   the train max for ``norm_max_global``, the clean spectrogram's own max for ``norm_max_local``). The target
   features are ``T = X + Δ`` (X: the cached log-Mel dB of y).
2. A gain per Mel cell, from the segment's *unfloored* Mel power P (dB(P) can lie below the ``top_db``
   floor F = max X − 80 dB that X shows): ``gain = T − dB(P)`` dB where the cell was above the floor
   (dB(P) > F) or its target is above the target's own floor (T > max T − 80); elsewhere the cell stays
   floored and gets the plain gain Δ, capped so that it stays below T. Where the floor is not involved
   this is exactly Δ: **the Mel-domain change applied as a gain**.
3. Mel gains → STFT-bin gains: each bin's power gain is the filterbank-weighted mean of the power gains of
   the Mel bands that cover it (bins no band covers, DC and Nyquist, take their nearest covered bin's).
4. **The original STFT (magnitude × gain, ORIGINAL phase) → inverse STFT** (librosa, same window/hop/centering),
   clipped to full scale [-1, 1] (or the clean peak, if beyond). Because a modified STFT is not the STFT of any
   signal and Mel bands overlap, the re-analysed Mel power misses the target a little; ``refine`` more rounds
   multiply each Mel gain by target / achieved (re-analysed) power and resynthesize again from the original STFT
   (phase kept).

Griffin-Lim (``griffin_lim_iter`` > 0): the same target magnitude (|STFT| × the final gains) with the phase
estimated from scratch (librosa.griffinlim, random seeded start). It shows what a phase-less vocoder does;
the clean segment's own Griffin-Lim round trip (``realized_clean_acc_gl``) separates vocoder damage from
the attack's effect. Its waveform differs from y in phase, so no SNR is given for it.

An unperturbed sample (x_adv == x) is returned as y itself (SNR ∞, counted in ``n_audio_unchanged``); the
round trip of an unperturbed spectrogram through steps 1-4 reproduces y's features (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.audio import FrontEnd, ensure_librosa_kernels, log_mel
from .frontend_tf import mel_matrix
from .normalization import Normalizer
from .progress import track
from .waveform import CLIP


def _limit(y: np.ndarray) -> float:
    """Clip level of resynthesized audio: full scale, or the clean segment's peak where it lies beyond."""
    return max(CLIP[1], float(np.max(np.abs(y))))


def db_change(normalizer: Normalizer, X_db: np.ndarray, x: np.ndarray, x_adv: np.ndarray) -> np.ndarray:
    """(n, frames, n_mels) dB change of the features that the normalized change ``x_adv − x`` stands for."""
    dz = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(np.shape(X_db))
    st = normalizer.state
    if normalizer.standardize:
        dz = dz * st["std"]
    if normalizer.method == "norm_max_global":
        dz = dz * float(st["global_max"])
    elif normalizer.method == "norm_max_local":
        dz = dz * np.maximum(np.abs(np.asarray(X_db, np.float64)).max(axis=(1, 2), keepdims=True), 1e-6)
    return dz                      # original / norm_sum: a per-spectrogram dB offset cancels in the difference


class Resynth:
    """STFT / Mel analysis of one front end, and the gain resynthesis of ``resynthesize``."""

    def __init__(self, fe: FrontEnd):
        ensure_librosa_kernels()
        self.fe = fe
        self.M = mel_matrix(fe).astype(np.float64)                  # (n_mels, bins)
        cover = self.M.sum(axis=0)
        covered = np.flatnonzero(cover > 0)
        # bins no band covers (DC, Nyquist) take the gain of the nearest covered bin
        self._nearest = covered[np.abs(np.arange(len(cover))[:, None] - covered[None, :]).argmin(axis=1)]
        self._Mn = (self.M / np.where(cover > 0, cover, 1.0))[:, self._nearest]   # per-bin weights over bands

    def stft(self, y: np.ndarray) -> np.ndarray:
        import librosa
        return librosa.stft(np.asarray(y, np.float32), n_fft=self.fe.n_fft, hop_length=self.fe.hop_length)

    def istft(self, S: np.ndarray, lim: float = 1.0) -> np.ndarray:
        import librosa
        y = librosa.istft(S, hop_length=self.fe.hop_length, n_fft=self.fe.n_fft, length=self.fe.segment_samples)
        return np.clip(y, -lim, lim).astype(np.float32)

    def mel_power(self, S: np.ndarray) -> np.ndarray:
        """(frames, n_mels) unfloored Mel power of an STFT (bins, frames)."""
        return (self.M @ (np.abs(S).astype(np.float64) ** 2)).T

    def bin_gain(self, mel_gain: np.ndarray) -> np.ndarray:
        """(frames, n_mels) power gains → (bins, frames) amplitude gains."""
        g = self._Mn.T @ mel_gain.T                                   # (bins, frames) power gain
        return np.sqrt(np.maximum(g, 0.0))

    def resynthesize(self, y: np.ndarray, X_db: np.ndarray, delta_db: np.ndarray, refine: int = 3,
                     griffin_lim_iter: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """(waveform with the original phase, Griffin-Lim waveform or None) realizing ``X_db + delta_db``."""
        S = self.stft(y)
        lim = _limit(y)
        P = np.maximum(self.mel_power(S), 1e-30)
        P_db = 10.0 * np.log10(P)
        T = np.asarray(X_db, np.float64) + delta_db
        # the top_db floors before and after (+1e-3: librosa floors in float32, a floored cell can exceed max - 80)
        floor, floor_new = float(X_db.max()) - 80.0 + 1e-3, float(T.max()) - 80.0 + 1e-3
        active = (P_db > floor) | (T > floor_new)                    # cells whose value the target fixes
        # unfloored Mel power: T where the target fixes the value; elsewhere the plain gain Δ, capped at T
        target = np.where(active, 10.0 ** (T / 10.0), np.minimum(P * 10.0 ** (delta_db / 10.0), 10.0 ** (T / 10.0)))
        mel_gain = target / P
        for it in range(max(int(refine), 0) + 1):
            S_new = S * self.bin_gain(mel_gain)
            y_new = self.istft(S_new, lim)
            if it == refine:
                break
            achieved = np.maximum(self.mel_power(self.stft(y_new)), 1e-30)
            upd = np.where(active, target / achieved, 1.0)
            mel_gain = mel_gain * np.clip(upd, 1e-3, 1e3)
        y_gl = None
        if griffin_lim_iter > 0:
            import librosa
            y_gl = librosa.griffinlim(np.abs(S_new), n_iter=int(griffin_lim_iter), hop_length=self.fe.hop_length,
                                      n_fft=self.fe.n_fft, length=self.fe.segment_samples, init="random",
                                      random_state=int(seed))
            y_gl = np.clip(y_gl, -lim, lim).astype(np.float32)
        return y_new, y_gl

    def griffin_lim(self, y: np.ndarray, n_iter: int, seed: int = 0) -> np.ndarray:
        """Griffin-Lim from y's own magnitude (the vocoder round trip of a clean segment)."""
        import librosa
        out = librosa.griffinlim(np.abs(self.stft(y)), n_iter=int(n_iter), hop_length=self.fe.hop_length,
                                 n_fft=self.fe.n_fft, length=self.fe.segment_samples, init="random",
                                 random_state=int(seed))
        return np.clip(out, -_limit(y), _limit(y)).astype(np.float32)


@dataclass
class Realized:
    audio: np.ndarray              # (n, samples) resynthesized adversarial audio (original phase)
    audio_gl: np.ndarray | None    # (n, samples) Griffin-Lim version, or None
    clean_gl: np.ndarray | None    # (n, samples) Griffin-Lim of the clean segments, or None
    unchanged: np.ndarray          # (n,) bool: x_adv == x (audio returned as is)


def realize(fe: FrontEnd, normalizer: Normalizer, audio: np.ndarray, X_db: np.ndarray, x: np.ndarray,
            x_adv: np.ndarray, refine: int = 3, griffin_lim_iter: int = 32, seed: int = 0,
            progress: bool = False) -> Realized:
    """Resynthesize every adversarial spectrogram of a run (see the module docstring)."""
    rs = Resynth(fe)
    delta = db_change(normalizer, X_db, x, x_adv)
    n = len(audio)
    unchanged = np.array([np.array_equal(x[i], x_adv[i]) for i in range(n)], bool)
    out = np.array(audio, np.float32, copy=True)
    gl = np.array(audio, np.float32, copy=True) if griffin_lim_iter > 0 else None
    gl_clean = np.empty_like(out) if griffin_lim_iter > 0 else None
    for i in track(range(n), "resynthesis", progress, unit="segment"):
        if griffin_lim_iter > 0:
            gl_clean[i] = rs.griffin_lim(audio[i], griffin_lim_iter, seed + i)
        if unchanged[i]:
            if gl is not None:
                gl[i] = gl_clean[i]
            continue
        out[i], g = rs.resynthesize(audio[i], X_db[i], delta[i], refine, griffin_lim_iter, seed + i)
        if gl is not None:
            gl[i] = g
    return Realized(out, gl, gl_clean, unchanged)


def features(fe: FrontEnd, normalizer: Normalizer, audio: np.ndarray, speakers=None) -> np.ndarray:
    """Model inputs of waveforms through the real (librosa) front end and the saved normalizer (``speakers``: each
    waveform's speaker, for a per-speaker normalizer)."""
    return normalizer.transform(np.stack([log_mel(a, fe) for a in audio]), speakers) if len(audio) else \
        np.zeros((0, *fe.feature_shape), np.float32)
