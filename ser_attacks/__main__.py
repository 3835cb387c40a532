"""``python -m ser_attacks``: Hydra's entry point, plus how a sweep ends when it does not end normally
(SIGTERM/SIGINT, a worker killed by a signal): see ser_attacks.lifecycle."""
import sys

from . import lifecycle
from .app import main


def cli() -> None:
    try:
        main()
    except lifecycle.Interrupted as exc:
        lifecycle.close_open_sweep("KILLED", f"interrupted by {exc.name}")
        print(f"Interrupted by {exc.name}.", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except SystemExit as exc:
        if exc.code not in (0, None):       # Hydra reports an error (e.g. a joblib worker that died) and exits
            lifecycle.close_open_sweep("FAILED", "the sweep stopped with an error (see above)")
        raise


if __name__ == "__main__":
    cli()
