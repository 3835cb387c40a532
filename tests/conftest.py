"""Shared fixtures: a tiny embedded corpus and Hydra composition with tiny overrides."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from ser_attacks import schema  # noqa: E402
from ser_attacks.app import CONF_DIR  # noqa: E402

schema.register()
ROOT = Path(__file__).resolve().parent.parent
TINY_CORPUS = dict(n_speakers=4, n_sentences=3, seed=0)


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    """A tiny synthetic corpus in EmoDB layout (4 speakers x 3 sentences x 5 emotions = 60 files)."""
    from ser_attacks.data.synthetic import generate_corpus
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, layout="emodb", **TINY_CORPUS)
    return root


def tiny_overrides(tmp: Path, corpus: Path) -> list[str]:
    """Overrides that make a whole job take seconds: tiny model, short training, tiny corpus."""
    return [f"dataset.root={corpus}", f"dataset.generate.n_speakers={TINY_CORPUS['n_speakers']}",
            f"dataset.generate.n_sentences={TINY_CORPUS['n_sentences']}", "model=tiny", "train=fast",
            f"paths.cache_dir={tmp / 'cache'}", f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
            f"tracking.artifact_root={tmp / 'mlruns'}", "progress=false", "features.n_jobs=1",
            "attack.verbose=false", "train.verbose=0"]


@pytest.fixture
def cfg_factory(tmp_path, corpus_root):
    def make(*overrides: str):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("config", overrides=tiny_overrides(tmp_path, corpus_root) + list(overrides))
    return make
