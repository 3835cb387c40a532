"""``python -m ser_attacks``: the project's ``--help`` and the checks of every job (ser_attacks.cli), then
Hydra's entry point, plus how a sweep ends when it does not end normally (SIGTERM/SIGINT, a worker killed by a
signal): see ser_attacks.lifecycle."""
import sys

from . import lifecycle
from .app import main
from .cli import preflight


def cli() -> None:
    preflight(sys.argv[1:])      # --help; a configuration error: one line, exit 2, before anything is created
    try:
        main()
    except BaseException as exc:
        stop = lifecycle.interrupted()
        if stop is None:
            if isinstance(exc, SystemExit) and exc.code not in (0, None):   # Hydra reports an error (e.g. a
                lifecycle.close_open_sweep("FAILED", "the sweep stopped with an error (see above)")  # dead worker)
            raise
        # SIGTERM/SIGINT: however the unwinding surfaced it (the interrupt itself, or the error of a library
        # that caught it and raised its own, which Hydra reports as exit 1), the sweep was interrupted
        try:
            lifecycle.close_open_sweep("KILLED", f"interrupted by {stop.name}")
        except Exception as err:  # noqa: BLE001 - the runs left RUNNING are closed by the next command
            print(f"Could not close the sweep's runs ({err.__class__.__name__}: {err}); the next command "
                  "started on this host closes them.", file=sys.stderr)
        print(f"Interrupted by {stop.name}.", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None


if __name__ == "__main__":
    cli()
