"""The Hydra callback (``conf/config.yaml``: ``hydra.callbacks.mlflow``) that creates the tracking DB and a
sweep's parent run before any job, and closes it with the sweep's summary and report when the sweep ends."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .. import lifecycle
from ..identity import run_tags
from .notes import sweep_title
from .runs import PARENT_ENV, Tracking, TrackingError
from .sweep import (
    PARENT_FILE,
    SUMMARY_TABLE,
    _checklist_lines,
    _summary_line,
    report_enabled,
    summary_metrics,
    summary_table,
    sweep_note,
    swept_params,
)

log = logging.getLogger(__name__)


def _config_error(exc: Exception):
    """The user's input (tracking URI, report option): one line and the configuration errors' exit code."""
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(lifecycle.EXIT_CONFIG) from None



class MlflowSweepCallback(Callback):
    """Creates the tracking DB and the sweep's parent run before any job; closes it at the end."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.tracking: Tracking | None = None

    @staticmethod
    def _tracking(config: DictConfig) -> Tracking:
        try:
            return Tracking.from_cfg(config)    # creates the DB / checks the server before any job
        except TrackingError as exc:
            _config_error(exc)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()
        lifecycle.close_dead_runs(self._tracking(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.install_signal_handlers()     # SIGTERM/SIGINT: unwind, kill workers, close runs
        try:
            report_enabled(config.get("report", "auto"))
        except ValueError as exc:
            _config_error(exc)
        self.tracking = self._tracking(config)
        lifecycle.close_dead_runs(self.tracking)
        overrides = list(config.hydra.overrides.task)
        sweep_dir = str(config.hydra.sweep.dir)
        swept = swept_params(config)
        self.run_id = self.tracking.create_run(
            sweep_title(overrides, swept, time.strftime('%Y-%m-%d %H:%M')),
            run_tags("sweep", config, sweep_dir=sweep_dir, overrides=" ".join(overrides)))
        self.tracking.log_params(self.run_id, swept)      # the runs table's param columns: what the sweep varies
        os.environ[PARENT_ENV] = self.run_id
        # Jobs in other processes/hosts (joblib, SLURM, Ray) must log to the same place and share
        # one cache: export both, absolute, for the launchers to pass on.
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking.uri
        os.environ.setdefault("SER_ATTACKS_CACHE", str(Path(str(config.paths.cache_dir)).resolve()))
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        (Path(sweep_dir) / PARENT_FILE).write_text(self.run_id)
        lifecycle.sweep_opened(self.tracking, self.run_id)
        log.info("MLflow sweep run %s (%s)", self.run_id, self.tracking.uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.run_id:
            return
        t = self.tracking
        children = sorted(t.search(f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=10000),
                          key=lambda r: r.info.start_time)
        # an attack sweep's training runs are children too (nested under the sweep that trained them), but not jobs
        jobs = [r for r in children if config.get("mode", "attack") != "attack"
                or not r.data.tags.get("run_type", "").startswith("train")]
        failed = [r for r in jobs if r.info.status != "FINISHED"]
        report, lines, skipped_tags, summary_error = None, [], {}, None
        try:        # the summary (table, note, report, checklist) must never leave the sweep's run RUNNING
            t.log_metrics(self.run_id, {"n_jobs": len(jobs), "n_failed": len(failed)})
            lines = [_summary_line(r) for r in jobs]
            skipped_tags = {k[len("skipped."):]: v for k, v in t.get_run(self.run_id).data.tags.items()
                            if k.startswith("skipped.")}
            if skipped_tags:
                t.log_metrics(self.run_id, {"n_skipped": len(skipped_tags)})
                lines += [f"{name:<28} already FINISHED earlier: skipped (force=true reruns it)"
                          for name in sorted(skipped_tags.values())]
            earlier = [t.get_run(rid) for rid in skipped_tags]
            table = summary_table(jobs, earlier)
            if len(table):
                summary = summary_metrics(table)
                t.log_metrics(self.run_id, summary)                  # the parent row's metric columns
                t.save_summary_view([k for k in summary if k.startswith("best_adv_acc_")])   # …shown (views.py)
                t.log_table(self.run_id, table, SUMMARY_TABLE)
                if report_enabled(config.get("report", "auto")) and (table.run_type == "attack").any() \
                        and (table.status == "FINISHED").any():
                    report = self._report(config)
                t.describe(self.run_id, sweep_note(table, report is not None))
            lines += _checklist_lines(config, self.tracking.uri, self.run_id)
        except Exception as exc:  # noqa: BLE001
            summary_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("The sweep's summary was not made (%s); its jobs' runs are complete", summary_error)
            t.set_tag(self.run_id, "summary_error", summary_error[:5000])
        finally:
            lifecycle.sweep_closed()
            self.tracking.finish(self.run_id, "FAILED" if failed else "FINISHED")
            os.environ.pop(PARENT_ENV, None)
        print(f"\nSweep finished: {len(jobs)} runs, {len(failed)} failed, {len(skipped_tags)} skipped "
              f"(parent run {self.run_id}).\n  " + "\n  ".join(lines)
              + (f"\nSummary not made: {summary_error}" if summary_error else "")
              + (f"\nReport: {report / 'report.html'} (also the parent run's artifacts)" if report else "")
              + f"\nTracking: {self.tracking.uri}  ->  `make ui` to browse.")
        if failed:
            raise SystemExit(f"{len(failed)} of {len(jobs)} jobs failed; see their traceback.txt in MLflow.")

    def _report(self, config: DictConfig) -> Path | None:
        """``report=auto``: the sweep's report (ser_attacks.report) in ``<sweep dir>/report``, logged as the
        parent run's artifacts. A report that cannot be built is a warning, never a failed sweep."""
        from ..report import build_report
        out = Path(str(config.hydra.sweep.dir)) / "report"
        try:
            log.info("Building the sweep's report (report=false skips it)")
            rep = build_report(self.tracking.uri, str(config.tracking.experiment), [self.run_id], out=out,
                               name=f"ser-attacks sweep {self.run_id[:8]}", log_run=False)
            self.tracking.log_artifacts(self.run_id, rep.out)
            return rep.out
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            log.warning("The sweep's report was not built (%s: %s); build it with: python -m ser_attacks.report "
                        "--sweep %s", exc.__class__.__name__, exc, self.run_id)
            return None
