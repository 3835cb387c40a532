"""Data stage: corpus table → cached features → split (config groups ``dataset``, ``features``, ``split``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import FrontEnd
from .corpora import Corpus, DatasetError, load_corpus
from .features import Features, load_or_extract

log = logging.getLogger(__name__)

__all__ = ["DataBundle", "DatasetError", "FrontEnd", "prepare", "front_end"]


@dataclass
class DataBundle:
    features: Features
    split: "Split"            # noqa: F821
    classes: list[str]
    y: np.ndarray             # int label per segment
    corpus: Corpus
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def segments(self) -> pd.DataFrame:
        return self.features.segments

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        idx = getattr(self.split, name)
        return self.features.X[idx], self.y[idx], self.segments.iloc[idx].reset_index(drop=True)


def front_end(cfg) -> FrontEnd:
    return FrontEnd(**{k: cfg.features[k] for k in FrontEnd.__dataclass_fields__})


def ensure_dataset(ds) -> Path:
    """Return the dataset root; generate the embedded synthetic corpus there when configured."""
    root = Path(str(ds.root)).expanduser().resolve()
    gen = ds.get("generate")
    if gen:
        from ..cache import locked
        from .synthetic import generate_corpus
        with locked(root, f"synthetic corpus {root}"):
            generate_corpus(root, layout=ds.corpus, emotions=list(ds.emotions), **dict(gen))
    return root


def prepare(cfg, progress: bool = True) -> DataBundle:
    from ..split import make_split
    ds = cfg.dataset
    root = ensure_dataset(ds)
    corpus = load_corpus(ds.corpus, root, list(ds.emotions) if ds.emotions else None)
    feats = load_or_extract(corpus.table, front_end(cfg), cfg.paths.cache_dir,
                            n_jobs=cfg.features.n_jobs, progress=progress)
    classes = sorted(ds.emotions) if ds.emotions else sorted(corpus.table.emotion.unique())
    y = feats.segments.emotion.map({c: i for i, c in enumerate(classes)}).to_numpy()
    split = make_split(feats.segments, cfg.split.mode, cfg.split.val, cfg.split.test, cfg.split.seed)
    log.info("%s: %d recordings (%d skipped), %d segments; split %s", ds.name, len(corpus.table),
             corpus.n_skipped + len(feats.skipped), len(y), split.sizes())
    return DataBundle(feats, split, classes, y, corpus, corpus.skipped + feats.skipped)
