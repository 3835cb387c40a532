"""``python -m ser_attacks.report``: turn attack runs (a sweep, an experiment) into the report.

    python -m ser_attacks.report --sweep <parent_run_id> --out reports/demo
    python -m ser_attacks.report --experiment ser-attacks --dataset emodb --tag model=final --out reports/emodb
    python -m ser_attacks.report --from-results results/study/emodb results/study/emovo --out reports/study
"""
from __future__ import annotations

import argparse
import sys


def parse(argv=None) -> argparse.Namespace:
    from .collect import add_run_filters
    p = argparse.ArgumentParser(prog="python -m ser_attacks.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_filters(p)
    p.add_argument("--out", default="reports/report",
                   help="output folder (a previous report there is replaced; any other non-empty folder is refused)")
    p.add_argument("--name", default=None, help="report title / MLflow run name")
    p.add_argument("--no-log", action="store_true", help="do not log a run_type=report run to MLflow")
    p.add_argument("--cache", default=None, help="artifact download cache "
                   "(default $SER_ATTACKS_CACHE/report_artifacts)")
    p.add_argument("--from-results", nargs="+", default=None, metavar="DIR",
                   help="build from exported files (runs.csv + segments.csv.gz, python -m ser_attacks.report.export) "
                        "instead of MLflow; the run filters are then ignored and nothing is logged")
    p.add_argument("--plan", default=None, metavar="YAML",
                   help="analysis plan (report/plan.py): the report marks each result planned or exploratory")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from .collect import cli_run_filters
    a = parse(argv)
    filters = cli_run_filters(a)
    if filters is None:
        return 2
    uri, tags = filters
    from pathlib import Path

    from .build import build_report
    if a.plan:
        from .plan import load
        try:
            load(a.plan)                     # a bad plan fails here, in one line, before any heavy work
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    rep = build_report(uri, a.experiment, a.sweep, a.dataset, tags, Path(a.out), a.name, log_run=not a.no_log,
                       cache=Path(a.cache) if a.cache else None, results=a.from_results,
                       plan=a.plan)
    print(f"Report: {len(rep.runs)} runs → {rep.md} and {rep.html} ({len(rep.figures)} figures, "
          f"{len(rep.tables.items)} tables)" + (f"; MLflow report run {rep.run_id}" if rep.run_id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
