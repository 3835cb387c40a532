"""``python -m ser_attacks.tracking``: the link that opens the MLflow UI on the experiment's runs table."""
from __future__ import annotations

import argparse
import os

from ..browser import ui_url
from .runs import Tracking, TrackingError


def main(argv=None) -> int:
    """``python -m ser_attacks.tracking [--port 5000]``: make sure the experiment exists and carries its tag
    (also one created by an older version), and print the link that opens the MLflow UI on its runs table."""
    p = argparse.ArgumentParser(prog="python -m ser_attacks.tracking", description=main.__doc__)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    p.add_argument("--experiment", default="ser-attacks")
    p.add_argument("--artifact-root", default="mlruns")
    p.add_argument("--port", type=int, default=5000)
    a = p.parse_args(argv)
    try:
        t = Tracking(a.tracking_uri, a.experiment, a.artifact_root)        # also writes the saved view
    except TrackingError as exc:
        print(f"error: {exc}")
        return 2
    print(f"MLflow UI for {t.uri}: open {ui_url(f'http://127.0.0.1:{a.port}', t.experiment_id)}\n"
          "(MLflow 3.17 starts on its GenAI view; this link, or the sidebar switch 'Model training', shows the runs,\n"
          " with the saved view 'Summary: accuracies per run' (metric columns; also under Views above the table))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
