"""Where things are: the package, the project's ``conf/`` folder, the tracking store.

Standard library only at import, so the CLI, the report, the tests and the scripts all take locations from here
(and no module imports the Hydra entry point just to find ``conf/``).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
CONF_DIR = str(PROJECT_ROOT / "conf")          # Hydra's config folder (config_path of the entry point)
HPARAMS_DIR = Path(CONF_DIR) / "hparams"       # tuned hyperparameters (+hparams=<name>), written by mode=tune


def compose(overrides=()):
    """The composed config (``conf/config.yaml`` + ``overrides``), outside a Hydra app: for ``python -m
    ser_attacks.tune``, ``python -m ser_attacks.data`` and scripts."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from . import schema
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def resolve_uri(uri: str) -> str:
    """Make a relative sqlite path absolute, so every process and job agrees on one DB file."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def default_uri() -> str:
    """The tracking URI of the command-line tools: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return resolve_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
