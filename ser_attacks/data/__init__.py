"""Data stage: corpus table → cached features → split → augmentation (config groups ``dataset``,
``features``, ``split``, ``augment``).

Augmentation never lets an augmented copy of a validation/test recording into training, except in
``split=paper``, which reproduces the paper's leaky protocol on purpose:

* ``recording`` / ``speaker`` / ``speaker_cv``: the split is made on the original segments; then only the TRAIN
  recordings are augmented and their augmented segments are appended to the train indices.
  Validation and test hold original segments only.
* ``paper``: every recording is augmented first, then originals and augmented segments are split
  at random per segment, so pitch/tempo siblings of a test segment sit in train.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate

from ..cache import locked
from .audio import Augmentation, FrontEnd
from .corpora import Corpus, DatasetError, load_corpus
from .features import Features, RowConcat, load_or_extract

log = logging.getLogger(__name__)

__all__ = ["DataBundle", "DatasetError", "FrontEnd", "prepare", "prepare_data", "front_end", "augmentations",
           "augmentation_list"]


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
        # only these rows are read (cached features are memory-mapped; augmented copies are a RowConcat)
        return np.asarray(self.features.X[idx]), self.y[idx], self.segments.iloc[idx].reset_index(drop=True)


def front_end(features) -> FrontEnd:
    """The front end of config node ``features`` (group ``features``)."""
    return FrontEnd(**{k: features[k] for k in FrontEnd.__dataclass_fields__})


def augmentations(cfg) -> tuple[Augmentation, ...]:
    """The configured augmentation list (``augment=none`` or no ``augment`` group → empty)."""
    return augmentation_list(cfg.get("augment"))


def augmentation_list(aug) -> tuple[Augmentation, ...]:
    """The augmentations of config node ``aug`` (group ``augment``; None or no versions → empty)."""
    if aug is None or not aug.get("versions"):
        return ()
    return tuple(Augmentation(str(v.kind), float(v.amount)) for v in aug.versions)


def _concat(a: Features, b: Features) -> Features:
    return Features(RowConcat([a.X, b.X]), pd.concat([a.segments, b.segments], ignore_index=True),
                    a.skipped + [s for s in b.skipped if s not in a.skipped], a.cache_path,
                    a.from_cache and b.from_cache)


def ensure_dataset(ds) -> Path:
    """Return the dataset root; generate the embedded synthetic corpus there when configured."""
    root = Path(str(ds.root)).expanduser().resolve()
    gen = ds.get("generate")
    if gen:
        from .synthetic import generate_corpus
        with locked(root, f"synthetic corpus {root}"):
            generate_corpus(root, layout=ds.corpus, emotions=list(ds.emotions), **dict(gen))
    return root


def _with_utterance(feats: Features, table: pd.DataFrame) -> Features:
    """Segments from an older feature cache lack the ``utterance`` column: take it from the corpus table."""
    if "utterance" not in feats.segments or feats.segments.utterance.isna().any():
        segs = feats.segments.copy()
        segs["utterance"] = segs.recording_id.map(table.set_index("recording_id").utterance)
        feats = Features(feats.X, segs, feats.skipped, feats.cache_path, feats.from_cache)
    return feats


def prepare(cfg, progress: bool = True) -> DataBundle:
    """The data stage of a composed config: ``prepare_data`` with its nodes."""
    return prepare_data(cfg.dataset, cfg.features, cfg.split, cfg.get("augment"), cfg.paths.cache_dir, progress)


def prepare_data(ds, features, sp, augment, cache_dir, progress: bool = True) -> DataBundle:
    """Corpus → cached features → split → augmentation, from the config nodes of groups ``dataset``,
    ``features``, ``split`` and ``augment`` (None: no augmentation); features are cached under ``cache_dir``."""
    from ..split import Split
    root = ensure_dataset(ds)
    corpus = load_corpus(ds.corpus, root, list(ds.emotions) if ds.emotions else None)
    fe = front_end(features)
    feats = _with_utterance(load_or_extract(corpus.table, fe, cache_dir, n_jobs=features.n_jobs,
                                            progress=progress), corpus.table)
    augs = augmentation_list(augment)
    if not augs:
        split = instantiate(sp, feats.segments)          # conf/split: make_split(segments, mode, ...)
    else:
        base = None if sp.mode == "paper" else instantiate(sp, feats.segments)
        ids = set(feats.segments.recording_id) if base is None else set(feats.segments.recording_id.iloc[base.train])
        subset = corpus.table[corpus.table.recording_id.isin(ids)].reset_index(drop=True)
        aug = _with_utterance(load_or_extract(subset, fe, cache_dir, n_jobs=features.n_jobs,
                                              progress=progress, augment=augs), corpus.table)
        n_orig = len(feats.X)
        feats = _concat(feats, aug)
        if base is None:   # the paper's protocol: random per segment over originals + augmented copies
            split = instantiate(sp, feats.segments, mode="paper")
        else:              # augmented copies of TRAIN recordings only, appended to train
            split = Split(np.concatenate([base.train, n_orig + np.arange(len(aug.X))]), base.val, base.test)
    classes = sorted(ds.emotions) if ds.emotions else sorted(corpus.table.emotion.unique())
    y = feats.segments.emotion.map({c: i for i, c in enumerate(classes)}).to_numpy()
    log.info("%s: %d recordings (%d skipped), %d segments (%d augmented versions); split %s", ds.name,
             len(corpus.table), corpus.n_skipped + len(feats.skipped), len(y), len(augs), split.sizes())
    return DataBundle(feats, split, classes, y, corpus, corpus.skipped + feats.skipped)
