"""Audio → fixed-length segments → log-Mel spectrograms (the paper's front end).

16 kHz mono, silence trimmed (top_db 30), cut into 3 s segments; a recording shorter than one
segment is looped to 3 s. Unlike the paper, a short *tail* (< ``min_tail_seconds``) of a longer
recording is dropped instead of being looped into a mostly-repeated segment.

Augmentation (config group ``augment``) makes extra versions of a recording after trimming and
before segmentation: ``pitch`` shifts by ``amount`` semitones (librosa.effects.pitch_shift),
``stretch`` changes the tempo by the factor ``amount`` (librosa.effects.time_stretch; > 1 is faster
and shorter), as the paper did (pitch ±1.5, ±3 semitones; stretch 0.75, 0.9, 1.1, 1.25).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import soundfile as sf
from filelock import FileLock

from .. import numba_cache_dir
from ..frontend import FrontEnd  # noqa: F401 - the front end's parameters, used here and imported from here


class BadAudio(ValueError):
    """A recording that cannot be turned into features (unreadable, empty, silent, too short)."""


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Any rate, bit depth (8/16/24/32-bit, float) and channel count → float32 mono at ``sample_rate``."""
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise BadAudio(f"unreadable ({exc})") from exc
    if y.size == 0:
        raise BadAudio("empty")
    y = y.mean(axis=1)
    if not np.all(np.isfinite(y)):
        raise BadAudio("contains NaN/inf samples")
    if sr != sample_rate:
        import soxr
        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    return y


def trim(y: np.ndarray, fe: FrontEnd) -> np.ndarray:
    import librosa
    if np.max(np.abs(y)) < 1e-6:
        raise BadAudio("silent")
    yt, _ = librosa.effects.trim(y, top_db=fe.top_db, frame_length=2048, hop_length=512)
    if len(yt) < fe.n_fft:
        raise BadAudio(f"shorter than one frame after trimming ({len(yt)} samples)")
    return yt


def segments(y: np.ndarray, fe: FrontEnd) -> list[np.ndarray]:
    """Split into segments of exactly ``segment_samples``; loop short pieces to full length.

    The first piece is always kept (so every recording yields at least one segment, as in the
    paper); later tails shorter than ``min_tail_seconds`` are dropped.
    """
    n = fe.segment_samples
    min_tail = int(round(fe.min_tail_seconds * fe.sample_rate))
    out = []
    for start in range(0, len(y), n):
        piece = y[start:start + n]
        if len(piece) < n:
            if start > 0 and len(piece) < min_tail:
                break
            piece = np.resize(piece, n)   # np.resize repeats the data cyclically: a loop
        out.append(piece)
    return out


def log_mel(piece: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """One segment → (frames, n_mels) log-Mel power in dB, time-major as the model expects."""
    import librosa
    S = librosa.feature.melspectrogram(y=piece, sr=fe.sample_rate, n_fft=fe.n_fft,
                                       hop_length=fe.hop_length, n_mels=fe.n_mels)
    return librosa.power_to_db(S, ref=1.0, top_db=80.0).T.astype(np.float32)


AUGMENT_KINDS = ("pitch", "stretch")


@dataclass(frozen=True)
class Augmentation:
    kind: str        # "pitch" (semitones) | "stretch" (tempo factor)
    amount: float

    def __post_init__(self):
        if self.kind not in AUGMENT_KINDS:
            raise ValueError(f"Unknown augmentation kind {self.kind!r}; choose one of {AUGMENT_KINDS}")
        if self.kind == "stretch" and not self.amount > 0:
            raise ValueError(f"stretch factor must be > 0, got {self.amount}")

    @property
    def label(self) -> str:
        return f"pitch{self.amount:+g}" if self.kind == "pitch" else f"stretch{self.amount:g}"

    @classmethod
    def from_label(cls, label: "str | Augmentation | None",
                   known: Sequence["Augmentation"] = ()) -> "Augmentation | None":
        """The augmentation a feature row's ``augment`` column names (``none`` → None). A label of one of
        ``known`` (the configured list) returns that one exactly; otherwise the label is parsed (``:g``
        keeps 6 significant digits, enough for the configured amounts)."""
        if label is None or isinstance(label, Augmentation):
            return label
        label = str(label)
        if label in ("none", ""):
            return None
        for a in known:
            if a.label == label:
                return a
        m = re.fullmatch(r"(pitch|stretch)([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)", label)
        if m is None:
            raise ValueError(f"Unknown augmentation label {label!r} (expected none, pitch<±semitones> or "
                             f"stretch<factor>)")
        return cls(m[1], float(m[2]))

    def apply(self, y: np.ndarray, sample_rate: int) -> np.ndarray:
        import librosa
        if self.kind == "pitch":
            out = librosa.effects.pitch_shift(y, sr=sample_rate, n_steps=float(self.amount))
        else:
            out = librosa.effects.time_stretch(y, rate=float(self.amount))
        return np.asarray(out, dtype=np.float32)


_KERNELS_READY = False


def ensure_librosa_kernels() -> None:
    """Compile (or load) every librosa numba kernel this project uses, once per process, under a
    cross-process file lock. Call before any librosa work; every feature path does.

    Why: librosa compiles its kernels with ``cache=True``. Several processes compiling the same kernel
    at once (joblib feature workers, sweep jobs, cluster jobs sharing one venv, the test suite) can
    write an index and a code file that do not belong together, and every later process that loads
    them crashes with a segmentation fault. Loading a complete cache is read-only and safe, so one
    lock around the first use is enough: the first process compiles (~17 s on 2 cores) while the
    others wait, then they load the finished kernels (~1 s). The warm-up runs the project's own
    functions (trim, log-Mel, every augmentation kind; istft and Griffin-Lim as the resynthesis of
    ``ser_attacks.realize`` calls them; yin and rms, which the tests use) on float32 input, so it compiles
    exactly the signatures the pipeline uses; ``tests/test_lifecycle.py`` checks that the pipeline compiles
    nothing more after it. The cache lives where
    ``ser_attacks.numba_cache_dir()`` says (``NUMBA_CACHE_DIR``), not in the venv, so a venv cache
    corrupted by an older, unguarded version is never read.
    """
    global _KERNELS_READY
    if _KERNELS_READY:
        return

    cache = numba_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".ser-attacks-compile.lock")):
        import librosa
        fe = FrontEnd()
        rng = np.random.default_rng(0)
        y = (rng.standard_normal(int(1.5 * fe.sample_rate)) * 0.1).astype(np.float32)
        y[: fe.sample_rate // 4] *= 1e-4                      # a quiet start, so trim() has work to do
        yt = trim(y, fe)
        for kind, amount in (("pitch", 1.0), ("stretch", 1.1)):
            Augmentation(kind, amount).apply(yt, fe.sample_rate)
        seg = segments(yt, fe)[0]
        log_mel(seg, fe)
        # resynthesis (ser_attacks.realize): istft on complex64 / complex128, Griffin-Lim on float32 / float64
        S = librosa.stft(seg, n_fft=fe.n_fft, hop_length=fe.hop_length)
        for spec in (S, S.astype(np.complex128)):
            librosa.istft(spec, hop_length=fe.hop_length, n_fft=fe.n_fft, length=len(seg))
            librosa.griffinlim(np.abs(spec), n_iter=1, hop_length=fe.hop_length, n_fft=fe.n_fft, length=len(seg),
                               init="random", random_state=0)
        librosa.yin(y, fmin=60, fmax=500, sr=fe.sample_rate, frame_length=1024, hop_length=256)
        librosa.feature.rms(y=y, frame_length=1024, hop_length=256)
    _KERNELS_READY = True


def recording_segments(path: str, fe: FrontEnd,
                       versions: Sequence[Augmentation | None] = (None,)) -> list[list[np.ndarray]]:
    """The 3 s waveform segments of one recording per version (``None`` = the original): load → trim →
    (augmentation) → segments, exactly the audio the cached features were computed from."""
    ensure_librosa_kernels()
    y = trim(load_audio(path, fe.sample_rate), fe)
    return [segments(y if v is None else v.apply(y, fe.sample_rate), fe) for v in versions]


def recording_features(path: str, fe: FrontEnd,
                       versions: Sequence[Augmentation | None] = (None,)) -> list[np.ndarray]:
    """Segments of one recording per version: a list (one per version; ``None`` = the original)
    of arrays (n_segments, frames, n_mels). Augmentations act on the trimmed 16 kHz signal."""
    return [np.stack([log_mel(p, fe) for p in pieces]) for pieces in recording_segments(path, fe, versions)]


def segment_audio(path: str, fe: FrontEnd, segment: int, augment: "str | Augmentation | None" = None,
                  known: Sequence[Augmentation] = ()) -> np.ndarray:
    """The waveform (``fe.segment_samples`` float32 samples at ``fe.sample_rate``) of one feature row, from its
    corpus-table columns: recording ``path``, ``segment`` index and ``augment`` label. ``log_mel`` of it equals
    the cached features of that row (tested), so attacks and resynthesis can work on the row's sound."""
    v = Augmentation.from_label(augment, known)
    pieces = recording_segments(path, fe, (v,))[0]
    if not 0 <= int(segment) < len(pieces):
        raise BadAudio(f"{path} ({v.label if v else 'original'}) has {len(pieces)} segments, not segment {segment}")
    return pieces[int(segment)]
