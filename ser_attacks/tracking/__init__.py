"""MLflow tracking: one parent run per sweep, one child run per job, one run per trained model.

Everything goes through ``MlflowClient`` with explicit run ids (no global "active run"), so a
training run can be logged while an attack run is open, and child runs in other processes or hosts
attach to the sweep's parent by id. The default backend is a sqlite DB plus artifacts under
``mlruns/``; ``MLFLOW_TRACKING_URI`` overrides it (e.g. a shared server). The parent process
creates the DB and the parent run (Hydra callback) before any parallel job starts, and every process
opens a sqlite DB under an inter-process lock, so no two processes ever race to create its schema.

One module per concern; the stages import from here:

* ``runs``: the store (``Tracking``: open the DB / server, create, log to and close runs, discard a failed
  run's models) and ``TrackingError``;
* ``models``: logging trained models as MLflow Models, the Model Registry, linking attack runs to them
  (``ModelLogging``, a part of ``Tracking``);
* ``sweep``: the sweep parent's summary (table, description, summary lines, parent run id);
* ``callback``: the Hydra callback that opens and closes a sweep's parent run (``MlflowSweepCallback``);
* ``__main__``: ``python -m ser_attacks.tracking`` (the link that opens the MLflow UI on the runs table).
"""
from .callback import MlflowSweepCallback
from .models import MODEL_CONFIG, PYFUNC_MODULE, example_waveform, registered_name, requirements
from .notes import clip_words
from .runs import EXPERIMENT_KIND, PARENT_ENV, Tracking, TrackingError, git_commit
from .sweep import (
    PARENT_FILE,
    SUMMARY_TABLE,
    _summary_line,
    parent_run_id,
    report_enabled,
    summary_table,
    sweep_note,
)

__all__ = ["EXPERIMENT_KIND", "MODEL_CONFIG", "PARENT_ENV", "PARENT_FILE", "PYFUNC_MODULE", "SUMMARY_TABLE",
           "MlflowSweepCallback", "Tracking", "TrackingError", "_summary_line", "clip_words", "example_waveform",
           "git_commit", "parent_run_id", "registered_name", "report_enabled", "requirements", "summary_table",
           "sweep_note"]
