"""What is said and when: a sentence's segmental content and its timing.

The segmental content (syllable count, vowels, consonants, stress, phrase breaks) depends only on the
sentence key, so the same sentence has the same content across emotions and speakers; the timing
(syllable, consonant and pause durations) follows the utterance's tempo and pause prosody.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seeds import rng as seeded_rng

# Syllable counts loosely following the real sentences (long ones capped so the
# utterances stay within ~1.5-4.5 s).
SENTENCE_SYLLABLES = {
    "emodb:a01": 9, "emodb:a02": 10, "emodb:a04": 11, "emodb:a05": 15, "emodb:a07": 10,
    "emodb:b01": 14, "emodb:b02": 15, "emodb:b03": 16, "emodb:b09": 15, "emodb:b10": 13,
    "emovo:b1": 7, "emovo:b2": 8, "emovo:b3": 6, "emovo:l1": 14, "emovo:l2": 13,
    "emovo:l3": 15, "emovo:l4": 12, "emovo:n1": 9, "emovo:n2": 10, "emovo:n3": 8,
    "emovo:n4": 11, "emovo:n5": 9, "emovo:d1": 6, "emovo:d2": 7,
    "ravdess:01": 7, "ravdess:02": 7,
}

# Reference (adult male) formants F1..F4 in Hz: a e i o u schwa E O
VOWEL_FORMANTS = np.array(
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
SCHWA = 5
VOWEL_PROBS = np.array([0.2, 0.15, 0.14, 0.1, 0.1, 0.11, 0.11, 0.09])
SONORANT_FORMANTS = np.array([280.0, 1150.0, 2300.0, 3300.0])
FORMANT_BW = np.array([80.0, 100.0, 140.0, 220.0])
F5, F5_BW = 4500.0, 320.0

# Onset consonant classes.
ON_NONE, ON_SON, ON_FRIC, ON_STOP = 0, 1, 2, 3
# Noise bands: s, sh, f (fricatives) and a broadband stop burst; (lo, hi, level).
NOISE_BANDS = ((3800.0, 7600.0, 0.28), (2100.0, 4600.0, 0.24),
               (1200.0, 7000.0, 0.10), (400.0, 6000.0, 0.45))
BURST_BAND = 3

# Segment kinds.
SIL, VOW, SON, FRIC, CLOS, BURST = 0, 1, 2, 3, 4, 5

MIN_DUR, MAX_DUR = 1.5, 4.5  # hard bounds (s) on the rendered duration


@dataclass(frozen=True)
class Content:
    vowels: np.ndarray     # (n,) vowel index
    onset: np.ndarray      # (n,) onset class
    fric: np.ndarray       # (n,) noise band of fricative onsets
    stressed: np.ndarray   # (n,) bool
    word_end: np.ndarray   # (n,) bool
    phrase_end: np.ndarray  # (n,) bool: pause after this syllable


@dataclass(frozen=True)
class Segments:
    """One utterance's segment sequence: kind, end time (s) and syllable of each segment."""
    kinds: np.ndarray
    ends: np.ndarray
    syllable: np.ndarray
    lead: float            # start of speech (s)
    speech_end: float      # end of speech (s)
    total: float           # end of the trailing silence (s)


def sentence_content(key: str) -> Content:
    """Segmental content of a sentence; depends only on ``key``."""
    rng = seeded_rng("sentence", key)
    n = SENTENCE_SYLLABLES.get(key)
    if n is None:
        n = int(rng.integers(6, 15))
    vowels = rng.choice(len(VOWEL_FORMANTS), size=n, p=VOWEL_PROBS)
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
    return Content(vowels, onset, fric, stressed, word_end, phrase_end)


def _durations(content: Content, p: dict[str, float], rng: np.random.Generator):
    """Onset, vowel and pause durations per syllable, and the leading/trailing silences (s), stretched
    so that the utterance lasts between MIN_DUR and MAX_DUR."""
    n = len(content.vowels)
    syl_rate = 4.6 * p["rate"]
    base = 1.0 / syl_rate
    dur = base * np.where(content.stressed, 1.25, 0.88) * np.exp(rng.normal(0.0, 0.12, n))
    dur[-1] *= 1.35  # phrase-final lengthening
    k = np.sqrt(base / 0.217)
    on_dur = np.select(
        [content.onset == ON_SON, content.onset == ON_FRIC, content.onset == ON_STOP],
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
    lo, hi = MIN_DUR + 0.1 - lead - trail, MAX_DUR - 0.1 - lead - trail
    stretch = float(np.clip(speech, lo, hi) / speech)
    return on_dur * stretch, vow_dur * stretch, pause * stretch, lead, trail


def plan_segments(content: Content, p: dict[str, float], rng: np.random.Generator) -> Segments:
    """Timing of segments (seconds) for one utterance."""
    on_dur, vow_dur, pause, lead, trail = _durations(content, p, rng)
    n = len(content.vowels)
    kinds, ends, syl = [SIL], [lead], [0]
    t = lead
    for i in range(n):
        if content.onset[i] == ON_STOP:
            kinds += [CLOS, BURST]
            t += on_dur[i] * 0.75
            ends.append(t)
            t += on_dur[i] * 0.25
            ends.append(t)
            syl += [i, i]
        elif content.onset[i] != ON_NONE:
            kinds.append(SON if content.onset[i] == ON_SON else FRIC)
            t += on_dur[i]
            ends.append(t)
            syl.append(i)
        kinds.append(VOW)
        t += vow_dur[i]
        ends.append(t)
        syl.append(i)
        if pause[i] > 0:
            kinds.append(SIL)
            t += pause[i]
            ends.append(t)
            syl.append(i)
    speech_end = t
    kinds.append(SIL)
    t += trail
    ends.append(t)
    syl.append(n - 1)
    return Segments(np.asarray(kinds), np.asarray(ends), np.asarray(syl), lead, speech_end, t)
