"""The synthesiser: one emotional utterance as a float32 signal.

A small source-filter speech synthesiser:

* **source** - a Rosenberg glottal pulse train (differentiated: glottal flow derivative) that follows an
  f0 contour, with per-period jitter and shimmer, optional creaky (irregular, subharmonic) periods, and
  glottally modulated aspiration noise (breathiness); a first-order shelf sets the spectral tilt;
* **filter** - a cascade of 5 two-pole resonators (4 vowel formants + a fixed 5th) whose frequencies
  follow a smoothed per-syllable vowel sequence and are scaled by the speaker's vocal-tract length;
  updated every 5 ms;
* **consonants** - sonorant onsets (low-amplitude voicing, nasal-like formants), fricatives (band-passed
  noise), stops (closure + burst); pauses at phrase boundaries, leading/trailing low-level noise floor.

The steps of :func:`render` draw from one generator in a fixed order; changing that order (or any step)
changes every file: bump ``GENERATOR_VERSION`` then (tests/test_synthetic_golden.py pins the bytes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import phonetics as ph
from .dsp import blockwise_filter, cascade_tf, rosenberg, smooth
from .phonetics import Content, plan_segments, sentence_content
from .prosody import EMOTIONS, Speaker, normalize_gender, sample_prosody, speaker_traits
from .seeds import rng as seeded_rng

#: Bump when the rendered signal changes; stored in the manifest parameters.
GENERATOR_VERSION = 1

HOP_S = 0.005  # control rate: 5 ms
LEVEL_REF = 0.3  # peak amplitude at level_db == 0
MAX_PEAK = 0.95


@dataclass(frozen=True)
class Frames:
    """The 5 ms control grid of one utterance."""
    block: int                # samples per frame
    t: np.ndarray             # frame centres (s)
    kind: np.ndarray          # segment kind per frame
    syl: np.ndarray           # syllable per frame
    lead: float               # start of speech (s)
    speech_end: float         # end of speech (s)
    vowel_start: np.ndarray   # per syllable: start of its vowel (s)
    syl_center: np.ndarray    # per syllable: centre of its vowel (s)
    syl_len: np.ndarray       # per syllable: length of its vowel (s)

    @property
    def n(self) -> int:
        return len(self.t)


def _frames(content: Content, p: dict[str, float], rng: np.random.Generator, sr: int) -> Frames:
    seg = plan_segments(content, p, rng)
    L = max(1, int(round(HOP_S * sr)))
    hop = L / sr
    n_frames = int(np.ceil(seg.total / hop))
    tf = (np.arange(n_frames) + 0.5) * hop
    i = np.minimum(np.searchsorted(seg.ends, tf, side="right"), len(seg.ends) - 1)
    starts = np.concatenate([[0.0], seg.ends[:-1]])
    vow = seg.kinds == ph.VOW
    return Frames(L, tf, seg.kinds[i], seg.syllable[i], seg.lead, seg.speech_end, starts[vow],
                  0.5 * (starts[vow] + seg.ends[vow]), seg.ends[vow] - starts[vow])


def _syllable_amplitudes(fr: Frames, content: Content, p, rng) -> np.ndarray:
    """Loudness per syllable: stress, variability, declination."""
    rel = (fr.syl_center - fr.lead) / max(fr.speech_end - fr.lead, 1e-3)
    syl_db = (np.where(content.stressed, 2.0, 0.0) + rng.normal(0.0, p["energy_var"], len(content.vowels))
              - 2.5 * rel)
    return 10.0 ** (syl_db / 20.0)


def _envelopes(fr: Frames, content: Content, syl_amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voicing and per-band noise envelopes at frame rate."""
    fk, fsyl = fr.kind, fr.syl
    voice = np.where(fk == ph.VOW, syl_amp[fsyl], 0.0) + np.where(fk == ph.SON, 0.3 * syl_amp[fsyl], 0.0)
    noise_env = np.zeros((fr.n, len(ph.NOISE_BANDS)))
    fric = fk == ph.FRIC
    noise_env[fric, content.fric[fsyl[fric]]] = syl_amp[fsyl[fric]]
    noise_env[fk == ph.BURST, ph.BURST_BAND] = syl_amp[fsyl[fk == ph.BURST]]
    return smooth(voice, 4), smooth(noise_env, 3)


def _formant_filter(fr: Frames, content: Content, spk: Speaker, p, rng, sr: int):
    """Per-frame transfer function of the formant cascade: vowel targets, reduction, smoothing."""
    n_syl = len(content.vowels)
    fscale = spk.formant_scale * (1.0 + p["formant_shift"])
    targets = ph.VOWEL_FORMANTS[content.vowels] * np.exp(rng.normal(0.0, 0.03, (n_syl, 4)))
    reduction = np.clip(np.where(content.stressed, 0.05, 0.3) + 0.4 * (p["rate"] - 1.0), 0.0, 0.6)
    targets = (1.0 - reduction[:, None]) * targets + reduction[:, None] * ph.VOWEL_FORMANTS[ph.SCHWA]
    ftrack = targets[fr.syl]
    ftrack[fr.kind == ph.SON] = ph.SONORANT_FORMANTS
    ftrack = smooth(ftrack, 7) * fscale
    ftrack = np.minimum(ftrack, 0.42 * sr)
    bw = ph.FORMANT_BW * (1.0 + 2.0 * p["breath"])
    bw_track = np.broadcast_to(bw, ftrack.shape)
    f5 = min(ph.F5 * fscale, 0.45 * sr)
    return cascade_tf(
        np.concatenate([ftrack, np.full((fr.n, 1), f5)], axis=1),
        np.concatenate([bw_track, np.full((fr.n, 1), ph.F5_BW)], axis=1),
        sr,
    )


def _f0_contour(fr: Frames, content: Content, spk: Speaker, p, rng) -> np.ndarray:
    """f0 (Hz) per frame: declination, pitch accents, final rise/fall and a slow wander, in semitones."""
    tf, n_syl = fr.t, len(content.vowels)
    rel_t = np.clip((tf - fr.lead) / max(fr.speech_end - fr.lead, 1e-3), 0.0, 1.0)
    heights = np.where(content.stressed, p["f0_range"] * rng.uniform(0.5, 1.0, n_syl),
                       p["f0_range"] * rng.uniform(-0.25, 0.3, n_syl))
    widths = 0.45 * fr.syl_len + 0.03
    accents = (heights[:, None] * np.exp(-0.5 * ((tf[None, :] - fr.syl_center[:, None]) / widths[:, None]) ** 2)).sum(0)
    last0 = fr.vowel_start[-1]
    ramp = np.clip((tf - last0) / max(fr.syl_len[-1], 1e-3), 0.0, 1.0) ** 1.5
    wander = smooth(rng.normal(0.0, 1.0, fr.n), 40)
    wander *= 0.5 / (wander.std() + 1e-9)
    semis = p["f0_shift"] - p["declination"] * rel_t + accents + p["final"] * ramp + wander
    return np.clip(spk.f0 * 2.0 ** (semis / 12.0), 55.0, 650.0)


def _glottal_source(f0s: np.ndarray, vs: np.ndarray, spk: Speaker, p, rng, sr: int):
    """Glottal flow derivative with jitter, shimmer and creak, spectral tilt and aspiration noise;
    returns the source and the mask of clearly voiced samples."""
    k0 = (np.cumsum(f0s) / sr).astype(np.int64)
    n_per = int(k0[-1]) + 2
    jit = np.clip(1.0 + p["jitter"] * rng.standard_normal(n_per), 0.7, 1.3)
    creak_prob = np.clip(p["creak"], 0.0, 1.0)
    creaky = rng.random(n_per) < creak_prob
    creak_fac = np.where(creaky, rng.uniform(1.4, 2.2, n_per), 1.0)
    f0e = f0s * jit[k0] / creak_fac[k0]
    phase = np.cumsum(f0e) / sr
    k = phase.astype(np.int64)
    phi = phase - k
    oq = float(np.clip(spk.oq + 0.25 * p["breath"] - 0.06 * p["tilt"], 0.35, 0.85))
    cq = float(np.clip(0.32 - 0.12 * p["tilt"], 0.12, 0.5))
    tp, tn = oq * (1.0 - cq), oq * cq
    g = rosenberg(phi, tp, tn)
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
    asp = rng.standard_normal(len(f0s)) * (0.35 + 0.65 * g) * vs
    return src + 2.0 * p["breath"] * asp, voiced_mask


def _add_frication(out: np.ndarray, fr: Frames, noise_env: np.ndarray, ts: np.ndarray, rng, sr: int) -> None:
    """Fricatives and bursts: band-passed white noise under the bands' envelopes, added in place."""
    nyq = 0.5 * sr
    white = rng.standard_normal(len(out))
    for b, (lo_f, hi_f, level) in enumerate(ph.NOISE_BANDS):
        env = noise_env[:, b]
        if not env.any():
            continue
        hi_f = min(hi_f, 0.45 * sr)
        bsos = signal.butter(2, [lo_f / nyq, hi_f / nyq], btype="bandpass", output="sos")
        band = signal.sosfilt(bsos, white)
        band /= max(float(band.std()), 1e-12)
        out += level * band * np.interp(ts, fr.t, env)


def _finish(out: np.ndarray, p, rng, sr: int) -> np.ndarray:
    """DC / rumble removal, peak normalisation to the utterance's level, low noise floor."""
    hp = signal.butter(2, 50.0 / (0.5 * sr), btype="highpass", output="sos")
    out = signal.sosfilt(hp, out)
    out /= max(float(np.abs(out).max()), 1e-12)
    gain = float(np.clip(LEVEL_REF * 10.0 ** (p["level_db"] / 20.0), 0.02, MAX_PEAK))
    out *= gain
    floor = signal.lfilter([1.0], [1.0, -0.85], rng.standard_normal(len(out)))
    floor *= 10.0 ** (rng.uniform(-70.0, -58.0) / 20.0) / max(float(floor.std()), 1e-12)
    out += floor
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def render(spk: Speaker, content: Content, p: dict[str, float], rng: np.random.Generator,
           sr: int) -> np.ndarray:
    """Render ``content`` with speaker ``spk`` and prosody ``p`` at ``sr`` Hz."""
    fr = _frames(content, p, rng, sr)
    syl_amp = _syllable_amplitudes(fr, content, p, rng)
    voice, noise_env = _envelopes(fr, content, syl_amp)
    filt_b, filt_a = _formant_filter(fr, content, spk, p, rng, sr)
    f0_frames = _f0_contour(fr, content, spk, p, rng)
    # sample-rate control signals
    ts = (np.arange(fr.n * fr.block) + 0.5) / sr
    f0s = np.exp(np.interp(ts, fr.t, np.log(f0_frames)))
    vs = np.interp(ts, fr.t, voice)
    src, voiced_mask = _glottal_source(f0s, vs, spk, p, rng, sr)
    out = blockwise_filter(filt_b, filt_a, src, fr.block)     # time-varying formant cascade, 5 ms blocks
    if voiced_mask.any():
        out /= max(float(np.sqrt(np.mean(out[voiced_mask] ** 2))), 1e-12)
    _add_frication(out, fr, noise_env, ts, rng, sr)
    return _finish(out, p, rng, sr)


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
    g = normalize_gender(gender)
    sr = int(sample_rate)
    if sr < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz; got {sample_rate}")
    if not (0.0 <= float(intensity) <= 3.0):
        raise ValueError(f"intensity must be in [0, 3]; got {intensity}")
    spk = speaker_traits(g, int(speaker_seed))
    key = f"u{int(utterance_seed)}" if sentence is None else str(sentence)
    content = sentence_content(key)
    rng = seeded_rng("utterance", int(utterance_seed), emotion, g, key)
    p = sample_prosody(emotion, spk, rng, float(intensity))
    return render(spk, content, p, rng, sr)
