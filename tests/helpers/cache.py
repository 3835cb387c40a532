"""A copy of the session's shared cache (``tests/conftest.py``, fixture ``tiny_cache``) for one test's jobs."""
from __future__ import annotations

import shutil
from pathlib import Path


def seed_cache(template: Path, tmp: Path) -> Path:
    """Copy the cache ``template`` (features and trained model of the default tiny job) to ``tmp / 'cache'``, the
    cache ``tiny_overrides(tmp, ...)`` points at, so the jobs run there load the model instead of training it
    (an entry already there is kept; lock files are not copied). Returns ``tmp``."""
    shutil.copytree(template, tmp / "cache", ignore=shutil.ignore_patterns("*.lock"), dirs_exist_ok=True)
    return tmp
