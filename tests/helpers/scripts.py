"""Load a repository script (a recipe's or scripts/ file, not a package module) as a module."""
from __future__ import annotations

import importlib.util

from .config import ROOT


def load_script(relpath: str, name: str):
    """The module of ``ROOT / relpath``, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
