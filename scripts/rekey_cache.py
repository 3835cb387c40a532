"""Carry cache entries over to the content keys (commit 41cdd26), so work begun before it resumes on the same
features and trained models.

Before that commit the feature and model caches were keyed by each recording's path, size and mtime; now by
its bytes (and, for models, the labels parsed for it). A corpus whose copy was re-made (fresh mtimes) would get
new keys either way, and a model trained again from features computed on another machine is not the same
model (float rounding moves training: measured on EmoDB fold 0, 15 vs 11 epochs). For one job's config this
computes both keys of its features and of its trained model and copies every entry that exists under the old
key to the new one (nothing is deleted or overwritten):

    python scripts/rekey_cache.py experiment=study dataset=emodb +hparams=emodb_paper \\
        dataset.root=/work/shared/data/emodb split.fold=0

Run it in the session whose mtimes made the old keys (the old key reads the files' current mtimes).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from unittest import mock

from ser_attacks import identity
from ser_attacks.cache import stable_hash
from ser_attacks.data import features, prepare
from ser_attacks.paths import compose


def old_fingerprint(path: Path) -> list:
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def old_recordings(table) -> str:
    return stable_hash([old_fingerprint(Path(p)) for p in table.path])


def carry(old: Path, new: Path, what: str) -> str:
    if not (old / "meta.json").exists():
        return f"{what}: no entry under the old key {old.name} (nothing to carry)"
    if new.exists():
        return f"{what}: {new.name} exists already (kept)"
    tmp = new.with_name(f".{new.name}.tmp")
    shutil.copytree(old, tmp)
    meta = json.loads((tmp / "meta.json").read_text())
    if "key" in meta:
        meta["key"] = new.name
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    tmp.rename(new)
    return f"{what}: {old.name} -> {new.name} copied"


def main(overrides: list[str]) -> None:
    cfg = compose(overrides)
    cache = Path(cfg.paths.cache_dir)
    calls = []
    real_key = features.cache_key

    def recording(table, fe, augment=()):
        calls.append((table.copy(), fe, tuple(augment)))
        return real_key(table, fe, augment)

    with mock.patch.object(features, "file_fingerprint", old_fingerprint), \
            mock.patch.object(features, "cache_key", recording):
        data = prepare(cfg, progress=False)          # reads (or makes) the entries under the old keys
        with mock.patch.object(identity, "recordings_fingerprint", old_recordings):
            old_model = identity.model_key(cfg, data)
        old_features = [real_key(t, fe, aug) for t, fe, aug in calls]
    new_features = [features.cache_key(t, fe, aug) for t, fe, aug in calls]
    for o, n in zip(old_features, new_features):
        print(carry(cache / "features" / o, cache / "features" / n, "features"))
    print(carry(cache / "models" / old_model, cache / "models" / identity.model_key(cfg, data), "model"))


if __name__ == "__main__":
    main(sys.argv[1:])
