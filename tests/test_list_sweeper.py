"""The list sweeper: the paper grid is ONE sweep (one parent run, one child per configuration)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException

from tests.helpers import ROOT, compose_config, mlflow_runs, run_cli
from tests.helpers.sweeper import PAPER_GRID
from tests.helpers.sweeper import list_sweeper_jobs as _sweeper


def test_paper_grid_config_lists_the_26_configurations():
    GlobalHydra.instance().clear()
    cfg = compose_config("experiment=paper_grid", return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("ListSweeper")
    assert list(cfg.hydra.sweeper.grid) == PAPER_GRID
    jobs = _sweeper(list(cfg.hydra.sweeper.grid), ["dataset=emodb", "attack.n_samples=40"])
    assert len(jobs) == 26
    sets = {" ".join(sorted(o for o in j if o.startswith("attack=") or o.startswith("attack.")
                            and not o.startswith("attack.n_samples"))) for j in jobs}
    assert len(sets) == 26
    assert "attack.es=0 attack.th=10 attack=pixel" in sets and "attack=boundary" in sets
    assert all("dataset=emodb" in j and "attack.n_samples=40" in j for j in jobs)


def test_entry_wins_over_command_line_and_command_line_sweeps_multiply():
    jobs = _sweeper(["attack=deepfool attack.max_iter=1,5", "attack=fgsm"], ["attack.max_iter=2", "seed=0,1"])
    assert len(jobs) == (2 + 1) * 2
    deepfool = sorted(o for j in jobs if "attack=deepfool" in j for o in j if o.startswith("attack.max_iter"))
    assert deepfool == ["attack.max_iter=1", "attack.max_iter=1", "attack.max_iter=5", "attack.max_iter=5"]
    assert all("attack.max_iter=2" in j for j in jobs if "attack=fgsm" in j)


@pytest.mark.parametrize("grid, match", [([], "non-empty"),
                                         (["attack=fgsm attack.eps=0.5"] * 2, "same job twice"),
                                         (["attack=fgsm attack.eps=="], "grid\\[0\\]")])
def test_bad_grids_are_rejected(grid, match):
    with pytest.raises(HydraException, match=match):
        _sweeper(grid)


@pytest.mark.e2e
def test_grid_sweep_is_one_parent_with_one_child_per_configuration(tmp_path, corpus_root):
    """End to end on the embedded corpus: a small grid (3 entries, 5 jobs, tiny attack settings) run as
    `-m experiment=paper_grid` with the grid overridden."""
    grid = "hydra.sweeper.grid=['attack=fgsm attack.eps=0.25,0.5','attack=deepfool attack.max_iter=1,2'," \
           "'attack=pixel attack.th=1 attack.es=1']"
    run_cli(tmp_path, corpus_root, "-m", "experiment=paper_grid", grid, "attack.n_samples=4", "attack.max_iter=1",
            "input.realize=false")            # the sweeper's expansion is the subject, not the resynthesis
    _, by_type = mlflow_runs(tmp_path)
    assert len(by_type["sweep"]) == 1
    parent = by_type["sweep"][0]
    children = by_type["attack"]
    assert len(children) == 5
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    got = sorted((r.data.tags["attack"], r.data.params.get("attack.eps"), r.data.params.get("attack.max_iter"),
                  r.data.params.get("attack.th")) for r in children)
    assert got == sorted([("fgsm", "0.25", "1", "None"), ("fgsm", "0.5", "1", "None"),        # params as logged
                          ("deepfool", "None", "1", "None"), ("deepfool", "None", "2", "None"),
                          ("pixel", "None", "1", "1")]), got


@pytest.mark.e2e
def test_plugin_is_found_by_a_fresh_interpreter(tmp_path):
    """Hydra discovers the sweeper through the `hydra_plugins` namespace package of the repository."""
    code = ("from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
            "print([p.__name__ for p in Plugins.instance().discover(Sweeper)])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert "ListSweeper" in out.stdout, out.stderr[-2000:]
