"""Plain helpers shared by the test modules: paths, tiny configs, the CLI in a subprocess, MLflow read-back.

Fixtures live in ``tests/conftest.py``; everything a test module imports from another place lives here, so no
test module imports another one (or conftest).
"""
from .cache import seed_cache
from .cli import mlflow_runs, run_cli, subprocess_env
from .config import CONF_DIR, ROOT, TINY_CORPUS, compose_config, tiny_overrides
from .scripts import load_script

__all__ = ["CONF_DIR", "ROOT", "TINY_CORPUS", "compose_config", "load_script", "mlflow_runs", "run_cli",
           "seed_cache", "subprocess_env", "tiny_overrides"]
