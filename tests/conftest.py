"""Shared fixtures: a tiny embedded corpus and Hydra composition with tiny overrides.

Plain helpers live in ``tests/helpers`` (import them from there); tiers and markers: ``tests/README.md``
(``make test-fast``: unit tests, ``make test``: everything CI runs)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")

import pytest  # noqa: E402

from ser_attacks import schema  # noqa: E402
from tests.helpers import TINY_CORPUS, compose_config, tiny_overrides  # noqa: E402

schema.register()


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    """A tiny synthetic corpus in EmoDB layout (4 speakers x 3 sentences x 5 emotions = 60 files)."""
    from ser_attacks.data.synthetic import generate_corpus
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, layout="emodb", **TINY_CORPUS)
    return root


@pytest.fixture
def cfg_factory(tmp_path, corpus_root):
    """``make(*overrides)``: the composed config of a tiny job with its own cache and tracking DB."""
    def make(*overrides: str):
        return compose_config(*tiny_overrides(tmp_path, corpus_root), *overrides)
    return make
