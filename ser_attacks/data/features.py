"""Feature extraction with an on-disk cache.

The cache key covers every file's content (size + BLAKE2b hash) and every front-end parameter, so
a change to either recomputes and a warm run loads in a fraction of a second. Entries are written
atomically and guarded by a file lock, so parallel jobs never extract the same features twice; every
load checks the entry's content checksums first (ser_attacks.cache.valid_entry) and rebuilds a damaged one.

Augmented features (the extra pitch/tempo versions of a set of recordings) are a separate cache
entry whose key also covers the augmentation list and the exact subset of files (e.g. the train
recordings of one split), so they are computed once per (files, front end, augmentation).
Every segment row carries an ``augment`` column: ``none`` for the original, else e.g. ``pitch+1.5``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..cache import atomic_dir, file_fingerprint, locked, stable_hash, valid_entry
from ..identity import FEATURES_VERSION
from ..progress import track
from .audio import Augmentation, BadAudio, FrontEnd, ensure_librosa_kernels, recording_features

log = logging.getLogger(__name__)


class RowConcat:
    """Rows of several arrays seen as one (n, ...) array without copying them: indexing gathers only the
    requested rows (``X[idx]`` → ndarray). With memory-mapped parts, an attack job that needs only the test
    rows never reads the (augmented) training rows into memory. ``np.asarray`` materialises everything."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.shape = (int(self.offsets[-1]),) + tuple(self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            i = int(idx) + (len(self) if idx < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(idx)
            part = int(np.searchsorted(self.offsets, i, side="right") - 1)
            return np.asarray(self.parts[part][i - self.offsets[part]])
        rows = np.arange(len(self))[idx]          # slices, boolean masks and index arrays alike
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for k, part in enumerate(self.parts):
            sel = np.flatnonzero(part_of == k)
            if sel.size:
                out[sel] = part[rows[sel] - self.offsets[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate([np.asarray(p) for p in self.parts])
        return out.astype(dtype) if dtype is not None else out


@dataclass
class Features:
    X: np.ndarray | RowConcat     # (n_segments, frames, n_mels) float32; from the cache: memory-mapped
    segments: pd.DataFrame        # one row per segment: recording columns + segment index
    skipped: list[tuple[str, str]]
    cache_path: Path | None = None
    from_cache: bool = False


def _one(path: str, fe: FrontEnd, versions):
    try:
        return recording_features(path, fe, versions), None
    except BadAudio as exc:
        return None, str(exc)


def extract(table: pd.DataFrame, fe: FrontEnd, n_jobs: int = 1, progress: bool = True,
            augment: Sequence[Augmentation] = ()):
    """Compute features for every recording of ``table`` (no cache): the originals, or, when
    ``augment`` is given, only the augmented versions (one per augmentation)."""
    from joblib import Parallel, delayed

    versions = list(augment) if augment else [None]
    ensure_librosa_kernels()   # compiled once, under a lock, before any worker starts (see its docstring)
    paths = table.path.tolist()
    if n_jobs == 1 or len(paths) < 8:
        results = (_one(p, fe, versions) for p in paths)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_one)(p, fe, versions) for p in paths)
    arrays, seg_rows, skipped = [], [], []
    desc = "augmented log-Mel features" if augment else "log-Mel features"
    for (feats, err), (_, rec) in zip(track(results, desc, progress, total=len(paths), unit="file"),
                                      table.iterrows()):
        if err is not None:
            log.warning("Skipped %s (%s)", rec.path, err)
            skipped.append((rec.path, err))
            continue
        for v, fv in zip(versions, feats):
            arrays.append(fv)
            label = "none" if v is None else v.label
            for i in range(len(fv)):
                seg_rows.append({**rec.to_dict(), "augment": label, "segment": i})
    if not arrays:
        raise BadAudio(f"None of the {len(paths)} recordings produced features; first error: "
                       f"{skipped[0] if skipped else '-'}")
    X = np.concatenate(arrays).astype(np.float32)
    return X, pd.DataFrame(seg_rows), skipped


def cache_key(table: pd.DataFrame, fe: FrontEnd, augment: Sequence[Augmentation] = ()) -> str:
    files = [file_fingerprint(Path(p)) for p in table.path]
    key = {"files": files, "front_end": asdict(fe), "version": FEATURES_VERSION}
    if augment:
        key["augment"] = [asdict(a) for a in augment]
    return stable_hash(key)


FEATURE_FILES = ("X.npy", "segments.csv", "meta.json")


def _check_legacy(entry: Path) -> None:
    """An entry made before checksums: it must load, and its parts must agree (rows of X = segments)."""
    meta = json.loads((entry / "meta.json").read_text())
    try:
        X = np.load(entry / "X.npy", mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - numpy's message does not name the file
        raise ValueError(f"{entry / 'X.npy'}: {exc}") from None
    n = len(pd.read_csv(entry / "segments.csv", usecols=[0]))
    if not len(X) == n == meta["n_segments"]:
        raise ValueError(f"{entry / 'X.npy'}: {len(X)} rows, {n} segments, meta.json says {meta['n_segments']}")


def load_or_extract(table: pd.DataFrame, fe: FrontEnd, cache_dir: str | Path | None,
                    n_jobs: int = 1, progress: bool = True,
                    augment: Sequence[Augmentation] = ()) -> Features:
    """Features for ``table``, from the cache when present (``cache_dir=None`` disables it).
    With ``augment``, the augmented versions only (not the originals)."""
    augment = tuple(augment)
    if cache_dir is None:
        X, segs, skipped = extract(table, fe, n_jobs, progress, augment)
        return Features(X, segs, skipped)
    key = cache_key(table, fe, augment)
    entry = Path(cache_dir) / "features" / key
    with locked(entry, f"features {key}"):
        from_cache = valid_entry(entry, FEATURE_FILES, _check_legacy)   # checksums; a damaged one is rebuilt
        if not from_cache:
            log.info("Extracting %sfeatures for %d recordings (cache %s)",
                     f"{len(augment)} augmented versions of the " if augment else "", len(table), entry)
            X, segs, skipped = extract(table, fe, n_jobs, progress, augment)

            def build(tmp: Path) -> None:
                np.save(tmp / "X.npy", X)
                segs.to_csv(tmp / "segments.csv", index=False)
                (tmp / "meta.json").write_text(json.dumps(
                    {"front_end": asdict(fe), "augment": [asdict(a) for a in augment], "skipped": skipped,
                     "n_recordings": len(table), "n_segments": int(len(X))}, indent=2))

            atomic_dir(entry, build)
    if from_cache:
        log.info("Features loaded from cache %s", entry)
    meta = json.loads((entry / "meta.json").read_text())
    X = np.load(entry / "X.npy", mmap_mode="r")      # read-only; rows are read when indexed
    segs = pd.read_csv(entry / "segments.csv", dtype={"speaker": str, "sentence": str, "augment": str})
    return Features(X, segs, [tuple(s) for s in meta["skipped"]], entry, from_cache)
