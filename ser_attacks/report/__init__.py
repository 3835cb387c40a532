"""Cross-run comparison report: the paper's tables and figures, with statistics, from MLflow.

``python -m ser_attacks.report [--experiment E] [--sweep PARENT_RUN_ID] [--dataset D] [--tag k=v]
--out reports/NAME`` reads attack runs with ``mlflow.search_runs`` (no direct DB access), downloads
each run's ``adversarial.npz`` (per-sample labels, genders and predictions; cached) for confidence
intervals and tests, and writes ``report.md``, a self-contained ``report.html``, the figures as PNG
and every table as CSV; the folder is also logged as the artifacts of a ``run_type=report`` run.

Modules: ``collect`` (MLflow → tidy runs + per-sample arrays), ``stats`` (bootstrap CIs, permutation
tests, Holm), ``aggregate`` (runs → configurations: folds pooled, seeds averaged, best configuration,
speaker-level intervals), ``format`` (number/interval text, attack order), ``tables`` (the paper's tables)
and ``gaps`` (female/male, protocol and language comparisons), ``figures`` (matplotlib, Agg), ``render``
(Markdown + HTML), ``build`` (the whole pipeline, used by the CLI and the tests).
"""


def __getattr__(name: str):
    """``Report`` and ``build_report`` from ``build``, imported on first use: importing them here eagerly
    imported every module of the package first, so ``python -m ser_attacks.report.plan`` (or ``.defenses``)
    warned that the module was already in sys.modules before it ran."""
    if name in ("Report", "build_report"):
        from . import build
        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
