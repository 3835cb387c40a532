"""The list sweeper's job expansion without launching jobs, and the paper's grid as configured."""
from __future__ import annotations

from .config import CONF_DIR

PAPER_GRID = ["attack=fgsm attack.eps=0.25,0.5,0.75,1,1.25", "attack=bim attack.eps=0.25,0.5,0.75,1,1.25",
              "attack=deepfool attack.max_iter=1,5,20", "attack=jsma attack.theta=-1,-0.5,0.5,1", "attack=cw_l2",
              "attack=cw_linf", "attack=pixel attack.th=1,5,10 attack.es=1,0", "attack=boundary"]


def list_sweeper_jobs(grid, overrides=()):
    """The list sweeper as Hydra instantiates it for ``experiment=paper_grid`` (no jobs launched)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import HydraContext

    from hydra_plugins.ser_attacks_list_sweeper.list_sweeper import ListSweeper
    sweeper = ListSweeper(grid=grid)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(CONF_DIR))
    sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
    return sweeper.job_overrides(list(overrides))
