"""How jobs and sweeps end: signals, crashed workers, and runs that must never stay RUNNING.

* SIGTERM (what ``kill`` and SLURM pre-emption send) and SIGINT (Ctrl-C) become an ``Interrupted``
  exception in the main thread. A job then closes its MLflow run as KILLED, and a sweep's main process
  unwinds through joblib, which kills its workers, instead of dying at once and leaving orphaned
  workers and RUNNING runs behind. The process exits with 128 + the signal number (143, 130).
* A job that dies from a fatal signal (SIGSEGV in native code, SIGKILL from the out-of-memory killer)
  cannot close its own run. Every run records its host and process id (``Tracking.create_run``), and
  each job points faulthandler at a file in its output folder (tag ``fault_log``). Whoever notices
  the dead process closes the run: the sweep's main process when the sweep ends in any way
  (``close_open_sweep``), and otherwise the next sweep or job started on that host
  (``close_dead_runs``). The run becomes FAILED with the fatal error faulthandler wrote
  ("Fatal Python error: Segmentation fault"), or, for a signal Python cannot report (SIGKILL), with the
  signal joblib names and its likely cause ("killed by SIGKILL, most likely by the out-of-memory
  killer"); the sweep's summary names the job that died. Other runs are KILLED when the sweep itself
  was interrupted.
"""
from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
HANDLED = (signal.SIGTERM, signal.SIGINT)
EXIT_CONFIG = 2          # every configuration error (docs/configuration.md, "Errors and exit codes")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT received; unwinds like Ctrl-C (joblib aborts and kills its workers)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_interrupted: Interrupted | None = None


def _raise_interrupted(signum, frame) -> None:
    global _interrupted
    if _interrupted is not None:      # a second signal while unwinding: let the cleanup finish
        log.warning("%s received again while stopping; still closing runs", signal.Signals(signum).name)
        return
    _interrupted = Interrupted(signum)
    raise _interrupted


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT → ``Interrupted`` in this process (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        for s in HANDLED:
            signal.signal(s, _raise_interrupted)


def interrupted() -> Interrupted | None:
    """The interrupt this process received, if any. Once set, it decides how the process ends: an error that
    follows it (a library that caught the interrupt and raised its own error, a run that could not be closed
    while unwinding) is part of stopping, not a failure of the job."""
    return _interrupted


def check_interrupted() -> None:
    """Raise the interrupt again if one was received and something swallowed it: no further job may start."""
    if _interrupted is not None:
        raise _interrupted


# ------------------------------------------------------------------------------ fatal signals
def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:                              # a zombie (killed, not yet reaped by its parent) is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_SIGNAL = re.compile(r"\b(SIG[A-Z]+)\(-\d+\)")


def worker_signals(exc: BaseException | None = None) -> list[str]:
    """The signals that killed joblib workers, as joblib's ``TerminatedWorkerError`` names them ("The exit
    codes of the workers are {SIGKILL(-9)}"), found in ``exc`` or the exception being handled, or in the
    errors it was raised from (Hydra reports the launcher's error and exits: SystemExit, whose context it
    is). Empty when no worker was killed."""
    exc = exc if exc is not None else sys.exc_info()[1]
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__class__.__name__ == "TerminatedWorkerError":
            return sorted(set(_SIGNAL.findall(str(exc))))
        exc = exc.__cause__ or exc.__context__
    return []


_died_workers: dict[int, int] = {}      # pid → exit code of joblib workers found dead when the pool broke


def worker_died(pid: int, exitcode: int) -> None:
    """Record a joblib worker that had died (``exitcode`` -9: SIGKILL) when loky found its pool broken."""
    _died_workers[int(pid)] = int(exitcode)


def _watch_loky() -> None:
    """Record which joblib workers had died when loky finds its pool broken, before it kills the others
    (with SIGKILL as well, so afterwards the job that died cannot be told from those stopped with it).
    Wraps loky's ``_ExecutorManagerThread.terminate_broken``; without it (another joblib), the dead job's
    run is closed like the others (KILLED) and the summary still names the signal joblib reports."""
    try:
        from joblib.externals.loky import process_executor as pe
        cls = pe._ExecutorManagerThread
        original = cls.terminate_broken
    except Exception:  # noqa: BLE001
        return
    if getattr(original, "_records_dead_workers", False):
        return

    def terminate_broken(self, bpe):
        try:
            for p in list(self.processes.values()):
                if p is not None and p.exitcode is not None:
                    worker_died(p.pid, p.exitcode)
        except Exception:  # noqa: BLE001 - never in the way of loky's own clean-up
            pass
        return original(self, bpe)
    terminate_broken._records_dead_workers = True
    cls.terminate_broken = terminate_broken


def _exit_signal(code: int) -> list[str]:
    try:
        return [signal.Signals(-code).name] if code < 0 else []
    except ValueError:
        return []


def death_reason(pid: str, signals: list[str]) -> str:
    """Why a job's process is gone, for its run's ``error`` tag: the signal and its likely cause."""
    if signals == ["SIGKILL"]:
        return (f"process {pid} died: killed by SIGKILL, most likely by the out-of-memory killer (the kernel "
                "log, dmesg, names it); give the job more memory, fewer parallel jobs or smaller batches")
    if len(signals) == 1:
        return f"process {pid} died: killed by {signals[0]}"
    return (f"process {pid} died: killed by a signal ({', '.join(signals) or 'not reported'}) without a Python "
            "error report; SIGKILL from the out-of-memory killer is the usual cause")


_fault_log: Path | None = None


def current_fault_log() -> Path | None:
    """The file a fatal signal in this process would be reported to (runs created now get it as a tag)."""
    return _fault_log


@contextlib.contextmanager
def fault_report(path: Path) -> Iterator[Path]:
    """faulthandler writes this job's fatal-signal traceback to ``path`` (restored afterwards)."""
    global _fault_log
    path.parent.mkdir(parents=True, exist_ok=True)
    was_enabled = faulthandler.is_enabled()
    with open(path, "w") as fh:
        faulthandler.enable(file=fh, all_threads=True)
        _fault_log = path
        try:
            yield path
        finally:
            _fault_log = None
            if was_enabled:
                faulthandler.enable(file=sys.__stderr__, all_threads=True)
            else:
                faulthandler.disable()
    if path.stat().st_size == 0:
        path.unlink()


def fatal_error(run) -> str | None:
    """The first line faulthandler wrote for this run's process ("Fatal Python error: Segmentation
    fault"), or None."""
    fault = run.data.tags.get("fault_log")
    if not fault or not Path(fault).is_file():
        return None
    text = Path(fault).read_text(errors="replace").strip()
    return text.splitlines()[0] if text else None


def _dead(run) -> bool:
    tags = run.data.tags
    if tags.get("host") != socket.gethostname() or not tags.get("pid", "").isdigit():
        return False                  # another host's run: cannot tell
    return not process_alive(int(tags["pid"]))


def close_run(tracking, run, status: str, reason: str) -> str:
    """Close a RUNNING run whose process is gone; a fatal error in its fault log wins over ``status``. Its
    logged models (a process killed while logging its model) are discarded (Tracking.discard_logged_models)."""
    fatal = fatal_error(run)
    if fatal:
        status, reason = "FAILED", f"process {run.data.tags.get('pid')} died: {fatal}"
    tracking.discard_logged_models(run.info.run_id)
    fault = run.data.tags.get("fault_log")
    if fatal and fault and Path(fault).is_file():       # the report itself, before the tag that named it goes
        tracking.log_artifact(run.info.run_id, Path(fault))
    tracking.set_tag(run.info.run_id, "error", reason[:5000])
    tracking.finish(run.info.run_id, status)
    return f"{status}: {reason}"


def close_dead_runs(tracking) -> list[str]:
    """Close this host's RUNNING runs whose process no longer exists (a job killed by a fatal signal
    with nobody left to close its run, e.g. a segfault in a sequential sweep)."""
    runs = tracking.search("attributes.status = 'RUNNING'", max_results=5000)
    notes = []
    for r in runs:
        if _dead(r):
            note = close_run(tracking, r, "FAILED", "the process of this run ended without closing it "
                                                    "(killed by a signal, e.g. out of memory)")
            notes.append(f"{r.data.tags.get('mlflow.runName', r.info.run_id)}: {note}")
    if notes:
        log.warning("Closed %d run(s) left RUNNING by dead processes:\n  %s", len(notes), "\n  ".join(notes))
    return notes


# ------------------------------------------------------------------------------ sweeps
_open_sweep: tuple | None = None        # (tracking, parent_run_id) between multirun start and end


def sweep_opened(tracking, run_id: str) -> None:
    global _open_sweep
    _open_sweep = (tracking, run_id)
    _died_workers.clear()
    _watch_loky()


def sweep_closed() -> None:
    global _open_sweep
    _open_sweep = None


def _stop_workers() -> None:
    """Kill joblib/loky workers that an aborted ``Parallel`` may have left (no orphans)."""
    if "joblib" not in sys.modules:
        return
    try:
        from joblib.externals.loky import reusable_executor
        executor = getattr(reusable_executor, "_executor", None)   # None: no pool was ever started
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)
    except Exception as exc:  # noqa: BLE001
        log.warning("Could not stop the joblib workers: %s", exc)


def close_open_sweep(status: str, reason: str) -> list[str]:
    """The sweep's main process is ending abnormally: stop its workers, close every run of the sweep
    still RUNNING and the parent run (``status``: KILLED when interrupted, FAILED when the sweep broke),
    and print what happened. A run whose process had died before (a worker killed by a signal: SIGKILL from
    the out-of-memory killer, SIGSEGV) is FAILED, naming the signal (from joblib's error) and its likely
    cause, or the fatal error faulthandler wrote; the others were stopped with the sweep: KILLED. No-op
    when no sweep is open (it ended normally)."""
    global _open_sweep
    if _open_sweep is None:
        return []
    tracking, parent = _open_sweep
    _open_sweep = None
    reported = worker_signals()           # the signals joblib's error names (all dead workers together)
    runs = tracking.search(f"tags.opened_in_sweep = '{parent}' and attributes.status = 'RUNNING'",
                           max_results=5000)
    pid = {r.info.run_id: r.data.tags.get("pid", "") for r in runs}
    died = {rid: _exit_signal(_died_workers[int(p)]) or reported for rid, p in pid.items()
            if p.isdigit() and int(p) in _died_workers}          # the workers dead before loky stopped the rest
    _stop_workers()
    lines, dead_jobs, dead_signals = [], [], set()
    for r in runs:
        name = r.data.tags.get("mlflow.runName", r.info.run_id)
        if r.info.run_id in died:
            note = close_run(tracking, r, "FAILED", death_reason(pid[r.info.run_id], died[r.info.run_id]))
            lines.insert(len(dead_jobs), f"{name:<28} DIED  {note}")
            dead_jobs.append(name)
            dead_signals.update(died[r.info.run_id])
        else:
            lines.append(f"{name:<28} {close_run(tracking, r, 'KILLED', reason)}")
    if dead_jobs:
        why = "killed by SIGKILL, most likely out of memory" if dead_signals == {"SIGKILL"} else (
            f"killed by {', '.join(sorted(dead_signals))}" if dead_signals else "its process died")
        reason = f"job {', '.join(repr(j) for j in dead_jobs)} died ({why})"
    tracking.set_tag(parent, "error", reason)
    tracking.finish(parent, status)
    print(f"\nSweep {status} ({reason}; parent run {parent}). Runs it closed: {len(lines)}\n  "
          + "\n  ".join(lines or ["(none were running)"])
          + "\nRe-running the same command resumes: finished configurations are skipped.", file=sys.stderr)
    return lines
