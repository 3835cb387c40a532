"""Deterministic synthetic emotional speech: the project's embedded corpus.

Real SER corpora (EmoDB, EMOVO, RAVDESS) cannot be downloaded here, so this
module renders *synthetic* utterances and writes them with exactly the folder
layout and file naming of those corpora, so that the real loaders parse them.

The signal is a small source-filter speech synthesiser:

* **source** - a Rosenberg glottal pulse train (differentiated: glottal flow
  derivative) that follows an f0 contour, with per-period jitter and shimmer,
  optional creaky (irregular, subharmonic) periods, and glottally modulated
  aspiration noise (breathiness); a first-order shelf sets the spectral tilt;
* **filter** - a cascade of 5 two-pole resonators (4 vowel formants + a fixed
  5th) whose frequencies follow a smoothed per-syllable vowel sequence and are
  scaled by the speaker's vocal-tract length; updated every 5 ms;
* **consonants** - sonorant onsets (low-amplitude voicing, nasal-like
  formants), fricatives (band-passed noise), stops (closure + burst);
  pauses at phrase boundaries, leading/trailing low-level noise floor.

Emotions are rendered only through *prosody and voice quality* (f0 level,
range and contour shape, tempo, pauses, loudness and its variability,
spectral tilt, breathiness, jitter/shimmer, creak, a small formant shift),
each sampled per utterance from a distribution around the emotion mean with
substantial spread, scaled by a per-speaker expressivity, so classes overlap.
The segmental content (syllable count, vowels, consonants, stress, phrase
breaks) depends only on the sentence code, so the same sentence has the same
content across emotions and speakers.

Everything is seeded from ``(seed, layout, speaker, emotion, sentence)``:
the same arguments give byte-identical WAV files.

CLI::

    python -m ser_attacks.data.synthetic --root DIR [--layout emodb]
        [--n-speakers 10] [--n-sentences 5] [--seed 0] [--emotions a,b,c]
        [--overwrite] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import signal

__all__ = [
    "EMOTIONS",
    "LAYOUTS",
    "DEFAULT_EMOTIONS",
    "LAYOUT_SAMPLE_RATES",
    "LAYOUT_CHANNELS",
    "MANIFEST_NAME",
    "GENERATOR_VERSION",
    "synthesize_utterance",
    "generate_corpus",
    "read_manifest",
    "main",
]

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "bored",
    "disgust",
    "angry",
    "fear",
    "surprised",
    "calm",
)
LAYOUTS: tuple[str, ...] = ("emodb", "emovo", "ravdess")
DEFAULT_EMOTIONS: dict[str, tuple[str, ...]] = {
    "emodb": ("bored", "disgust", "happy", "neutral", "sad"),
    "emovo": ("disgust", "fear", "happy", "neutral", "surprised"),
    "ravdess": ("disgust", "fear", "happy", "sad", "surprised"),
}

#: Bump when the rendered signal changes; stored in the manifest parameters.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"

LAYOUT_SAMPLE_RATES = {"emodb": 16000, "emovo": 48000, "ravdess": 48000}
LAYOUT_CHANNELS = {"emodb": 1, "emovo": 2, "ravdess": 1}

# --------------------------------------------------------------------------
# Corpus layouts (ids, codes and sentence lists of the real corpora)
# --------------------------------------------------------------------------

# EmoDB speaker ids, alternating male / female so any even prefix is balanced.
_EMODB_SPEAKERS: tuple[tuple[str, str], ...] = (
    ("03", "m"), ("08", "f"), ("10", "m"), ("09", "f"), ("11", "m"),
    ("13", "f"), ("12", "m"), ("14", "f"), ("15", "m"), ("16", "f"),
)
_EMODB_SENTENCES = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_EMODB_CODES = {
    "angry": "W", "bored": "L", "disgust": "E", "fear": "A",
    "happy": "F", "sad": "T", "neutral": "N",
}

_EMOVO_SPEAKERS: tuple[tuple[str, str], ...] = (
    ("f1", "f"), ("m1", "m"), ("f2", "f"), ("m2", "m"), ("f3", "f"), ("m3", "m"),
)
_EMOVO_SENTENCES = ("b1", "b2", "b3", "l1", "l2", "l3", "l4",
                    "n1", "n2", "n3", "n4", "n5", "d1", "d2")
_EMOVO_CODES = {
    "disgust": "dis", "happy": "gio", "neutral": "neu", "fear": "pau",
    "angry": "rab", "surprised": "sor", "sad": "tri",
}

# RAVDESS: actors 01..24, odd = male, even = female.
_RAVDESS_N_ACTORS = 24
_RAVDESS_CODES = {
    "neutral": 1, "calm": 2, "happy": 3, "sad": 4,
    "angry": 5, "fear": 6, "disgust": 7, "surprised": 8,
}
# Fixed order in which n_sentences maps onto (statement, repetition, intensity).
_RAVDESS_COMBOS: tuple[tuple[int, int, int], ...] = (
    (1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1),
    (1, 1, 2), (2, 1, 2), (1, 2, 2), (2, 2, 2),
)
_RAVDESS_STRONG_INTENSITY = 1.5  # prosodic scaling for intensity 02

_LAYOUT_MAX_SENTENCES = {"emodb": len(_EMODB_SENTENCES), "emovo": len(_EMOVO_SENTENCES),
                         "ravdess": len(_RAVDESS_COMBOS)}
_LAYOUT_MAX_SPEAKERS = {"emodb": len(_EMODB_SPEAKERS), "emovo": len(_EMOVO_SPEAKERS),
                        "ravdess": _RAVDESS_N_ACTORS}
_LAYOUT_EMOTIONS = {"emodb": tuple(e for e in EMOTIONS if e in _EMODB_CODES),
                    "emovo": tuple(e for e in EMOTIONS if e in _EMOVO_CODES),
                    "ravdess": tuple(e for e in EMOTIONS if e in _RAVDESS_CODES)}

# Syllable counts loosely following the real sentences (long ones capped so the
# utterances stay within ~1.5-4.5 s).
_SENTENCE_SYLLABLES = {
    "emodb:a01": 9, "emodb:a02": 10, "emodb:a04": 11, "emodb:a05": 15, "emodb:a07": 10,
    "emodb:b01": 14, "emodb:b02": 15, "emodb:b03": 16, "emodb:b09": 15, "emodb:b10": 13,
    "emovo:b1": 7, "emovo:b2": 8, "emovo:b3": 6, "emovo:l1": 14, "emovo:l2": 13,
    "emovo:l3": 15, "emovo:l4": 12, "emovo:n1": 9, "emovo:n2": 10, "emovo:n3": 8,
    "emovo:n4": 11, "emovo:n5": 9, "emovo:d1": 6, "emovo:d2": 7,
    "ravdess:01": 7, "ravdess:02": 7,
}

# --------------------------------------------------------------------------
# Phonetic tables
# --------------------------------------------------------------------------

# Reference (adult male) formants F1..F4 in Hz: a e i o u schwa E O
_VOWEL_FORMANTS = np.array(
    [
        [730.0, 1100.0, 2450.0, 3400.0],
        [400.0, 2100.0, 2650.0, 3500.0],
        [280.0, 2250.0, 2950.0, 3600.0],
        [450.0, 800.0, 2650.0, 3400.0],
        [310.0, 850.0, 2250.0, 3300.0],
        [500.0, 1450.0, 2500.0, 3450.0],
        [550.0, 1800.0, 2500.0, 3450.0],
        [580.0, 900.0, 2500.0, 3400.0],
    ]
)
_SCHWA = 5
_VOWEL_PROBS = np.array([0.2, 0.15, 0.14, 0.1, 0.1, 0.11, 0.11, 0.09])
_SONORANT_FORMANTS = np.array([280.0, 1150.0, 2300.0, 3300.0])
_FORMANT_BW = np.array([80.0, 100.0, 140.0, 220.0])
_F5, _F5_BW = 4500.0, 320.0

# Onset consonant classes.
_ON_NONE, _ON_SON, _ON_FRIC, _ON_STOP = 0, 1, 2, 3
# Noise bands: s, sh, f (fricatives) and a broadband stop burst; (lo, hi, level).
_NOISE_BANDS = ((3800.0, 7600.0, 0.28), (2100.0, 4600.0, 0.24),
                (1200.0, 7000.0, 0.10), (400.0, 6000.0, 0.45))
_BURST_BAND = 3

# Segment kinds.
_SIL, _VOW, _SON, _FRIC, _CLOS, _BURST = 0, 1, 2, 3, 4, 5

_HOP_S = 0.005  # control rate: 5 ms
_MIN_DUR, _MAX_DUR = 1.5, 4.5  # hard bounds (s) on the rendered duration

# --------------------------------------------------------------------------
# Emotion prosody: per-utterance parameters ~ N(mean, sd), clipped
# --------------------------------------------------------------------------

_PROSODY_KEYS = (
    "f0_shift",       # semitones relative to the speaker's base f0
    "f0_range",       # semitones, height of pitch accents
    "declination",    # semitones of f0 drop across the utterance
    "final",          # semitones of final rise (+) / fall (-)
    "rate",           # syllable-rate multiplier
    "level_db",       # loudness relative to the reference, dB
    "energy_var",     # dB std of syllable loudness
    "tilt",           # spectral tilt, -1 dark ... +1 bright
    "breath",         # aspiration noise ratio
    "jitter",         # relative per-period f0 perturbation
    "shimmer",        # relative per-period amplitude perturbation (log)
    "creak",          # probability of a creaky (irregular) period
    "pause",          # pause length multiplier
    "formant_shift",  # relative shift of all formants (smile / spread lips)
)
_PROSODY_MEANS: dict[str, tuple[float, ...]] = {
    #             f0   rng  decl  fin  rate  lvl  evar tilt  brth  jit    shim  crk   pau  fsh
    "neutral":   (0.0, 3.0, 2.5, -1.5, 1.00, 0.0, 2.0, 0.00, 0.08, 0.006, 0.04, 0.02, 1.0, 0.000),
    "happy":     (2.8, 4.8, 2.0, 0.5, 1.10, 2.5, 3.0, 0.35, 0.06, 0.008, 0.05, 0.01, 0.8, 0.025),
    "sad":       (-1.8, 1.3, 2.0, -2.5, 0.78, -6.0, 1.4, -0.60, 0.24, 0.010, 0.06, 0.05, 1.5, -0.015),
    "bored":     (-1.2, 0.6, 0.5, -1.0, 0.85, -3.0, 1.0, -0.30, 0.14, 0.006, 0.04, 0.06, 1.3, -0.010),
    "disgust":   (-1.0, 2.4, 3.0, -3.5, 0.84, -1.0, 2.6, -0.15, 0.12, 0.018, 0.09, 0.30, 1.3, 0.000),
    "angry":     (2.2, 4.0, 2.0, -2.5, 1.08, 5.0, 3.5, 0.70, 0.04, 0.010, 0.05, 0.03, 0.7, 0.020),
    "fear":      (4.0, 2.2, 0.5, 0.5, 1.22, 0.0, 2.5, 0.10, 0.24, 0.026, 0.09, 0.04, 0.9, 0.010),
    "surprised": (3.4, 5.5, 0.0, 5.0, 0.98, 2.0, 3.0, 0.30, 0.10, 0.008, 0.05, 0.01, 1.0, 0.015),
    "calm":      (-0.6, 1.8, 2.5, -1.5, 0.90, -2.5, 1.2, -0.25, 0.14, 0.005, 0.035, 0.02, 1.3, -0.005),
}
_PROSODY_SD = (1.6, 0.9, 1.0, 1.3, 0.08, 3.0, 0.6, 0.30, 0.05, 0.003, 0.015, 0.03, 0.2, 0.012)
_PROSODY_LIMITS = (
    (-8.0, 10.0), (0.2, 10.0), (-2.0, 6.0), (-7.0, 9.0), (0.6, 1.5), (-16.0, 12.0),
    (0.3, 6.0), (-1.2, 1.2), (0.0, 0.6), (0.001, 0.06), (0.005, 0.2), (0.0, 0.6),
    (0.4, 2.5), (-0.06, 0.08),
)
_STYLE_SD_FRAC = 0.6       # per (speaker, emotion) offset, in units of _PROSODY_SD
_UTTERANCE_SD_FRAC = 0.7   # per-utterance spread, in units of _PROSODY_SD
_LEVEL_REF = 0.3  # peak amplitude at level_db == 0
_MAX_PEAK = 0.95


@dataclass(frozen=True)
class _Speaker:
    seed: int
    gender: str
    f0: float             # base f0, Hz
    formant_scale: float  # multiplies the reference (male) formants
    rate: float
    breath: float
    jitter: float
    shimmer: float
    tilt: float
    level_db: float
    range_scale: float
    expressivity: float   # scales the deviation of emotions from neutral
    oq: float             # glottal open quotient


@dataclass(frozen=True)
class _Content:
    vowels: np.ndarray     # (n,) vowel index
    onset: np.ndarray      # (n,) onset class
    fric: np.ndarray       # (n,) noise band of fricative onsets
    stressed: np.ndarray   # (n,) bool
    word_end: np.ndarray   # (n,) bool
    phrase_end: np.ndarray  # (n,) bool: pause after this syllable


# --------------------------------------------------------------------------
# Seeding helpers
# --------------------------------------------------------------------------


def _stable_int(*parts: object) -> int:
    """A platform-independent 63-bit integer hash of ``parts``."""
    text = "|".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_stable_int(*parts))


# --------------------------------------------------------------------------
# Speaker, content and prosody sampling
# --------------------------------------------------------------------------


def _normalize_gender(gender: str) -> str:
    g = str(gender).strip().lower()
    if g in ("m", "male"):
        return "m"
    if g in ("f", "female"):
        return "f"
    raise ValueError(f"gender must be 'm' or 'f' (or 'male'/'female'); got {gender!r}")


def _speaker_traits(gender: str, speaker_seed: int) -> _Speaker:
    rng = _rng("speaker", gender, int(speaker_seed))
    male = gender == "m"
    return _Speaker(
        seed=int(speaker_seed),
        gender=gender,
        f0=float(rng.uniform(100.0, 130.0) if male else rng.uniform(190.0, 240.0)),
        formant_scale=float(np.clip(rng.normal(1.0 if male else 1.16, 0.035), 0.9, 1.3)),
        rate=float(np.clip(rng.normal(1.0, 0.07), 0.85, 1.15)),
        breath=float(np.clip(rng.normal(0.03 if male else 0.07, 0.03), 0.0, 0.2)),
        jitter=float(rng.uniform(0.002, 0.006)),
        shimmer=float(rng.uniform(0.01, 0.03)),
        tilt=float(np.clip(rng.normal(0.0, 0.2), -0.5, 0.5)),
        level_db=float(np.clip(rng.normal(0.0, 1.5), -4.0, 4.0)),
        range_scale=float(rng.uniform(0.8, 1.25)),
        expressivity=float(rng.uniform(0.7, 1.3)),
        oq=float(rng.uniform(0.5, 0.62) if male else rng.uniform(0.58, 0.7)),
    )


def _sentence_content(key: str) -> _Content:
    """Segmental content of a sentence; depends only on ``key``."""
    rng = _rng("sentence", key)
    n = _SENTENCE_SYLLABLES.get(key)
    if n is None:
        n = int(rng.integers(6, 15))
    vowels = rng.choice(len(_VOWEL_FORMANTS), size=n, p=_VOWEL_PROBS)
    onset = rng.choice(4, size=n, p=[0.2, 0.35, 0.25, 0.2])
    fric = rng.choice(3, size=n, p=[0.45, 0.25, 0.3])
    # Group syllables into words of 1-3 syllables; stress mostly word-initial.
    stressed = np.zeros(n, dtype=bool)
    word_end = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        wl = min(int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25])), n - i)
        if wl > 1 or rng.random() < 0.5:
            stressed[i + (1 if (wl == 3 and rng.random() < 0.3) else 0)] = True
        word_end[i + wl - 1] = True
        i += wl
    if not stressed.any():
        stressed[0] = True
    phrase_end = word_end & (rng.random(n) < 0.22)
    phrase_end[-1] = False
    if n >= 12 and not phrase_end.any():
        ends = np.flatnonzero(word_end[:-1])
        if len(ends):
            phrase_end[ends[np.argmin(np.abs(ends - n // 2))]] = True
    return _Content(vowels, onset, fric, stressed, word_end, phrase_end)


def _sample_prosody(emotion: str, spk: _Speaker, rng: np.random.Generator,
                    intensity: float) -> dict[str, float]:
    neutral = np.asarray(_PROSODY_MEANS["neutral"])
    mean = np.asarray(_PROSODY_MEANS[emotion])
    sd = np.asarray(_PROSODY_SD)
    scale = spk.expressivity * float(intensity)
    # Each speaker has an idiosyncratic way of expressing each emotion (fixed
    # offset), on top of the per-utterance variation.
    style = _rng("style", spk.seed, spk.gender, emotion).standard_normal(len(sd))
    v = (neutral + scale * (mean - neutral) + _STYLE_SD_FRAC * sd * style
         + _UTTERANCE_SD_FRAC * sd * rng.standard_normal(len(sd)))
    p = {k: float(x) for k, x in zip(_PROSODY_KEYS, v)}
    p["f0_range"] *= spk.range_scale
    p["rate"] *= spk.rate
    p["level_db"] += spk.level_db
    p["tilt"] += spk.tilt
    p["breath"] += spk.breath
    p["jitter"] += spk.jitter
    p["shimmer"] += spk.shimmer
    for k, (lo, hi) in zip(_PROSODY_KEYS, _PROSODY_LIMITS):
        p[k] = float(np.clip(p[k], lo, hi))
    return p


# --------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
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


def _plan_segments(content: _Content, p: dict[str, float], rng: np.random.Generator):
    """Timing of segments (seconds) for one utterance."""
    n = len(content.vowels)
    syl_rate = 4.6 * p["rate"]
    base = 1.0 / syl_rate
    dur = base * np.where(content.stressed, 1.25, 0.88) * np.exp(rng.normal(0.0, 0.12, n))
    dur[-1] *= 1.35  # phrase-final lengthening
    k = np.sqrt(base / 0.217)
    on_dur = np.select(
        [content.onset == _ON_SON, content.onset == _ON_FRIC, content.onset == _ON_STOP],
        [0.055 * k, 0.085 * k, 0.068 * k], 0.0,
    ) * np.exp(rng.normal(0.0, 0.1, n))
    vow_dur = np.maximum(dur - on_dur, 0.05)
    pause = np.where(content.phrase_end, rng.uniform(0.12, 0.28, n) * p["pause"], 0.0)
    pause += np.where(content.word_end & ~content.phrase_end & (rng.random(n) < 0.3),
                      rng.uniform(0.01, 0.04, n), 0.0)
    pause[-1] = 0.0
    lead = float(rng.uniform(0.08, 0.35))
    trail = float(rng.uniform(0.10, 0.40))
    speech = float(on_dur.sum() + vow_dur.sum() + pause.sum())
    lo, hi = _MIN_DUR + 0.1 - lead - trail, _MAX_DUR - 0.1 - lead - trail
    stretch = float(np.clip(speech, lo, hi) / speech)
    on_dur, vow_dur, pause = on_dur * stretch, vow_dur * stretch, pause * stretch

    kinds, ends, syl = [_SIL], [lead], [0]
    t = lead
    for i in range(n):
        if content.onset[i] == _ON_STOP:
            kinds += [_CLOS, _BURST]
            t += on_dur[i] * 0.75
            ends.append(t)
            t += on_dur[i] * 0.25
            ends.append(t)
            syl += [i, i]
        elif content.onset[i] != _ON_NONE:
            kinds.append(_SON if content.onset[i] == _ON_SON else _FRIC)
            t += on_dur[i]
            ends.append(t)
            syl.append(i)
        kinds.append(_VOW)
        t += vow_dur[i]
        ends.append(t)
        syl.append(i)
        if pause[i] > 0:
            kinds.append(_SIL)
            t += pause[i]
            ends.append(t)
            syl.append(i)
    speech_end = t
    kinds.append(_SIL)
    t += trail
    ends.append(t)
    syl.append(n - 1)
    return (np.asarray(kinds), np.asarray(ends), np.asarray(syl), lead, speech_end, t)


def _rosenberg(phi: np.ndarray, tp: float, tn: float) -> np.ndarray:
    """Rosenberg glottal flow pulse for phase ``phi`` in [0, 1)."""
    g = np.zeros_like(phi)
    op = phi < tp
    g[op] = 0.5 * (1.0 - np.cos(np.pi * phi[op] / tp))
    cl = (~op) & (phi < tp + tn)
    g[cl] = np.cos(0.5 * np.pi * (phi[cl] - tp) / tn)
    return g


def _cascade_tf(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
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


def _render(spk: _Speaker, content: _Content, p: dict[str, float],
            rng: np.random.Generator, sr: int) -> np.ndarray:
    nyq = 0.5 * sr
    kinds, ends, seg_syl, lead, speech_end, total = _plan_segments(content, p, rng)
    L = max(1, int(round(_HOP_S * sr)))
    hop = L / sr
    n_frames = int(np.ceil(total / hop))
    n_samp = n_frames * L
    n_syl = len(content.vowels)

    tf = (np.arange(n_frames) + 0.5) * hop
    seg = np.minimum(np.searchsorted(ends, tf, side="right"), len(ends) - 1)
    fk = kinds[seg]
    fsyl = seg_syl[seg]

    # ---- loudness per syllable (dB): stress, variability, declination
    starts = np.concatenate([[0.0], ends[:-1]])
    vow_mask = kinds == _VOW
    syl_center = 0.5 * (starts[vow_mask] + ends[vow_mask])
    syl_len = ends[vow_mask] - starts[vow_mask]
    rel = (syl_center - lead) / max(speech_end - lead, 1e-3)
    syl_db = (np.where(content.stressed, 2.0, 0.0) + rng.normal(0.0, p["energy_var"], n_syl)
              - 2.5 * rel)
    syl_amp = 10.0 ** (syl_db / 20.0)

    # ---- voicing and noise envelopes (frame rate)
    voice = np.where(fk == _VOW, syl_amp[fsyl], 0.0) + np.where(fk == _SON, 0.3 * syl_amp[fsyl], 0.0)
    noise_env = np.zeros((n_frames, len(_NOISE_BANDS)))
    fr = fk == _FRIC
    noise_env[fr, content.fric[fsyl[fr]]] = syl_amp[fsyl[fr]]
    noise_env[fk == _BURST, _BURST_BAND] = syl_amp[fsyl[fk == _BURST]]
    voice = _smooth(voice, 4)
    noise_env = _smooth(noise_env, 3)

    # ---- formant tracks: per-syllable vowel targets, reduction, smoothing
    fscale = spk.formant_scale * (1.0 + p["formant_shift"])
    targets = _VOWEL_FORMANTS[content.vowels] * np.exp(rng.normal(0.0, 0.03, (n_syl, 4)))
    reduction = np.clip(np.where(content.stressed, 0.05, 0.3) + 0.4 * (p["rate"] - 1.0), 0.0, 0.6)
    targets = (1.0 - reduction[:, None]) * targets + reduction[:, None] * _VOWEL_FORMANTS[_SCHWA]
    ftrack = targets[fsyl]
    ftrack[fk == _SON] = _SONORANT_FORMANTS
    ftrack = _smooth(ftrack, 7) * fscale
    ftrack = np.minimum(ftrack, 0.42 * sr)
    bw = _FORMANT_BW * (1.0 + 2.0 * p["breath"])
    bw_track = np.broadcast_to(bw, ftrack.shape)
    f5 = min(_F5 * fscale, 0.45 * sr)
    filt_b, filt_a = _cascade_tf(
        np.concatenate([ftrack, np.full((n_frames, 1), f5)], axis=1),
        np.concatenate([bw_track, np.full((n_frames, 1), _F5_BW)], axis=1),
        sr,
    )

    # ---- f0 contour (semitones, frame rate)
    rel_t = np.clip((tf - lead) / max(speech_end - lead, 1e-3), 0.0, 1.0)
    heights = np.where(content.stressed, p["f0_range"] * rng.uniform(0.5, 1.0, n_syl),
                       p["f0_range"] * rng.uniform(-0.25, 0.3, n_syl))
    widths = 0.45 * syl_len + 0.03
    accents = (heights[:, None] * np.exp(-0.5 * ((tf[None, :] - syl_center[:, None]) / widths[:, None]) ** 2)).sum(0)
    last0 = starts[vow_mask][-1]
    ramp = np.clip((tf - last0) / max(syl_len[-1], 1e-3), 0.0, 1.0) ** 1.5
    wander = _smooth(rng.normal(0.0, 1.0, n_frames), 40)
    wander *= 0.5 / (wander.std() + 1e-9)
    semis = p["f0_shift"] - p["declination"] * rel_t + accents + p["final"] * ramp + wander
    f0_frames = np.clip(spk.f0 * 2.0 ** (semis / 12.0), 55.0, 650.0)

    # ---- sample-rate control signals
    ts = (np.arange(n_samp) + 0.5) / sr
    f0s = np.exp(np.interp(ts, tf, np.log(f0_frames)))
    vs = np.interp(ts, tf, voice)

    # ---- glottal source with jitter, shimmer and creak
    k0 = (np.cumsum(f0s) / sr).astype(np.int64)
    n_per = int(k0[-1]) + 2
    jit = np.clip(1.0 + p["jitter"] * rng.standard_normal(n_per), 0.7, 1.3)
    creak_prob = np.clip(p["creak"], 0.0, 1.0)
    creaky = rng.random(n_per) < creak_prob
    creak_fac = np.where(creaky, rng.uniform(1.4, 2.2, n_per), 1.0)
    f0e = f0s * jit[k0] / creak_fac[k0]
    ph = np.cumsum(f0e) / sr
    k = ph.astype(np.int64)
    phi = ph - k
    oq = float(np.clip(spk.oq + 0.25 * p["breath"] - 0.06 * p["tilt"], 0.35, 0.85))
    cq = float(np.clip(0.32 - 0.12 * p["tilt"], 0.12, 0.5))
    tp, tn = oq * (1.0 - cq), oq * cq
    g = _rosenberg(phi, tp, tn)
    src = np.diff(g, prepend=0.0)
    n_per2 = int(k[-1]) + 1
    shim = np.exp(p["shimmer"] * rng.standard_normal(n_per2))
    shim *= np.where(rng.random(n_per2) < creak_prob, rng.uniform(0.35, 0.9, n_per2), 1.0)
    src = src * shim[k] * vs
    voiced_mask = vs > 0.3 * max(vs.max(), 1e-9)
    src_rms = float(np.sqrt(np.mean(src[voiced_mask] ** 2))) if voiced_mask.any() else 1.0
    src /= max(src_rms, 1e-12)

    # spectral tilt: first-order shelf around 800 Hz, +-12 dB per unit tilt
    a = np.exp(-2.0 * np.pi * 800.0 / sr)
    low = signal.lfilter([1.0 - a], [1.0, -a], src)
    src = low + 10.0 ** (12.0 * p["tilt"] / 20.0) * (src - low)

    # aspiration noise modulated by the glottal opening
    asp = rng.standard_normal(n_samp) * (0.35 + 0.65 * g) * vs
    src = src + 2.0 * p["breath"] * asp

    # ---- time-varying formant cascade, 5 ms blocks
    out = np.empty(n_samp)
    zi = np.zeros(filt_a.shape[1] - 1)
    lfilter = signal.lfilter
    for i in range(n_frames):
        sl = slice(i * L, (i + 1) * L)
        out[sl], zi = lfilter(filt_b[i], filt_a[i], src[sl], zi=zi)
    if voiced_mask.any():
        out /= max(float(np.sqrt(np.mean(out[voiced_mask] ** 2))), 1e-12)

    # ---- frication / bursts
    white = rng.standard_normal(n_samp)
    for b, (lo_f, hi_f, level) in enumerate(_NOISE_BANDS):
        env = noise_env[:, b]
        if not env.any():
            continue
        hi_f = min(hi_f, 0.45 * sr)
        bsos = signal.butter(2, [lo_f / nyq, hi_f / nyq], btype="bandpass", output="sos")
        band = signal.sosfilt(bsos, white)
        band /= max(float(band.std()), 1e-12)
        out += level * band * np.interp(ts, tf, env)

    # ---- DC / rumble removal, normalisation, noise floor
    hp = signal.butter(2, 50.0 / nyq, btype="highpass", output="sos")
    out = signal.sosfilt(hp, out)
    out /= max(float(np.abs(out).max()), 1e-12)
    gain = float(np.clip(_LEVEL_REF * 10.0 ** (p["level_db"] / 20.0), 0.02, _MAX_PEAK))
    out *= gain
    floor = signal.lfilter([1.0], [1.0, -0.85], rng.standard_normal(n_samp))
    floor *= 10.0 ** (rng.uniform(-70.0, -58.0) / 20.0) / max(float(floor.std()), 1e-12)
    out += floor
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def synthesize_utterance(emotion: str, gender: str, speaker_seed: int, utterance_seed: int,
                         sample_rate: int = 16000, *, sentence: str | int | None = None,
                         intensity: float = 1.0) -> np.ndarray:
    """Render one synthetic emotional utterance.

    Parameters
    ----------
    emotion:
        One of :data:`EMOTIONS`.
    gender:
        ``"m"``/``"f"`` (or ``"male"``/``"female"``).
    speaker_seed:
        Seeds the speaker's traits (base f0, vocal-tract length, rate, voice
        quality, expressivity): the same seed and gender is the same voice.
    utterance_seed:
        Seeds the per-utterance prosody draw and all noise.
    sample_rate:
        Output rate in Hz (>= 8000).
    sentence:
        Key of the segmental content (syllables, vowels, consonants, stress);
        the same key gives the same content for every emotion and speaker.
        Corpus keys look like ``"emodb:a01"``. ``None`` derives the content
        from ``utterance_seed``.
    intensity:
        Scales the emotion's deviation from neutral (RAVDESS "strong" = 1.5).

    Returns
    -------
    numpy.ndarray
        float32 mono signal in [-1, 1], ~1.5-4.5 s long.
    """
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    g = _normalize_gender(gender)
    sr = int(sample_rate)
    if sr < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz; got {sample_rate}")
    if not (0.0 <= float(intensity) <= 3.0):
        raise ValueError(f"intensity must be in [0, 3]; got {intensity}")
    spk = _speaker_traits(g, int(speaker_seed))
    key = f"u{int(utterance_seed)}" if sentence is None else str(sentence)
    content = _sentence_content(key)
    rng = _rng("utterance", int(utterance_seed), emotion, g, key)
    p = _sample_prosody(emotion, spk, rng, float(intensity))
    return _render(spk, content, p, rng, sr)


# --------------------------------------------------------------------------
# Corpus generation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    relpath: str
    emotion: str
    gender: str
    speaker_seed: int
    utterance_seed: int
    sentence: str
    intensity: float
    sample_rate: int
    channels: int
    stereo_seed: int


def _validate_emotions(layout: str, emotions: str | Iterable[str] | None) -> tuple[str, ...]:
    if emotions is None:
        return DEFAULT_EMOTIONS[layout]
    if isinstance(emotions, str):
        emotions = [e for e in emotions.split(",")]
    emos = tuple(str(e).strip().lower() for e in emotions)
    emos = tuple(e for e in emos if e)
    if not emos:
        raise ValueError("emotions must name at least one emotion")
    supported = _LAYOUT_EMOTIONS[layout]
    for e in emos:
        if e not in EMOTIONS:
            raise ValueError(f"unknown emotion {e!r}; expected one of {', '.join(EMOTIONS)}")
        if e not in supported:
            raise ValueError(
                f"emotion {e!r} does not exist in the {layout} layout "
                f"(supported: {', '.join(supported)})"
            )
    dup = sorted({e for e in emos if emos.count(e) > 1})
    if dup:
        raise ValueError(f"duplicate emotions: {', '.join(dup)}")
    return emos


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    return int(value)


def _plan_corpus(layout: str, n_speakers: int, n_sentences: int,
                 emotions: str | Iterable[str] | None, seed: int) -> tuple[list[_Job], dict]:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    n_speakers = _check_int("n_speakers", n_speakers)
    n_sentences = _check_int("n_sentences", n_sentences)
    seed = _check_int("seed", seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    if n_speakers < 2 or n_speakers % 2:
        raise ValueError(
            f"n_speakers must be an even number >= 2 (half male, half female); got {n_speakers}"
        )
    max_spk = _LAYOUT_MAX_SPEAKERS[layout]
    if n_speakers > max_spk:
        raise ValueError(f"the {layout} layout has at most {max_spk} speakers "
                         f"(pass n_speakers <= {max_spk}); got n_speakers={n_speakers}")
    max_sent = _LAYOUT_MAX_SENTENCES[layout]
    if not 1 <= n_sentences <= max_sent:
        raise ValueError(f"n_sentences must be between 1 and {max_sent} for the {layout} layout; "
                         f"got {n_sentences}")
    emos = _validate_emotions(layout, emotions)

    sr = LAYOUT_SAMPLE_RATES[layout]
    ch = LAYOUT_CHANNELS[layout]
    jobs: list[_Job] = []

    def add(rel: str, emo: str, spk_id: str, gender: str, sent_key: str, utt_tag: str,
            intensity: float = 1.0) -> None:
        jobs.append(_Job(
            relpath=rel, emotion=emo, gender=gender,
            speaker_seed=_stable_int("spk", seed, layout, spk_id),
            utterance_seed=_stable_int("utt", seed, layout, spk_id, emo, utt_tag),
            sentence=sent_key, intensity=intensity, sample_rate=sr, channels=ch,
            stereo_seed=_stable_int("stereo", seed, layout, spk_id),
        ))

    if layout == "emodb":
        for spk_id, gender in _EMODB_SPEAKERS[:n_speakers]:
            for sent in _EMODB_SENTENCES[:n_sentences]:
                for emo in emos:
                    add(f"wav/{spk_id}{sent}{_EMODB_CODES[emo]}a.wav", emo, spk_id, gender,
                        f"emodb:{sent}", sent)
    elif layout == "emovo":
        for spk_id, gender in _EMOVO_SPEAKERS[:n_speakers]:
            for sent in _EMOVO_SENTENCES[:n_sentences]:
                for emo in emos:
                    add(f"{spk_id}/{_EMOVO_CODES[emo]}-{spk_id}-{sent}.wav", emo, spk_id, gender,
                        f"emovo:{sent}", sent)
    else:  # ravdess
        for actor in range(1, n_speakers + 1):
            gender = "m" if actor % 2 else "f"
            for stmt, rep, inten in _RAVDESS_COMBOS[:n_sentences]:
                for emo in emos:
                    if emo == "neutral" and inten != 1:
                        continue  # the real corpus has no strong-intensity neutral
                    name = (f"03-01-{_RAVDESS_CODES[emo]:02d}-{inten:02d}-{stmt:02d}-"
                            f"{rep:02d}-{actor:02d}.wav")
                    add(f"Actor_{actor:02d}/{name}", emo, f"{actor:02d}", gender,
                        f"ravdess:{stmt:02d}", f"{stmt:02d}-{rep:02d}-{inten:02d}",
                        _RAVDESS_STRONG_INTENSITY if inten == 2 else 1.0)

    params = {
        "generator_version": GENERATOR_VERSION,
        "layout": layout,
        "n_speakers": n_speakers,
        "n_sentences": n_sentences,
        "emotions": sorted(emos),
        "seed": seed,
    }
    jobs.sort(key=lambda j: j.relpath)
    return jobs, params


def _to_stereo(x: np.ndarray, seed: int) -> np.ndarray:
    """Second channel = slightly delayed, attenuated copy + its own faint noise."""
    rng = np.random.default_rng(seed)
    delay = int(rng.integers(5, 30))
    gain = float(rng.uniform(0.8, 0.95))
    right = np.zeros_like(x)
    right[delay:] = gain * x[:-delay]
    right += (rng.standard_normal(len(x)) * 10.0 ** (rng.uniform(-72.0, -62.0) / 20.0)).astype(x.dtype)
    return np.stack([x, np.clip(right, -1.0, 1.0)], axis=1)


def _atomic_write_bytes(path: pathlib.Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _render_and_write(job: _Job, root: str) -> float:
    x = synthesize_utterance(job.emotion, job.gender, job.speaker_seed, job.utterance_seed,
                             job.sample_rate, sentence=job.sentence, intensity=job.intensity)
    if job.channels == 2:
        x = _to_stereo(x, _stable_int(job.stereo_seed, job.relpath))
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    path = pathlib.Path(root) / job.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(
        path, lambda tmp: sf.write(str(tmp), pcm, job.sample_rate, subtype="PCM_16", format="WAV")
    )
    return len(pcm) / job.sample_rate


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The ``synthetic.json`` manifest under ``root``, or None if absent/unreadable."""
    path = pathlib.Path(root) / MANIFEST_NAME
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) \
            or not isinstance(data.get("files"), list):
        return None
    return data


def _remove_listed(root: pathlib.Path, manifest: dict) -> None:
    """Delete the files of an older synthetic corpus (only those it listed)."""
    root_res = root.resolve()
    dirs = set()
    for rel in manifest.get("files", []):
        p = (root / str(rel)).resolve()
        if root_res not in p.parents or p.suffix.lower() != ".wav":
            continue  # never touch anything outside root / not a wav
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        dirs.add(p.parent)
    for d in sorted(dirs, key=lambda q: len(q.parts), reverse=True):
        if d != root_res:
            try:
                d.rmdir()  # only succeeds when empty
            except OSError:
                pass
    try:
        (root / MANIFEST_NAME).unlink()
    except FileNotFoundError:
        pass


def generate_corpus(root: str | os.PathLike, layout: str = "emodb", n_speakers: int = 10,
                    n_sentences: int = 5, emotions: Sequence[str] | str | None = None,
                    seed: int = 0, overwrite: bool = False, n_jobs: int = 1) -> list[pathlib.Path]:
    """Write a synthetic corpus under ``root`` in the given ``layout``.

    Half the speakers are male, half female (``n_speakers`` must be even and
    >= 2). ``emotions=None`` uses :data:`DEFAULT_EMOTIONS[layout]`. Each WAV is
    written atomically; a ``synthetic.json`` manifest (parameters + file list)
    is written last, atomically. If ``root`` already holds a complete corpus
    generated with the same parameters nothing is rewritten; if it holds one
    with different parameters, ``overwrite=False`` raises ``ValueError`` and
    ``overwrite=True`` deletes the old corpus' files and regenerates.

    RAVDESS note: neutral has no intensity-02 recordings, so with
    ``n_sentences > 4`` neutral gets fewer files than the other emotions.

    Returns the sorted list of written (or already present) WAV paths.
    """
    root = pathlib.Path(root)
    jobs, params = _plan_corpus(layout, n_speakers, n_sentences, emotions, seed)
    n_jobs = _check_int("n_jobs", n_jobs)
    if n_jobs == -1 or n_jobs == 0:
        n_jobs = os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all cores); got {n_jobs}")
    expected = [j.relpath for j in jobs]
    paths = sorted(root / r for r in expected)

    old = read_manifest(root)
    todo = jobs
    if old is not None:
        if old["params"] == params:
            if sorted(old["files"]) == expected:
                todo = [j for j in jobs if not (root / j.relpath).is_file()]
                if not todo:
                    return paths
        elif not overwrite:
            raise ValueError(
                f"{root} already holds a synthetic corpus generated with different parameters "
                f"(existing: {json.dumps(old['params'], sort_keys=True)}; "
                f"requested: {json.dumps(params, sort_keys=True)}); "
                f"pass overwrite=True (--overwrite) or use another root"
            )
        else:
            _remove_listed(root, old)
    elif (root / MANIFEST_NAME).exists() and not overwrite:
        raise ValueError(f"{root / MANIFEST_NAME} exists but is not a valid manifest; "
                         f"pass overwrite=True (--overwrite) or remove it")

    root.mkdir(parents=True, exist_ok=True)
    if n_jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo))) as ex:
            list(ex.map(_render_and_write, todo, [str(root)] * len(todo),
                        chunksize=max(1, len(todo) // (4 * n_jobs))))
    else:
        for job in todo:
            _render_and_write(job, str(root))

    total = 0.0
    for rel in expected:
        info = sf.info(str(root / rel))
        total += info.frames / info.samplerate
    manifest = {
        "generator": "ser_attacks.data.synthetic",
        "params": params,
        "sample_rate": LAYOUT_SAMPLE_RATES[layout],
        "channels": LAYOUT_CHANNELS[layout],
        "n_files": len(expected),
        "total_duration_s": round(total, 3),
        "files": expected,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _atomic_write_bytes(root / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return paths


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ser_attacks.data.synthetic",
        description="Generate a deterministic synthetic emotional-speech corpus laid out "
                    "like EmoDB, EMOVO or RAVDESS.",
    )
    ap.add_argument("--root", required=True, help="output directory")
    ap.add_argument("--layout", default="emodb", choices=LAYOUTS)
    ap.add_argument("--n-speakers", type=int, default=None,
                    help="even number of speakers (default: 10, or 6 for emovo)")
    ap.add_argument("--n-sentences", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emotions", default=None,
                    help="comma-separated emotions (default: the layout's defaults)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing corpus generated with other parameters")
    ap.add_argument("--n-jobs", type=int, default=1, help="worker processes (-1: all cores)")
    args = ap.parse_args(argv)
    if args.n_speakers is None:
        args.n_speakers = min(10, _LAYOUT_MAX_SPEAKERS[args.layout])
    t0 = time.perf_counter()
    try:
        paths = generate_corpus(args.root, layout=args.layout, n_speakers=args.n_speakers,
                                n_sentences=args.n_sentences, emotions=args.emotions,
                                seed=args.seed, overwrite=args.overwrite, n_jobs=args.n_jobs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = read_manifest(args.root) or {}
    total = float(m.get("total_duration_s", 0.0))
    print(f"{len(paths)} files, {args.n_speakers} speakers ({args.n_speakers // 2} male, "
          f"{args.n_speakers // 2} female), {total:.1f} s total audio, layout={args.layout} "
          f"({LAYOUT_SAMPLE_RATES[args.layout]} Hz, {LAYOUT_CHANNELS[args.layout]} ch) "
          f"in {args.root} [{time.perf_counter() - t0:.1f} s]")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
