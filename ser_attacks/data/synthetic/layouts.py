"""Where each utterance goes: the folder layout and file names of EmoDB, EMOVO and RAVDESS.

Emotion codes and speaker genders come from the loaders' corpus specs (``data/corpora.py``), so every
file this module names is one the loader parses, with the same emotion and gender. The speaker ids and
sentence lists are those of the real corpora.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..corpora import EMODB_EMOTIONS, EMOVO_EMOTIONS, RAVDESS_EMOTIONS, SPECS
from .prosody import EMOTIONS, normalize_gender
from .seeds import stable_int

# EmoDB speaker ids, alternating male / female so any even prefix is balanced.
EMODB_SPEAKERS = ("03", "08", "10", "09", "11", "13", "12", "14", "15", "16")
EMODB_SENTENCES = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
EMOVO_SPEAKERS = ("f1", "m1", "f2", "m2", "f3", "m3")
EMOVO_SENTENCES = ("b1", "b2", "b3", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5", "d1", "d2")
# RAVDESS: actors 01..24, odd = male, even = female.
RAVDESS_N_ACTORS = 24
# Fixed order in which n_sentences maps onto (statement, repetition, intensity).
RAVDESS_COMBOS: tuple[tuple[int, int, int], ...] = (
    (1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1),
    (1, 1, 2), (2, 1, 2), (1, 2, 2), (2, 2, 2),
)
RAVDESS_STRONG_INTENSITY = 1.5  # prosodic scaling for intensity 02

#: emotion -> file-name code, per layout (the loaders' code -> emotion tables, inverted)
CODES: dict[str, dict[str, str]] = {
    layout: {emo: code for code, emo in table.items()}
    for layout, table in (("emodb", EMODB_EMOTIONS), ("emovo", EMOVO_EMOTIONS), ("ravdess", RAVDESS_EMOTIONS))
}


@dataclass(frozen=True)
class File:
    """One file of a layout: where it goes and what it says (before speaker/utterance seeding)."""
    relpath: str
    emotion: str
    speaker: str       # speaker id as in the file name
    sentence: str      # key of the segmental content, e.g. "emodb:a01"
    take: str          # distinguishes the utterances of one speaker + emotion
    intensity: float = 1.0


def _emodb_files(n_speakers: int, n_sentences: int, emos: tuple[str, ...]) -> Iterator[File]:
    for spk in EMODB_SPEAKERS[:n_speakers]:
        for sent in EMODB_SENTENCES[:n_sentences]:
            for emo in emos:
                yield File(f"wav/{spk}{sent}{CODES['emodb'][emo]}a.wav", emo, spk, f"emodb:{sent}", sent)


def _emovo_files(n_speakers: int, n_sentences: int, emos: tuple[str, ...]) -> Iterator[File]:
    for spk in EMOVO_SPEAKERS[:n_speakers]:
        for sent in EMOVO_SENTENCES[:n_sentences]:
            for emo in emos:
                yield File(f"{spk}/{CODES['emovo'][emo]}-{spk}-{sent}.wav", emo, spk, f"emovo:{sent}", sent)


def _ravdess_files(n_speakers: int, n_sentences: int, emos: tuple[str, ...]) -> Iterator[File]:
    for actor in range(1, n_speakers + 1):
        for stmt, rep, inten in RAVDESS_COMBOS[:n_sentences]:
            for emo in emos:
                if emo == "neutral" and inten != 1:
                    continue  # the real corpus has no strong-intensity neutral
                name = f"03-01-{CODES['ravdess'][emo]}-{inten:02d}-{stmt:02d}-{rep:02d}-{actor:02d}.wav"
                yield File(f"Actor_{actor:02d}/{name}", emo, f"{actor:02d}", f"ravdess:{stmt:02d}",
                           f"{stmt:02d}-{rep:02d}-{inten:02d}", RAVDESS_STRONG_INTENSITY if inten == 2 else 1.0)


@dataclass(frozen=True)
class Layout:
    name: str
    sample_rate: int
    channels: int
    default_emotions: tuple[str, ...]
    max_speakers: int
    max_sentences: int
    files: Callable[[int, int, tuple[str, ...]], Iterator[File]]

    @property
    def emotions(self) -> tuple[str, ...]:
        """The synthesiser's emotions that exist in this corpus, in :data:`EMOTIONS` order."""
        return tuple(e for e in EMOTIONS if e in CODES[self.name])

    def gender(self, relpath: str) -> str:
        """``"m"``/``"f"`` of the speaker of ``relpath``, as the corpus loader reads it."""
        spec = SPECS[self.name]
        return normalize_gender(spec.parse(spec.regex.match(relpath.rsplit("/", 1)[-1]))["gender"])


_LAYOUTS = {
    "emodb": Layout("emodb", 16000, 1, ("bored", "disgust", "happy", "neutral", "sad"),
                    len(EMODB_SPEAKERS), len(EMODB_SENTENCES), _emodb_files),
    "emovo": Layout("emovo", 48000, 2, ("disgust", "fear", "happy", "neutral", "surprised"),
                    len(EMOVO_SPEAKERS), len(EMOVO_SENTENCES), _emovo_files),
    "ravdess": Layout("ravdess", 48000, 1, ("disgust", "fear", "happy", "sad", "surprised"),
                      RAVDESS_N_ACTORS, len(RAVDESS_COMBOS), _ravdess_files),
}
LAYOUTS: tuple[str, ...] = tuple(_LAYOUTS)
DEFAULT_EMOTIONS: dict[str, tuple[str, ...]] = {k: v.default_emotions for k, v in _LAYOUTS.items()}
LAYOUT_SAMPLE_RATES = {k: v.sample_rate for k, v in _LAYOUTS.items()}
LAYOUT_CHANNELS = {k: v.channels for k, v in _LAYOUTS.items()}
LAYOUT_MAX_SPEAKERS = {k: v.max_speakers for k, v in _LAYOUTS.items()}


@dataclass(frozen=True)
class Job:
    """One file to render and write."""
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


def check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    return int(value)


def validate_emotions(layout: str, emotions: str | Iterable[str] | None) -> tuple[str, ...]:
    if emotions is None:
        return DEFAULT_EMOTIONS[layout]
    if isinstance(emotions, str):
        emotions = [e for e in emotions.split(",")]
    emos = tuple(str(e).strip().lower() for e in emotions)
    emos = tuple(e for e in emos if e)
    if not emos:
        raise ValueError("emotions must name at least one emotion")
    supported = _LAYOUTS[layout].emotions
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


def _check_sizes(layout: str, n_speakers, n_sentences, seed) -> tuple[int, int, int]:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    n_speakers = check_int("n_speakers", n_speakers)
    n_sentences = check_int("n_sentences", n_sentences)
    seed = check_int("seed", seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    if n_speakers < 2 or n_speakers % 2:
        raise ValueError(
            f"n_speakers must be an even number >= 2 (half male, half female); got {n_speakers}"
        )
    max_spk = _LAYOUTS[layout].max_speakers
    if n_speakers > max_spk:
        raise ValueError(f"the {layout} layout has at most {max_spk} speakers "
                         f"(pass n_speakers <= {max_spk}); got n_speakers={n_speakers}")
    max_sent = _LAYOUTS[layout].max_sentences
    if not 1 <= n_sentences <= max_sent:
        raise ValueError(f"n_sentences must be between 1 and {max_sent} for the {layout} layout; "
                         f"got {n_sentences}")
    return n_speakers, n_sentences, seed


def plan_corpus(layout: str, n_speakers: int, n_sentences: int,
                emotions: str | Iterable[str] | None, seed: int) -> tuple[list[Job], dict]:
    """The files of a corpus (sorted by path) and its parameters (as the manifest stores them, less the
    generator version)."""
    n_speakers, n_sentences, seed = _check_sizes(layout, n_speakers, n_sentences, seed)
    emos = validate_emotions(layout, emotions)
    lay = _LAYOUTS[layout]
    jobs = [Job(relpath=f.relpath, emotion=f.emotion, gender=lay.gender(f.relpath),
                speaker_seed=stable_int("spk", seed, layout, f.speaker),
                utterance_seed=stable_int("utt", seed, layout, f.speaker, f.emotion, f.take),
                sentence=f.sentence, intensity=f.intensity, sample_rate=lay.sample_rate, channels=lay.channels,
                stereo_seed=stable_int("stereo", seed, layout, f.speaker))
            for f in lay.files(n_speakers, n_sentences, emos)]
    params = {"layout": layout, "n_speakers": n_speakers, "n_sentences": n_sentences,
              "emotions": sorted(emos), "seed": seed}
    jobs.sort(key=lambda j: j.relpath)
    return jobs, params
