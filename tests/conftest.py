"""Shared fixtures: a tiny embedded corpus and Hydra composition with tiny overrides.

Plain helpers live in ``tests/helpers`` (import them from there); tiers and markers: ``tests/README.md``
(``make test-fast``: unit tests, ``make test``: everything CI runs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ser_attacks import schema  # also sets the quiet defaults (TF log level, ART's PyTorch notice)
from tests.helpers import TINY_CORPUS, compose_config, tiny_overrides

schema.register()


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    """A tiny synthetic corpus in EmoDB layout (4 speakers x 3 sentences x 5 emotions = 60 files)."""
    from ser_attacks.data.synthetic import generate_corpus
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, layout="emodb", **TINY_CORPUS)
    return root


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, corpus_root) -> Path:
    """A cache holding the features and the trained model of the default tiny job (``tiny_overrides`` and nothing
    else) on ``corpus_root``: trained once per session, without tracking. Read-only: a test copies it where its
    jobs' cache is (``tests.helpers.seed_cache``), so they load that model instead of training their own (a job
    whose config changes the model key trains as before)."""
    from ser_attacks.data import prepare
    from ser_attacks.train import get_or_train
    tmp = tmp_path_factory.mktemp("tiny_cache")
    cfg = compose_config(*tiny_overrides(tmp, corpus_root))
    get_or_train(cfg, prepare(cfg, progress=False), None)
    return tmp / "cache"


@pytest.fixture
def cfg_factory(tmp_path, corpus_root):
    """``make(*overrides)``: the composed config of a tiny job with its own cache and tracking DB."""
    def make(*overrides: str):
        return compose_config(*tiny_overrides(tmp_path, corpus_root), *overrides)
    return make
