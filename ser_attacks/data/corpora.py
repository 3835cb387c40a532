"""Loaders for EmoDB, EMOVO and RAVDESS: one table of recordings per corpus.

Each loader only parses the folder layout and file names (the synthetic corpus uses the same
layouts, so it goes through the same code). Besides the recording, every row names its
``utterance``: speaker + text + emotion (+ intensity for RAVDESS). Repeated takes of one utterance
(EmoDB's version letters a, b, c ...; RAVDESS repetitions 01/02) are near-identical, so the
recording-level split keeps an utterance's takes together. Files whose names do not match, or that
soundfile cannot read, are skipped and counted, never fatal; a root with nothing recognisable is an
error that names the expected layout.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import soundfile as sf

log = logging.getLogger(__name__)

COLUMNS = ["recording_id", "path", "corpus", "language", "speaker", "gender", "emotion",
           "sentence", "utterance", "duration", "sample_rate", "channels"]


class DatasetError(ValueError):
    """The dataset root is missing or holds no recognisable recordings."""


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    language: str
    pattern: str                 # glob relative to root
    regex: re.Pattern
    layout: str                  # human description for error messages
    parse: Callable[[re.Match], dict]


EMODB_EMOTIONS = {"W": "angry", "L": "bored", "E": "disgust", "A": "fear", "F": "happy",
                  "T": "sad", "N": "neutral"}
EMODB_MALE = {"03", "10", "11", "12", "15"}
EMOVO_EMOTIONS = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear",
                  "rab": "angry", "sor": "surprised", "tri": "sad"}
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fear", "07": "disgust", "08": "surprised"}


def _emodb(m: re.Match) -> dict:
    spk, emo = m["speaker"], EMODB_EMOTIONS[m["emotion"]]
    # the version letter (a, b, c, ...) numbers repeated takes of one speaker + text + emotion
    return dict(speaker=f"emodb_{spk}", gender="male" if spk in EMODB_MALE else "female",
                emotion=emo, sentence=m["sentence"], utterance=f"emodb_{spk}/{m['sentence']}/{emo}")


def _emovo(m: re.Match) -> dict:
    spk, emo = m["speaker"], EMOVO_EMOTIONS[m["emotion"]]
    return dict(speaker=f"emovo_{spk}", gender="male" if spk[0] == "m" else "female",
                emotion=emo, sentence=m["sentence"], utterance=f"emovo_{spk}/{m['sentence']}/{emo}")


def _ravdess(m: re.Match) -> dict:
    actor, emo = int(m["actor"]), RAVDESS_EMOTIONS[m["emotion"]]
    # repetitions r01/r02 of one actor + statement + emotion + intensity are one utterance
    return dict(speaker=f"ravdess_{actor:02d}", gender="male" if actor % 2 else "female",
                emotion=emo, sentence=f"s{m['statement']}-i{m['intensity']}-r{m['repetition']}",
                utterance=f"ravdess_{actor:02d}/s{m['statement']}-i{m['intensity']}/{emo}")


SPECS = {
    "emodb": CorpusSpec(
        "emodb", "German", "wav/*.wav",
        re.compile(r"^(?P<speaker>\d\d)(?P<sentence>[ab]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])\.wav$"),
        "<root>/wav/SSTTTEV.wav, e.g. wav/03a01Fa.wav (speaker 03, text a01, emotion F=happy)", _emodb),
    "emovo": CorpusSpec(
        "emovo", "Italian", "*/*.wav",
        re.compile(r"^(?P<emotion>dis|gio|neu|pau|rab|sor|tri)-(?P<speaker>[fm][1-9])-(?P<sentence>[a-z]\d+)\.wav$"),
        "<root>/<speaker>/<emo>-<speaker>-<sentence>.wav, e.g. f1/dis-f1-b1.wav", _emovo),
    "ravdess": CorpusSpec(
        "ravdess", "English", "Actor_*/*.wav",
        re.compile(r"^03-01-(?P<emotion>0[1-8])-(?P<intensity>0[12])-(?P<statement>0[12])-"
                   r"(?P<repetition>0[12])-(?P<actor>\d\d)\.wav$"),
        "<root>/Actor_NN/03-01-EE-II-SS-RR-NN.wav, e.g. Actor_01/03-01-05-01-02-01-01.wav", _ravdess),
}


@dataclass
class Corpus:
    table: pd.DataFrame                      # one row per kept recording
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def load_corpus(corpus: str, root: str | Path, emotions: Sequence[str] | None = None) -> Corpus:
    """Parse ``root`` as ``corpus`` and keep only ``emotions`` (all when None)."""
    if corpus not in SPECS:
        raise DatasetError(f"Unknown corpus {corpus!r}; known: {', '.join(SPECS)}")
    spec = SPECS[corpus]
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Dataset root {root} does not exist. Expected the {spec.name} layout: {spec.layout}")
    rows, skipped = [], []
    for path in sorted(root.glob(spec.pattern)):
        m = spec.regex.match(path.name)
        if m is None:
            skipped.append((str(path), "unrecognised file name"))
            continue
        try:
            info = sf.info(str(path))
        except Exception as exc:  # noqa: BLE001 - soundfile raises several types
            skipped.append((str(path), f"unreadable: {exc}"))
            continue
        if info.frames == 0:
            skipped.append((str(path), "empty"))
            continue
        rec = dict(recording_id=f"{spec.name}/{path.relative_to(root).as_posix()}", path=str(path),
                   corpus=spec.name, language=spec.language, duration=info.frames / info.samplerate,
                   sample_rate=info.samplerate, channels=info.channels, **spec.parse(m))
        rows.append(rec)
    if not rows:
        raise DatasetError(f"No {spec.name} recordings found under {root}. Expected layout: {spec.layout}"
                           + (f" ({len(skipped)} files skipped, e.g. {skipped[0][0]}: {skipped[0][1]})"
                              if skipped else ""))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if emotions is not None:
        unknown = set(emotions) - set(table.emotion.unique()) - set(_all_emotions(corpus))
        if unknown:
            raise DatasetError(f"Emotions {sorted(unknown)} do not exist in {spec.name}; "
                               f"it has {sorted(_all_emotions(corpus))}")
        table = table[table.emotion.isin(list(emotions))].reset_index(drop=True)
        if table.empty:
            raise DatasetError(f"No {spec.name} recordings under {root} have emotions {list(emotions)}")
    for path, reason in skipped:
        log.warning("Skipped %s (%s)", path, reason)
    return Corpus(table=table, skipped=skipped)


def _all_emotions(corpus: str) -> list[str]:
    return list({"emodb": EMODB_EMOTIONS, "emovo": EMOVO_EMOTIONS, "ravdess": RAVDESS_EMOTIONS}[corpus].values())
