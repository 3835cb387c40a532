"""Who speaks and how: speaker traits and the emotions' prosody and voice quality.

Emotions are rendered only through *prosody and voice quality* (f0 level, range and contour shape,
tempo, pauses, loudness and its variability, spectral tilt, breathiness, jitter/shimmer, creak, a small
formant shift), each sampled per utterance from a distribution around the emotion mean with substantial
spread, scaled by a per-speaker expressivity, so classes overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seeds import rng as seeded_rng

# Per-utterance parameters ~ N(mean, sd), clipped.
PROSODY_KEYS = (
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
PROSODY_MEANS: dict[str, tuple[float, ...]] = {
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
PROSODY_SD = (1.6, 0.9, 1.0, 1.3, 0.08, 3.0, 0.6, 0.30, 0.05, 0.003, 0.015, 0.03, 0.2, 0.012)
PROSODY_LIMITS = (
    (-8.0, 10.0), (0.2, 10.0), (-2.0, 6.0), (-7.0, 9.0), (0.6, 1.5), (-16.0, 12.0),
    (0.3, 6.0), (-1.2, 1.2), (0.0, 0.6), (0.001, 0.06), (0.005, 0.2), (0.0, 0.6),
    (0.4, 2.5), (-0.06, 0.08),
)
STYLE_SD_FRAC = 0.6       # per (speaker, emotion) offset, in units of PROSODY_SD
UTTERANCE_SD_FRAC = 0.7   # per-utterance spread, in units of PROSODY_SD

#: The emotions the synthesiser can render (the rows of the prosody table).
EMOTIONS: tuple[str, ...] = tuple(PROSODY_MEANS)


@dataclass(frozen=True)
class Speaker:
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


def normalize_gender(gender: str) -> str:
    g = str(gender).strip().lower()
    if g in ("m", "male"):
        return "m"
    if g in ("f", "female"):
        return "f"
    raise ValueError(f"gender must be 'm' or 'f' (or 'male'/'female'); got {gender!r}")


def speaker_traits(gender: str, speaker_seed: int) -> Speaker:
    """The voice of speaker ``speaker_seed``: the same seed and gender is the same voice."""
    rng = seeded_rng("speaker", gender, int(speaker_seed))
    male = gender == "m"
    return Speaker(
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


def sample_prosody(emotion: str, spk: Speaker, rng: np.random.Generator,
                   intensity: float) -> dict[str, float]:
    """One utterance's prosody: the emotion's mean scaled by expressivity and intensity, a fixed
    per-(speaker, emotion) style offset, per-utterance noise, then the speaker's own traits."""
    neutral = np.asarray(PROSODY_MEANS["neutral"])
    mean = np.asarray(PROSODY_MEANS[emotion])
    sd = np.asarray(PROSODY_SD)
    scale = spk.expressivity * float(intensity)
    # Each speaker has an idiosyncratic way of expressing each emotion (fixed
    # offset), on top of the per-utterance variation.
    style = seeded_rng("style", spk.seed, spk.gender, emotion).standard_normal(len(sd))
    v = (neutral + scale * (mean - neutral) + STYLE_SD_FRAC * sd * style
         + UTTERANCE_SD_FRAC * sd * rng.standard_normal(len(sd)))
    p = {k: float(x) for k, x in zip(PROSODY_KEYS, v)}
    p["f0_range"] *= spk.range_scale
    p["rate"] *= spk.rate
    p["level_db"] += spk.level_db
    p["tilt"] += spk.tilt
    p["breath"] += spk.breath
    p["jitter"] += spk.jitter
    p["shimmer"] += spk.shimmer
    for k, (lo, hi) in zip(PROSODY_KEYS, PROSODY_LIMITS):
        p[k] = float(np.clip(p[k], lo, hi))
    return p
