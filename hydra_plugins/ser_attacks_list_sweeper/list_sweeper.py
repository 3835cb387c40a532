"""``hydra/sweeper=list``: one sweep over a list of override sets (the paper grid as ONE multirun).

Hydra's basic sweeper takes the cartesian product of all swept keys. A grid whose parts sweep different
keys (FGSM over ``attack.eps``, pixel over ``attack.th`` x ``attack.es``, ...) is not one product, so it
used to take one sweep per part, i.e. one MLflow parent run per part. This sweeper reads the parts from
the config::

    defaults:
      - override /hydra/sweeper: list
    hydra:
      sweeper:
        grid:
          - attack=fgsm attack.eps=0.25,0.5
          - attack=pixel attack.th=1,5 attack.es=1,0
          - attack=boundary

Each entry is a string of overrides in the command line's syntax; its swept keys expand to their product
(2 + 4 + 1 = 7 jobs above). The overrides of the command line apply to every job (and their own sweeps
multiply the whole list); where an entry and the command line set the same key, the entry wins, since
the grid is the point of the experiment. All jobs are launched as one sweep by the configured launcher
(basic, joblib, submitit, ...), so every job is a child of the same sweep run. Duplicate jobs (the same
final overrides twice) are an error, as is an empty or missing grid.
"""


import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class ListSweeperConf:
    _target_: str = "hydra_plugins.ser_attacks_list_sweeper.list_sweeper.ListSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    grid: List[str] = field(default_factory=list)


ConfigStore.instance().store(group="hydra/sweeper", name="list", node=ListSweeperConf, provider="ser_attacks")


def _key(override: str) -> str:
    return override.split("=", 1)[0]


class ListSweeper(BasicSweeper):
    """Hydra's basic sweeper over each entry of ``grid``, all entries launched as one sweep."""

    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 grid: Optional[Sequence[str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grid = list(grid or [])

    def job_overrides(self, arguments: List[str]) -> List[List[str]]:
        """The override list of every job: each grid entry's product, crossed with the command line's."""
        if not self.grid:
            raise HydraException("hydra/sweeper=list needs a non-empty hydra.sweeper.grid (a list of override "
                                 "strings, e.g. 'attack=fgsm attack.eps=0.25,0.5')")
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        common = self._parse_config() + list(arguments)
        jobs: List[List[str]] = []
        for i, entry in enumerate(self.grid):
            if not isinstance(entry, str) or not entry.strip():
                raise HydraException(f"hydra.sweeper.grid[{i}] must be a non-empty string of overrides, got {entry!r}")
            own = shlex.split(entry)
            mine = {_key(o) for o in own}
            merged = [o for o in common if _key(o) not in mine] + own      # the entry wins on shared keys
            try:
                overrides = parser.parse_overrides(merged)
            except HydraException as exc:
                raise HydraException(f"hydra.sweeper.grid[{i}] ({entry!r}): {exc}") from exc
            jobs += [job for batch in self.split_arguments(overrides, None) for job in batch]
        seen: Dict[tuple, int] = {}
        for n, job in enumerate(jobs):
            key = tuple(sorted(job))
            if key in seen:
                raise HydraException(f"the grid gives the same job twice (jobs {seen[key]} and {n}): {' '.join(job)}")
            seen[key] = n
        return jobs

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        jobs = self.job_overrides(arguments)
        self.overrides = list(self.split_overrides_to_chunks(jobs, self.max_batch_size))
        log.info("List sweeper: %d grid entries -> %d jobs in one sweep", len(self.grid), len(jobs))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for r in results:
                _ = r.return_value
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
