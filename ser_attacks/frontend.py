"""The front end's parameters (audio → fixed-length segments → log-Mel), a plain dataclass.

Standard library only: the config schema builds group ``features`` from these fields (``schema.FeaturesConf``),
the audio code (``ser_attacks.data.audio``, which re-exports it) and the TensorFlow front end
(``ser_attacks.frontend_tf``) compute with them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrontEnd:
    sample_rate: int = 16000
    top_db: float = 30.0
    segment_seconds: float = 3.0
    min_tail_seconds: float = 0.9
    n_mels: int = 128
    n_fft: int = 368
    hop_length: int = 184

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + self.segment_samples // self.hop_length   # centred STFT frames

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return (self.n_frames, self.n_mels, 1)
