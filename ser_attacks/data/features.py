"""Feature extraction with an on-disk cache.

The cache key covers every file's identity (path, size, mtime) and every front-end parameter, so
a change to either recomputes and a warm run loads in a fraction of a second. Entries are written
atomically and guarded by a file lock, so parallel jobs never extract the same features twice.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import atomic_dir, file_fingerprint, locked, stable_hash
from .audio import BadAudio, FrontEnd, recording_features

log = logging.getLogger(__name__)


@dataclass
class Features:
    X: np.ndarray                 # (n_segments, frames, n_mels) float32
    segments: pd.DataFrame        # one row per segment: recording columns + segment index
    skipped: list[tuple[str, str]]
    cache_path: Path | None = None
    from_cache: bool = False


def _one(path: str, fe: FrontEnd):
    try:
        return recording_features(path, fe), None
    except BadAudio as exc:
        return None, str(exc)


def extract(table: pd.DataFrame, fe: FrontEnd, n_jobs: int = 1, progress: bool = True):
    """Compute features for every recording of ``table`` (no cache)."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    paths = table.path.tolist()
    if n_jobs == 1 or len(paths) < 8:
        results = (_one(p, fe) for p in paths)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_one)(p, fe) for p in paths)
    arrays, seg_rows, skipped = [], [], []
    for (feats, err), (_, rec) in zip(tqdm(results, total=len(paths), desc="log-Mel features",
                                           disable=not progress, unit="file"), table.iterrows()):
        if err is not None:
            log.warning("Skipped %s (%s)", rec.path, err)
            skipped.append((rec.path, err))
            continue
        arrays.append(feats)
        for i in range(len(feats)):
            seg_rows.append({**rec.to_dict(), "segment": i})
    if not arrays:
        raise BadAudio(f"None of the {len(paths)} recordings produced features; first error: "
                       f"{skipped[0] if skipped else '-'}")
    X = np.concatenate(arrays).astype(np.float32)
    return X, pd.DataFrame(seg_rows), skipped


def cache_key(table: pd.DataFrame, fe: FrontEnd) -> str:
    files = [file_fingerprint(Path(p)) for p in table.path]
    return stable_hash({"files": files, "front_end": asdict(fe), "version": 1})


def load_or_extract(table: pd.DataFrame, fe: FrontEnd, cache_dir: str | Path | None,
                    n_jobs: int = 1, progress: bool = True) -> Features:
    """Features for ``table``, from the cache when present (``cache_dir=None`` disables it)."""
    if cache_dir is None:
        X, segs, skipped = extract(table, fe, n_jobs, progress)
        return Features(X, segs, skipped)
    key = cache_key(table, fe)
    entry = Path(cache_dir) / "features" / key
    with locked(entry, f"features {key}"):
        from_cache = (entry / "meta.json").exists()
        if not from_cache:
            log.info("Extracting features for %d recordings (cache %s)", len(table), entry)
            X, segs, skipped = extract(table, fe, n_jobs, progress)

            def build(tmp: Path) -> None:
                np.save(tmp / "X.npy", X)
                segs.to_csv(tmp / "segments.csv", index=False)
                (tmp / "meta.json").write_text(json.dumps(
                    {"front_end": asdict(fe), "skipped": skipped, "n_recordings": len(table),
                     "n_segments": int(len(X))}, indent=2))

            atomic_dir(entry, build)
    if from_cache:
        log.info("Features loaded from cache %s", entry)
    meta = json.loads((entry / "meta.json").read_text())
    X = np.load(entry / "X.npy")
    segs = pd.read_csv(entry / "segments.csv", dtype={"speaker": str, "sentence": str})
    return Features(X, segs, [tuple(s) for s in meta["skipped"]], entry, from_cache)
