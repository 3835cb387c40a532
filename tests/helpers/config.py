"""Where the repository and its configs are, and the overrides that make a whole job take seconds."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ser_attacks.app import CONF_DIR

ROOT = Path(__file__).resolve().parents[2]
TINY_CORPUS = dict(n_speakers=4, n_sentences=3, seed=0)


def tiny_overrides(tmp: Path, corpus: Path) -> list[str]:
    """Overrides that make a whole job take seconds: tiny model, short training, tiny corpus, and a cache,
    tracking DB and artifact store of its own under ``tmp``."""
    return [f"dataset.root={corpus}", f"dataset.generate.n_speakers={TINY_CORPUS['n_speakers']}",
            f"dataset.generate.n_sentences={TINY_CORPUS['n_sentences']}", "model=tiny", "train=fast",
            f"paths.cache_dir={tmp / 'cache'}", f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
            f"tracking.artifact_root={tmp / 'mlruns'}", "progress=false", "features.n_jobs=1",
            "attack.verbose=false", "train.verbose=0"]


def compose_config(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    """The composed config ``python -m ser_attacks <overrides>`` would run (no job is started); with
    ``return_hydra_config`` its ``hydra`` node too (launcher, sweeper)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
