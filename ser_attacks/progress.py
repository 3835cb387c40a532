"""Progress on a terminal, one line per stage elsewhere.

Progress bars (tqdm: feature extraction, ART's attack loops, PixelAttack; MLflow's artifact transfers) are
for a person watching a terminal. Written to a file or a pipe — Hydra job logs, CI, ``nohup`` — every
redraw becomes a line (BIM-100 wrote 100 per batch). So a bar is shown only when it is both asked for
(``progress=true``, ``attack.verbose=true``) and stderr is a terminal; otherwise each stage logs one line
when it starts and one when it ends, with its time.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

log = logging.getLogger("ser_attacks")
T = TypeVar("T")


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):      # replaced or closed stream
        return False


def bars(requested) -> bool:
    """Show a progress bar: requested and on a terminal."""
    return bool(requested) and on_terminal()


def quiet_libraries() -> None:
    """Off a terminal, switch off MLflow's artifact-transfer bars (unless the user set the variable)."""
    if not on_terminal():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def track(items: Iterable[T], desc: str, requested=True, total: int | None = None,
          unit: str = "item") -> Iterator[T]:
    """Iterate ``items``: a tqdm bar when ``bars(requested)``, else one log line with the count and time
    when the stage ends."""
    if bars(requested):
        from tqdm.auto import tqdm
        yield from tqdm(items, desc=desc, total=total, unit=unit)
        return
    t0, n = time.perf_counter(), 0
    for item in items:
        n += 1
        yield item
    log.info("%s: %d %ss in %.1f s", desc, n, unit, time.perf_counter() - t0)
