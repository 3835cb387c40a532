"""On-disk cache helpers: stable hashing, atomic writes, inter-process locks, content checksums.

Every cache entry is a folder written under a temporary name and renamed into place, so an
interrupted job never leaves a half-written entry behind; a file lock next to it makes parallel
jobs (joblib, SLURM array tasks on a shared disk) wait for one producer instead of recomputing.

Every entry carries ``checksums.json`` (size and BLAKE2b hash of each of its files), written into the
temporary folder before the rename, so it lands atomically with the entry. ``valid_entry`` checks it on
every load (one read of each file, under the entry's lock): a file that was overwritten, truncated or
emptied is reported with its path (one warning line) and the entry is rebuilt, never used. An entry made
before checksums existed is verified by loading it (``legacy_check``) and then given its checksums.
Temporary folders an interrupted producer left behind (``.<key>.tmp-*``) are removed by the next
producer of the same key (it holds that key's lock), or listed and removed by
``python -m ser_attacks.cache clean``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_fingerprint(path: Path) -> list:
    """Identity of a file's bytes: its size and a BLAKE2b hash of its content. Not its location or
    modification time, so a corpus that is copied, moved or provided afresh (a new checkout, a shared copy
    re-made with new mtimes) keeps its cached features and trained models. A file is read once per process
    and (path, size, mtime), so a sweep of many jobs hashes its corpus once (measured beside a training
    job: EmoDB's 535 files 0.06 s, RAVDESS's 1,440 files 1.6 s)."""
    return [path.stat().st_size, content_digest(path)]


@contextlib.contextmanager
def locked(path: Path, what: str, timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (a ``.lock`` file is created beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Waiting for another job that is producing %s ...", what)
        t0 = time.time()
        lock.acquire(timeout=timeout)
        log.info("... got %s after %.1f s", what, time.time() - t0)
    try:
        yield
    finally:
        lock.release()


CHECKSUMS = "checksums.json"


_VERIFIED: dict[tuple, str] = {}


def content_digest(path: Path) -> str:
    """BLAKE2b of a file's bytes (read in 1 MiB blocks). Remembered for this process by (path, inode, size,
    modification time in ns), so the jobs of a sequential sweep hash a large ``X.npy`` once; a file written
    again (in place or replaced) has a new modification time and is hashed again."""
    st = path.stat()
    memo = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo not in _VERIFIED:
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _VERIFIED[memo] = digest.hexdigest()
    return _VERIFIED[memo]


def write_checksums(folder: Path) -> None:
    """``checksums.json`` in ``folder``: {relative path: [size, blake2b]} of every file in it."""
    sums = {str(f.relative_to(folder)): [f.stat().st_size, content_digest(f)]
            for f in sorted(folder.rglob("*")) if f.is_file() and f.name != CHECKSUMS and ".tmp-" not in f.name}
    write_json_atomic(folder / CHECKSUMS, sums)


LEGACY = "no checksums (made before checksums existed)"


def entry_problem(folder: Path, required: Sequence[str] = ()) -> str | None:
    """What is wrong with cache entry ``folder`` (naming the file), ``LEGACY`` when it has no checksums, or
    None when every file has its recorded size and hash."""
    sums_file = folder / CHECKSUMS
    if not sums_file.is_file():
        return LEGACY
    try:
        sums = json.loads(sums_file.read_text())
        assert isinstance(sums, dict) and sums
    except Exception:  # noqa: BLE001 - a damaged checksum file damages the entry
        return f"{sums_file}: unreadable or empty"
    for name in required:
        if name not in sums:
            return f"{folder / name}: missing from {CHECKSUMS}"
    for name, (size, digest) in sums.items():
        f = folder / name
        if not f.is_file():
            return f"{f}: missing"
        actual = f.stat().st_size
        if actual == 0 and size:
            return f"{f}: empty (expected {size} bytes)"
        if actual < size:
            return f"{f}: truncated ({actual} of {size} bytes)"
        if actual != size:
            return f"{f}: {actual} bytes, expected {size}"
        if content_digest(f) != digest:
            return f"{f}: content does not match its checksum (overwritten)"
    return None


def remove_orphans(final: Path) -> list[Path]:
    """Remove the temporary folders/files a killed producer of ``final`` left (``.<name>.tmp-*``). Call it
    holding ``final``'s lock: then no live producer of this entry exists."""
    gone = []
    if final.parent.is_dir():
        for tmp in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            gone.append(tmp)
    if gone:
        log.warning("Removed %d half-written temporary cache folder(s) left by an interrupted job: %s",
                    len(gone), ", ".join(str(g) for g in gone))
    return gone


def valid_entry(final: Path, required: Sequence[str] = (),
                legacy_check: Callable[[Path], None] | None = None) -> bool:
    """Hold ``final``'s lock when calling. True when cache entry ``final`` exists and is intact. A damaged
    entry (a file overwritten, truncated, emptied or missing) is reported with its path in one warning
    line and removed: False, so the caller rebuilds it. An entry without checksums (made by an older
    version) is verified by ``legacy_check(final)`` (loading it) and, if that passes, given its checksums.
    Orphaned temporary folders of this entry are removed first."""
    remove_orphans(final)
    if not final.is_dir():
        return False
    problem = entry_problem(final, required)
    if problem == LEGACY:
        try:
            missing = [n for n in required if not (final / n).is_file() or (final / n).stat().st_size == 0]
            if missing:
                raise FileNotFoundError(f"{final / missing[0]} missing or empty")
            if legacy_check is not None:
                legacy_check(final)
            write_checksums(final)
            log.info("Cache entry %s had no checksums: verified by loading it, checksums written", final)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure to load means a damaged entry
            problem = f"{final}: {LEGACY}, and loading it failed: {exc.__class__.__name__}: {exc}"
    if problem is None:
        return True
    log.warning("Damaged cache entry, rebuilding it: %s", problem)
    shutil.rmtree(final, ignore_errors=True)
    return False


def atomic_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmpdir)``, record its files' checksums and move the finished folder to ``final`` in one
    rename. Call it holding ``final``'s lock (orphaned temporary folders of ``final`` are removed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        write_checksums(tmp)
        if final.exists():  # a stale entry from an older layout: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ python -m ser_attacks.cache
def _entries(cache_dir: Path) -> list[Path]:
    """The feature and model entries of a cache folder."""
    return sorted(p for kind in ("features", "models") if (cache_dir / kind).is_dir()
                  for p in (cache_dir / kind).iterdir() if p.is_dir() and not p.name.startswith("."))


def clean(cache_dir: Path, dry_run: bool = False) -> list[str]:
    """Temporary leftovers (``.<key>.tmp-*``) and damaged entries (checksum mismatch, truncated, empty) of
    a cache folder: listed, and removed unless ``dry_run``. An entry whose lock is held (a job is producing
    or reading it now) is left alone."""
    found = []
    tmps = sorted(p for kind in ("features", "models") if (cache_dir / kind).is_dir()
                  for p in (cache_dir / kind).glob(".*.tmp-*"))
    finals = {p.parent / p.name[1:].split(".tmp-")[0] for p in tmps} | set(_entries(cache_dir))
    for final in sorted(finals):
        lock = FileLock(str(final) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            found.append(f"busy (a job holds its lock), left alone: {final}")
            continue
        try:
            for tmp in sorted(final.parent.glob(f".{final.name}.tmp-*")):
                found.append(f"temporary leftover: {tmp}")
                if not dry_run:
                    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            if final.is_dir():
                problem = entry_problem(final)
                if problem not in (None, LEGACY):
                    found.append(f"damaged entry: {problem}")
                    if not dry_run:
                        shutil.rmtree(final, ignore_errors=True)
        finally:
            lock.release()
    return found


def main(argv=None) -> int:
    """``python -m ser_attacks.cache clean [--cache DIR] [--dry-run]``: list and remove temporary leftovers
    of interrupted jobs and damaged entries (checksum mismatch, truncated, empty files)."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m ser_attacks.cache", description=main.__doc__)
    p.add_argument("command", choices=["clean"])
    p.add_argument("--cache", default=os.environ.get("SER_ATTACKS_CACHE", ".cache"))
    p.add_argument("--dry-run", action="store_true", help="list only")
    a = p.parse_args(argv)
    found = clean(Path(a.cache), a.dry_run)
    verb = "found" if a.dry_run else "removed"
    print("\n".join(found) if found else f"{a.cache}: nothing to clean")
    if found:
        print(f"{len(found)} item(s) {verb}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
