"""Speaker-independent clean accuracy per fold x seed, the epoch kept, the pooled accuracy with a speaker-and-seed
interval, and the learning curves (issue 26, recipes/speaker_independent).

Reads the TRAINING runs (run_type=train) of one or more MLflow experiments for one corpus: each logs the kept epoch,
its learning curves and its test speakers' counts (``curves.json``, ser_attacks.train). Writes into ``--out``:

* ``models.csv``: one row per (rule, fold, seed): test speakers, segments, epochs run, epoch kept, validation and
  test accuracy, the run id;
* ``speakers.csv``: one row per (rule, fold, seed, test speaker): correct test segments and test segments;
* ``summary.csv``: per rule: folds, seeds, models, pooled test accuracy over all folds and seeds (whole test
  splits), its 95 % speaker-and-seed bootstrap interval (report.stats: speakers, and each fold's seeds; ``n/a``
  under 3 speakers), the SD across seeds of fold test accuracy (mean over folds; NaN with one seed), kept
  epochs (min-max);
* ``paired.csv`` (two rules): per (fold, seed) both have, each rule's test accuracy and the difference;
* ``curves.csv``: per model and epoch, train / validation / test accuracy (so the figure rebuilds from the files);
* ``curves.png``: per fold, train / validation / test accuracy per epoch for every seed, the kept epoch marked.

``--from <an earlier --out>`` (repeatable) reads such files back, so the models of a corpus can be trained piece by
piece on machines that do not keep their MLflow store: the folder's models, plus the MLflow runs of ``--experiment``
(``combine``: a model of the same rule, fold and seed trained again keeps the file's row when its outcome is the
same, the same config trains the same weights, and gives it its curves; a different outcome replaces the row and is
printed). A model from files written before ``curves.csv`` existed has no curve in the figure (its panel says so).

    python scripts/speaker_independent.py --experiment study-models --dataset emodb \\
        --out recipes/speaker_independent/emodb [--tracking-uri sqlite:///mlflow.db]
    # two protocols on the same folds and seeds (a rule's label names its normalization when not the default)
    python scripts/speaker_independent.py --experiment study-models --experiment study-models-speaker-std \\
        --dataset emovo --seed 42 --common-folds --out recipes/speaker_independent/emovo_protocol
    # the committed files plus this machine's new models
    python scripts/speaker_independent.py --from recipes/speaker_independent/emovo \\
        --experiment study-models-speaker-std --dataset emovo --out recipes/speaker_independent/emovo
"""
from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

N_BOOT = 2000
MIN_SPEAKERS = 3


def rule_of(params: dict) -> str:
    """The checkpoint rule of a training run, from its logged params (absent = the v1 value: identity.NEUTRAL),
    and its normalization where it is not the default (``original_std``), so two protocols never pool."""
    monitor = params.get("train.monitor", "val_loss")
    min_epochs = params.get("train.min_epochs", "0")
    val = params.get("split.val_utterances")
    where = (f"{float(val):.2f} of training speakers' utterances" if val not in (None, "None")
             else "next fold's speakers")
    norm = params.get("normalization.name", "original_std")
    return (f"{monitor}, min_epochs {min_epochs}, patience {params.get('train.early_stopping_patience')}, "
            f"val: {where}" + (f", normalization {norm}" if norm != "original_std" else ""))


def select(models: pd.DataFrame, seeds: list[int] | None, common_folds: bool) -> pd.DataFrame:
    """The rows of ``seeds`` (all if None); with ``common_folds``, only the (fold, seed) pairs every rule has, so
    rules are compared on the same test speakers and the same seeds."""
    if seeds:
        models = models[models.seed.isin(seeds)]
    if common_folds and models.rule.nunique() > 1:
        pairs = models.groupby("rule")[["fold", "seed"]].apply(lambda g: set(map(tuple, g.to_numpy())))
        keep = set.intersection(*pairs)
        models = models[[(f, k) in keep for f, k in zip(models.fold, models.seed)]]
    if models.empty:
        raise SystemExit("no model left after --seed / --common-folds")
    return models.reset_index(drop=True)


def collect(uri: str, experiments: list[str], dataset: str) -> tuple[pd.DataFrame, dict]:
    """(one row per training run, {run_id: curves.json content})."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    rows, extra = [], {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise SystemExit(f"no MLflow experiment {name!r} at {uri}")
        runs = client.search_runs([exp.experiment_id], f"tags.run_type = 'train' and tags.dataset = '{dataset}' "
                                  "and attributes.status = 'FINISHED'", max_results=5000)
        for r in runs:
            try:
                c = json.loads(Path(client.download_artifacts(r.info.run_id, "curves.json")).read_text())
            except Exception:      # noqa: BLE001 - a training run from before issue 26: no curves, no counts
                continue
            p, m = r.data.params, r.data.metrics
            spk = c["test_by_speaker"]
            rows.append({"experiment": name, "dataset": dataset, "rule": rule_of(p),
                         "fold": int(c["fold"]) if c["fold"] is not None else -1, "seed": int(c["seed"]),
                         "test_speakers": " ".join(sorted(spk)),
                         "n_test": sum(n for _, n in spk.values()), "epochs": int(m["epochs"]),
                         "epoch_kept": int(c["epoch_kept"]), "val_acc": m["val_acc"], "test_acc": m["test_acc"],
                         "train_seconds": m.get("train_seconds"), "run_id": r.info.run_id})
            extra[r.info.run_id] = c
    if not rows:
        raise SystemExit(f"no finished training runs with curves for dataset {dataset!r} in {experiments}")
    return pd.DataFrame(rows).sort_values(["rule", "fold", "seed"]).reset_index(drop=True), extra


CURVE_KEYS = ("accuracy", "val_accuracy", "test_accuracy")
KEY = ["rule", "fold", "seed"]


def from_files(folder: Path, dataset: str) -> tuple[pd.DataFrame, dict]:
    """An earlier ``--out`` → (its models.csv rows of ``dataset``, {run_id: {"test_by_speaker", "curves" or None}})."""
    if not (folder / "models.csv").exists() or not (folder / "speakers.csv").exists():
        raise SystemExit(f"--from {folder}: needs models.csv and speakers.csv (written by this script)")
    models = pd.read_csv(folder / "models.csv", dtype={"test_speakers": str})
    models = models[models.dataset == dataset].reset_index(drop=True)
    spk = pd.read_csv(folder / "speakers.csv", dtype={"speaker": str})
    curves = (pd.read_csv(folder / "curves.csv") if (folder / "curves.csv").exists()
              else pd.DataFrame(columns=["run_id", "epoch"]))
    extra = {}
    for r in models.itertuples():
        g = spk[(spk.rule == r.rule) & (spk.fold == r.fold) & (spk.seed == r.seed)]
        c = curves[curves.run_id == r.run_id].sort_values("epoch")
        extra[r.run_id] = {"test_by_speaker": {s: (int(k), int(n)) for s, k, n in zip(g.speaker, g.n_correct, g.n)},
                           "curves": ({"epoch": c.epoch.tolist(), **{k: c[k].tolist() for k in CURVE_KEYS}}
                                      if len(c) else None)}
    return models, extra


def combine(parts: list[tuple[pd.DataFrame, dict]]) -> tuple[pd.DataFrame, dict, list[str]]:
    """Models of several sources (files first, then MLflow). A model of the same (rule, fold, seed) trained again
    with the same outcome (epochs, kept epoch, validation and test accuracy) is the same model: the first row stays
    and lends its curves where the files had none. A different outcome replaces the row, and a line says so."""
    models = pd.concat([m for m, _ in parts], ignore_index=True)
    extra = {k: v for _, e in parts for k, v in e.items()}
    outcome = ["epochs", "epoch_kept", "val_acc", "test_acc"]
    keep, changed = [], []
    for key, g in models.groupby(KEY, sort=False):
        first = g.iloc[0]
        same = all(np.allclose(g[c].astype(float), float(first[c]), atol=5e-5) for c in outcome)
        if same:
            keep.append(g.index[0])
            if not extra[first.run_id].get("curves"):
                extra[first.run_id] = {**extra[first.run_id], "curves": next(
                    (extra[r]["curves"] for r in g.run_id if extra[r].get("curves")), None)}
        else:
            keep.append(g.index[-1])
            changed.append(f"fold {key[1]} seed {key[2]} ({key[0]}): test accuracy "
                           + " then ".join(f"{a:.4f}" for a in g.test_acc) + " (trained again: not the same weights)")
    models = models.loc[sorted(keep)]
    return models.sort_values(KEY).reset_index(drop=True), extra, changed


def curves_table(models: pd.DataFrame, extra: dict) -> pd.DataFrame:
    rows = [{**{k: getattr(r, k) for k in KEY}, "run_id": r.run_id, "epoch": e,
             **{k: c[k][i] for k in CURVE_KEYS}}
            for r in models.itertuples() if (c := extra[r.run_id].get("curves"))
            for i, e in enumerate(c["epoch"])]
    return pd.DataFrame(rows, columns=KEY + ["run_id", "epoch", *CURVE_KEYS])


def interval(counts: dict[tuple[str, int], tuple[int, int]], folds: dict[str, object] | None = None,
             seed: int = 0) -> tuple[float, float] | None:
    """95 % interval of pooled accuracy, the report's speaker-and-seed bootstrap (``stats.hier_ci``: test
    speakers drawn as clusters, each fold's training seeds k of k); ``counts[(speaker, seed)] = (correct,
    segments)``, ``folds[speaker]`` its fold (one fold per speaker when not given). None under ``MIN_SPEAKERS``
    speakers."""
    from ser_attacks.report import stats
    speakers = sorted({s for s, _ in counts})
    if len(speakers) < MIN_SPEAKERS:
        return None
    folds = folds or {s: s for s in speakers}
    slots = {s: sorted(k for sp, k in counts if sp == s) for s in speakers}
    width = max(map(len, slots.values()))
    num_by = np.full((len(speakers), width), np.nan)
    den_by = np.full((len(speakers), width), np.nan)
    for i, s in enumerate(speakers):
        for j, k in enumerate(slots[s]):
            num_by[i, j], den_by[i, j] = counts[(s, k)]
    _, lo, hi = stats.hier_ci(speakers, None, np.nanmean(num_by, axis=1), np.nanmean(den_by, axis=1),
                              n_boot=N_BOOT, seed=seed, fold=[str(folds[s]) for s in speakers], num_by=num_by,
                              den_by=den_by)
    return float(lo), float(hi)


def speakers(models: pd.DataFrame, extra: dict) -> pd.DataFrame:
    """One row per (rule, fold, seed, test speaker): its correct test segments and its test segments (the seed
    spread per speaker on the same segments: ser_attacks.report.power reads it)."""
    return pd.DataFrame([{"rule": r.rule, "fold": r.fold, "seed": r.seed, "speaker": s, "n_correct": int(c),
                          "n": int(n)} for r in models.itertuples()
                         for s, (c, n) in sorted(extra[r.run_id]["test_by_speaker"].items())])


def summarize(models: pd.DataFrame, extra: dict) -> pd.DataFrame:
    out = []
    for rule, g in models.groupby("rule", sort=False):
        counts = {(s, int(r.seed)): tuple(v) for r in g.itertuples()
                  for s, v in extra[r.run_id]["test_by_speaker"].items()}
        correct = sum(c for c, _ in counts.values())
        total = sum(n for _, n in counts.values())
        ci = interval(counts, {s: r.fold for r in g.itertuples() for s in extra[r.run_id]["test_by_speaker"]})
        sd = g.groupby("fold").test_acc.std(ddof=1)
        out.append({"rule": rule, "folds": g.fold.nunique(), "seeds": g.seed.nunique(), "models": len(g),
                    "test_speakers": len({s for s, _ in counts}), "segments": total,
                    "pooled_test_acc": round(correct / total, 3),
                    "ci95": f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a (< 3 speakers)",
                    "sd_across_seeds": round(float(sd.mean()), 3) if sd.notna().any() else float("nan"),
                    "epoch_kept": f"{g.epoch_kept.min()}-{g.epoch_kept.max()}"})
    return pd.DataFrame(out)


def paired(models: pd.DataFrame) -> pd.DataFrame | None:
    """With two rules: one row per (fold, seed) both have: test speakers, each rule's test accuracy and the
    difference (second rule − first, rules in the order of ``models``); None otherwise."""
    rules = list(dict.fromkeys(models.rule))
    if len(rules) != 2:
        return None
    a, b = (models[models.rule == r].set_index(["fold", "seed"]) for r in rules)
    both = a.index.intersection(b.index)
    out = pd.DataFrame({"test_speakers": a.loc[both, "test_speakers"], "n_test": a.loc[both, "n_test"],
                        "test_acc_a": a.loc[both, "test_acc"], "test_acc_b": b.loc[both, "test_acc"]})
    out["difference_b_minus_a"] = out.test_acc_b - out.test_acc_a
    return out.reset_index().assign(rule_a=rules[0], rule_b=rules[1])


LABEL_GAP = 0.04  # accuracy units between the seed labels at the curves' ends


def spread(ys: list[float], gap: float) -> list[float]:
    """Label heights for points at ``ys`` (in their order), at least ``gap`` apart: sorted, each pushed up where it
    comes too close to the one below, then all shifted so that their mean is the points' mean (points already
    ``gap`` apart keep their heights)."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = [0.0] * len(ys)
    prev = -float("inf")
    for i in order:
        out[i] = prev = max(ys[i], prev + gap)
    shift = (sum(out) - sum(ys)) / len(ys) if ys else 0.0
    return [v - shift for v in out]


def plot_curves(models: pd.DataFrame, extra: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = list(models.groupby(["rule", "fold"], sort=False))
    ncols = min(len(panels), 3)                                  # 5-6 folds: two rows, not one strip
    rules = list(dict.fromkeys(models.rule))
    if len(rules) == 2:         # a protocol comparison: each fold's two rules side by side, two folds per row
        panels.sort(key=lambda p: (p[0][1], rules.index(p[0][0])))
        ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    axes = [list(axes.flat)]
    colors = {"accuracy": "tab:gray", "val_accuracy": "tab:blue", "test_accuracy": "tab:red"}
    labels = {"accuracy": "train (running, dropout on)", "val_accuracy": "validation", "test_accuracy": "test"}
    seeds = sorted(models.seed.unique().tolist())
    for ax, ((rule, fold), g) in zip(axes[0], panels):
        without = [r for r in g.itertuples() if not extra[r.run_id].get("curves")]
        for r in without:           # no curve: the kept epoch's test accuracy from the table, hollow
            ax.plot([r.epoch_kept], [r.test_acc], "o", mfc="none", mec="black", ms=7, label="kept epoch, no curve"
                    if r is without[0] else None)
            ax.annotate(f"seed {r.seed}", (r.epoch_kept, r.test_acc), fontsize=7, xytext=(5, -3),
                        textcoords="offset points")
        ends = []
        for n, r in enumerate(r for r in g.itertuples() if extra[r.run_id].get("curves")):
            c = extra[r.run_id]["curves"]
            style = ["-", "--", ":", "-."][seeds.index(r.seed) % 4]       # one style per seed in every panel
            for key, color in colors.items():
                ax.plot(c["epoch"], c[key], style, color=color, lw=1.4,
                        label=f"{labels[key]}" if n == 0 else None)
            ax.plot([r.epoch_kept], [c["test_accuracy"][r.epoch_kept - 1]], "o", color="black", ms=6,
                    label="kept epoch (test acc)" if n == 0 else None)
            ends.append((c["epoch"][-1], c["val_accuracy"][-1], r.seed))
        # each seed named at the end of its validation curve; ends close together are moved apart
        for (x, y, seed), y_text in zip(ends, spread([e[1] for e in ends], LABEL_GAP)):
            ax.annotate(f"seed {seed}", (x, y), xytext=(x + 0.4, y_text), fontsize=7, va="center")
        ax.axhline(0.2, color="k", lw=0.6, ls=":")
        ax.set_xlim(0, g.epochs.max() + 2)
        note = f" (seed {', '.join(str(r.seed) for r in without)}: no curve in the files)" if without else ""
        ax.set_title("\n".join(textwrap.wrap(f"fold {fold}: {rule}{note}", 60)), fontsize=8)   # panels side by side
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (5 classes, chance 0.2 dotted)")
    legend = {}                     # one legend for every panel's entries (a panel may lack curves or hollow dots)
    for ax in axes[0][:len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    if len(axes[0]) > len(panels):  # a spare panel holds it
        spare = axes[0][len(panels)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(legend.values(), legend.keys(), fontsize=9, loc="center")
    elif legend:
        axes[0][0].legend(legend.values(), legend.keys(), fontsize=7, loc="best")
    width = int(13 * 5.2 * ncols)                                # characters across the panels (one: 67)
    fig.suptitle("\n".join(textwrap.wrap(title, width, break_on_hyphens=False)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", action="append", default=[], help="MLflow experiment (repeatable)")
    ap.add_argument("--from", dest="sources", type=Path, action="append", default=[],
                    help="an earlier --out of this script whose models are kept (repeatable)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    ap.add_argument("--seed", type=int, action="append", help="only these training seeds (repeatable)")
    ap.add_argument("--common-folds", action="store_true",
                    help="compare rules on the (fold, seed) pairs they all have (a protocol comparison)")
    a = ap.parse_args(argv)
    if not a.experiment and not a.sources:
        ap.error("give --experiment (MLflow) and/or --from (earlier files)")
    parts = [from_files(f, a.dataset) for f in a.sources]          # read before --out may overwrite them
    if a.experiment:
        parts.append(collect(a.tracking_uri, a.experiment, a.dataset))
    models, extra, changed = combine(parts)
    models = select(models, a.seed, a.common_folds)
    a.out.mkdir(parents=True, exist_ok=True)
    models.to_csv(a.out / "models.csv", index=False)
    curves_table(models, extra).to_csv(a.out / "curves.csv", index=False)
    speakers(models, extra).to_csv(a.out / "speakers.csv", index=False)
    summary = summarize(models, extra)
    summary.to_csv(a.out / "summary.csv", index=False)
    pairs = paired(models)
    if pairs is not None:
        pairs.to_csv(a.out / "paired.csv", index=False)
    sources = [f"experiment {', '.join(a.experiment)}"] if a.experiment else []
    plot_curves(models, extra, a.out / "curves.png", f"{a.dataset}: learning curves per fold and seed ("
                + "; ".join(sources + [f"files {f}" for f in a.sources]) + ")")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 70):
        print(models.drop(columns=["run_id", "experiment"]).to_string(index=False))
        print()
        print(summary.to_string(index=False))
        if pairs is not None:
            print()
            print(pairs.drop(columns=["rule_a", "rule_b"]).to_string(index=False))
    for line in changed:
        print("NOTE:", line)


if __name__ == "__main__":
    main()
