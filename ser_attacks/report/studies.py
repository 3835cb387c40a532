"""``python -m ser_attacks.report.studies``: the model-selection tables (paper Tables 1 and 2) from training runs.

    python -m ser_attacks.report.studies --sweep <architecture_study sweep run id> --out reports/architecture
    python -m ser_attacks.report.studies --experiment real-corpora --dataset emodb \
        --tag params.train.max_epochs=50 --tag params.split.mode=recording --out reports/m1_vs_final

Reads ``run_type=train`` and ``run_type=train_reused`` runs (the jobs of ``experiment=architecture_study``,
``experiment=normalization_study`` or any ``mode=train`` sweep). Model selection never looks at the test
set: per dataset the candidates (models or normalizations) are RANKED by validation accuracy (mean over
seeds), ties broken by validation loss (the restored model's: the minimum of its per-epoch ``val_loss``),
and test accuracy is reported for the chosen candidate (rank 1) only. Each trained model counts once: a
``train_reused`` run and the training run it points at (same ``model_key``) are one model. Runs that differ
in anything but the seed, the dataset and the studied factor are never pooled nor ranked together: the
differing keys become part of the row label (a "setting"), ranked separately. Writes ``study.md``,
``study.csv`` (one row per cell, with per-seed values), ``study.png`` (validation accuracy, the chosen
candidate marked with its test accuracy) and ``curves.png`` (per-epoch validation loss / accuracy of
every model) to ``--out`` and prints the Markdown table.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..identity import SEED_KEYS, is_run_only
from .collect import add_run_filters, run_filters, search, tidy
from .stats import mean_std

log = logging.getLogger(__name__)
TRAIN_TYPES = ("train", "train_reused")
FACTORS = {"model": "model.", "normalization": "normalization."}   # study factor -> its config keys


def study_runs(uri: str, experiment: str = "ser-attacks", sweeps=(), dataset: str | None = None,
               tags: dict | None = None) -> pd.DataFrame:
    """One row per trained model (FINISHED training or reused-model runs matching the filters)."""
    frames = [tidy(f) for f in (search(uri, experiment, sweeps, dataset, tags, run_type=t) for t in TRAIN_TYPES)
              if len(f)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True).sort_values(["start_time", "run_id"])
    # the model's identity: its cache key (train runs and the train_reused runs pointing at them share it)
    ident = df.model_key.where(df.model_key != "", df.run_id)
    df = df.loc[~ident.duplicated()].reset_index(drop=True)
    return df.assign(**_from_training_runs(uri, df))


def _source(run) -> str:
    """The run holding a model's training history: a reused model's training run, else the run itself."""
    return run.model_run_id or run.run_id


def _from_training_runs(uri: str, df: pd.DataFrame) -> dict[str, list[float]]:
    """Per trained model, from its training run (a reused model's too): ``val_loss``, the restored model's
    validation loss (EarlyStopping restores the epoch with the lowest ``val_loss``: the minimum of the
    per-epoch history), and ``train_seconds`` (wall clock). NaN where the run lacks them."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    out = {"val_loss": [], "train_seconds": []}
    for r in df.itertuples():
        try:
            run = client.get_run(_source(r))
        except MlflowException:                  # a reused model whose training run is in another store
            run = None
        out["val_loss"].append(min((h.value for h in client.get_metric_history(run.info.run_id, "val_loss")),
                                   default=np.nan) if run else np.nan)
        out["train_seconds"].append(run.data.metrics.get("train_seconds", np.nan) if run else np.nan)
    return out


def _factor(df: pd.DataFrame, by: str) -> str:
    if by != "auto":
        return by
    names = {f: df.params.map(lambda p, f=f: p.get(f"{f}.name", "")).nunique() for f in FACTORS}
    return "normalization" if names["normalization"] > 1 and names["model"] == 1 else "model"


def _label_keys(df: pd.DataFrame, factor: str) -> list[str]:
    """Config keys (present in every run) that vary between runs, other than seeds, dataset and the factor."""
    common = set.intersection(*(set(p) for p in df.params))
    skip = (FACTORS[factor], "dataset.")
    return sorted(k for k in common if k not in SEED_KEYS and not k.startswith(skip) and not is_run_only(k)
                  and df.params.map(lambda p, k=k: p[k]).nunique() > 1)


def study_table(df: pd.DataFrame, by: str = "auto") -> tuple[pd.DataFrame, str, list[str]]:
    """Long table: one row per (factor value [+ differing keys], dataset) with mean/std/n of validation
    accuracy and loss, the per-seed values, parameters and epochs, ranked within each (dataset, setting) by
    validation accuracy then loss. ``test_acc_*`` is filled for the chosen row (rank 1) only.
    Returns (table, factor, differing keys)."""
    factor = _factor(df, by)
    keys = _label_keys(df, factor)
    df = df.assign(value=df.params.map(lambda p: p.get(f"{factor}.name", "")),
                   label=df.params.map(lambda p: ", ".join(f"{k}={p[k]}" for k in keys)))
    if "val_loss" not in df:
        df = df.assign(val_loss=np.nan)
    rows = []
    for (value, label, dataset), g in df.groupby(["value", "label", "dataset"], sort=False):
        g = g.sort_values("seed", key=lambda s: pd.to_numeric(s, errors="coerce"))
        row = {factor: value, "setting": label, "dataset": dataset, "n_params": g.get("n_params", pd.Series()).max(),
               "seeds": ",".join(g.seed.astype(str)), "epochs": ",".join(f"{e:g}" for e in g.get("epochs", [])),
               "train_minutes": ",".join(f"{t / 60:.0f}" if t == t else "—" for t in g.get("train_seconds", []))}
        for m in ("val_acc", "val_loss", "test_acc"):      # every FINISHED training run logs the accuracies
            mean, std, n = mean_std(g[m])
            row.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_n": n,
                        f"{m}_per_seed": ",".join(f"{v:.3f}" for v in g[m])})
        rows.append(row)
    table = pd.DataFrame(rows)
    # the selection: best validation accuracy, then lowest validation loss (missing last), then the name
    order = sorted(range(len(table)), key=lambda i: (table.dataset[i], table.setting[i],
                                                     _nan_last(-table.val_acc_mean[i]),
                                                     _nan_last(table.val_loss_mean[i]), _natural(table[factor][i])))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(3, "rank", table.groupby(["dataset", "setting"], sort=False).cumcount() + 1)
    table.insert(4, "chosen", table["rank"] == 1)
    hidden = [c for c in table if c.startswith("test_acc_")]
    table.loc[~table.chosen, hidden] = np.nan               # test accuracy only beside the chosen candidate
    table.loc[~table.chosen, "test_acc_per_seed"] = ""
    return table, factor, keys


def _nan_last(x: float) -> float:
    return np.inf if x != x else x


def _natural(name: str) -> tuple:
    """m1 < m2 < ... < m10 < final: numbered names first, numbers compared as numbers."""
    return (0 if re.search(r"\d", str(name)) else 1,) + tuple((0, int(t)) if t.isdigit() else (1, t)
                                                              for t in re.findall(r"\d+|\D+", str(name)))


def _cell(mean, std, n) -> str:
    if n != n or n == 0 or mean != mean:
        return "—"
    return f"{mean:.3f} ± {std:.3f} (n={int(n)})" if n > 1 else f"{mean:.3f} (n=1)"


def markdown(table: pd.DataFrame, factor: str) -> str:
    """One row per candidate, ranked within each dataset (and setting) by validation accuracy then loss;
    test accuracy in its own column, for the chosen candidate only."""
    has_setting = table.setting.ne("").any()
    head = ["dataset"] + (["setting"] if has_setting else []) + ["rank", factor, "parameters", "val acc",
                                                                 "val loss", "per seed (val acc)", "epochs",
                                                                 "train min", f"test acc (chosen {factor} only)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        cells = [r.dataset] + ([r.setting] if has_setting else []) + [str(r.rank), f"**{getattr(r, factor)}**"
                                                                       if r.chosen else getattr(r, factor)]
        cells.append(f"{int(r.n_params):,}" if r.n_params == r.n_params else "—")
        cells += [_cell(r.val_acc_mean, r.val_acc_std, r.val_acc_n),
                  _cell(r.val_loss_mean, r.val_loss_std, r.val_loss_n),
                  r.val_acc_per_seed, r.epochs, r.train_minutes, _cell(r.test_acc_mean, r.test_acc_std, r.test_acc_n)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_figure(table: pd.DataFrame, factor: str, path: Path) -> Path:
    """Validation accuracy (the selection criterion) per candidate and dataset; the chosen candidate's bar
    is outlined and labelled with its test accuracy (the only test number shown)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = sorted(dict.fromkeys(zip(table[factor], table.setting)), key=lambda r: (_natural(r[0]), r[1]))
    datasets = list(dict.fromkeys(table.dataset))
    width = 0.8 / len(datasets)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rows) + 2), 3.8))
    picks = []
    for j, d in enumerate(datasets):
        sub = table[table.dataset == d].set_index([factor, "setting"])
        x = np.arange(len(rows)) + (j - (len(datasets) - 1) / 2) * width
        mean = np.array([sub.val_acc_mean.get(r, np.nan) for r in rows])
        std = np.array([sub.val_acc_std.get(r, np.nan) for r in rows])
        chosen = np.array([bool(sub.chosen.get(r, False)) for r in rows])
        ax.bar(x, mean, width, label=d, color=f"C{j}", edgecolor=np.where(chosen, "black", "none"),
               linewidth=np.where(chosen, 2.0, 0.0))
        ok = np.isfinite(std)                       # one seed: no error bar (a flat cap would claim no spread)
        ax.errorbar(x[ok], mean[ok], std[ok], fmt="none", ecolor="black", capsize=3)
        for xi, r in zip(x, rows):
            if r in sub.index:                      # every seed as a dot, and n at the bottom of the bar
                seeds = [float(v) for v in str(sub.val_acc_per_seed[r]).split(",") if v]
                ax.plot([xi] * len(seeds), seeds, "o", ms=3, color="black", alpha=0.6)
                ax.annotate(f"n={len(seeds)}", (xi, 0.02), ha="center", fontsize=7, color="white")
                if sub.chosen[r]:                   # a star above it; its test accuracy in the title
                    top = np.nanmax([sub.val_acc_mean[r] + np.nan_to_num(sub.val_acc_std[r]), *seeds])
                    ax.annotate("★", (xi, top + 0.01), ha="center", va="bottom", fontsize=11)
                    picks.append(f"{d}{' ' + r[1] if r[1] else ''}: {r[0]}, test acc "
                                 + _cell(sub.test_acc_mean[r], sub.test_acc_std[r], sub.test_acc_n[r]))
    ax.set_xticks(np.arange(len(rows)), [f"{v}\n{s}" if s else v for v, s in rows], fontsize=8)
    ax.set_ylabel("validation accuracy\n(mean, ± std over seeds, dots = seeds)", fontsize=9)
    width = int(fig.get_figwidth() * 13)           # characters per title line at fontsize 8
    ax.set_title(textwrap.fill("Selection by validation accuracy (★ = chosen, outlined); test accuracy of the "
                               "chosen only:", width) + "\n" + textwrap.fill("; ".join(picks), width), fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_figure(uri: str, df: pd.DataFrame, factor: str, path: Path,
                  metrics=("val_loss", "val_accuracy")) -> Path | None:
    """Per-epoch training curves of every model in ``df`` (a reused model: its training run's history):
    a row of panels per dataset, a colour per factor value, a line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    datasets = list(dict.fromkeys(df.dataset))
    values = sorted(dict.fromkeys(df.params.map(lambda p: p.get(f"{factor}.name", ""))), key=_natural)
    colours = dict(zip(values, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10))
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(5 * len(metrics), 3.2 * len(datasets)),
                             squeeze=False)
    drawn = False
    for r in df.itertuples():
        source = _source(r)
        value = r.params.get(f"{factor}.name", "")
        for j, m in enumerate(metrics):
            hist = sorted(client.get_metric_history(source, m), key=lambda h: h.step)
            if hist:
                drawn = True
                axes[datasets.index(r.dataset), j].plot([h.step + 1 for h in hist], [h.value for h in hist],
                                                        color=colours[value], alpha=0.8, lw=1.2,
                                                        label=f"{value} seed {r.seed}")
    if not drawn:
        plt.close(fig)
        return None
    for i, d in enumerate(datasets):
        for j, m in enumerate(metrics):
            ax = axes[i, j]
            ax.set_title(f"{d}: {m}", fontsize=9)
            ax.set_xlabel("epoch")
        for ax in axes[i]:                          # the legend on the first panel with lines
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
                break
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ser_attacks.report.studies", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_filters(p)
    p.add_argument("--by", choices=("auto", *FACTORS), default="auto",
                   help="the studied factor (auto: normalization if only it varies, else model)")
    p.add_argument("--out", default=None, help="folder for study.md / study.csv / study.png (default: print only)")
    a = p.parse_args(argv)
    try:
        uri, tags = run_filters(a)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    df = study_runs(uri, a.experiment, a.sweep, a.dataset, tags)
    if df.empty:
        print(f"error: no FINISHED training runs in experiment {a.experiment!r} at {uri} match", file=sys.stderr)
        return 2
    table, factor, keys = study_table(df, a.by)
    md = markdown(table, factor)
    print(md)
    if keys:
        print(f"\n(runs differ in {', '.join(keys)}: shown as separate rows, never pooled)")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "study.csv", index=False)
        bar_figure(table, factor, out / "study.png")
        curves = curves_figure(uri, df, factor, out / "curves.png")
        (out / "study.md").write_text(
            f"# {factor} study: selection by validation accuracy\n\n"
            f"Ranked per dataset by validation accuracy (mean over seeds), ties by validation loss; test "
            f"accuracy only for the chosen {factor} (rank 1).\n\n{md}\n\n"
            f"![validation accuracy, chosen {factor} outlined with its test accuracy](study.png)\n\n"
            + ("![per-epoch validation loss and accuracy](curves.png)\n\n" if curves else "")
            + f"Runs: {', '.join(df.run_id)}\n")
        print(f"\nWritten: {out / 'study.md'}, {out / 'study.csv'}, {out / 'study.png'}"
              + (f", {curves}" if curves else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
