"""The study's README tables, made from the report's CSV tables (no numbers typed by hand).

    python recipes/study/tables.py --report recipes/study/report --results results/study --out recipes/study/tables.md

Per corpus: the clean row and the best configuration of every attack under ``split=speaker_cv`` beside our
leaky ``split=paper`` run and the paper's published value (its leaky protocol): adversarial accuracy (all,
female, male), success rate on the segments classified correctly before the attack, mean perturbation and
time per segment. Then clean accuracy per corpus beside the public anchors, the attacks' wall time per corpus
and attack (every configuration's runs, folds pooled) and the training of each fold's model (epochs, time, test
accuracy on the fold's whole test split) from the export's ``models.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

FREE, LEAKY = "split=speaker_cv", "split=paper"
ORDER = ["clean", "fgsm", "bim", "autoattack", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary", "noise"]
# public speaker-independent anchors (EmoBox, Interspeech 2024, Whisper-large-v3, unweighted accuracy; their
# label sets: EMOVO 7 classes, RAVDESS 8) and the paper's leaky clean accuracy (its Table 3)
ANCHORS = {"emodb": ("–", 0.909), "emovo": ("57.8 % UA, 7 classes", 0.872),
           "ravdess": ("75.3 % UA, 8 classes", 0.911)}
CHANCE = 0.2                                          # 5 balanced classes in every corpus of the study


def f3(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def fg(v) -> str:
    return "–" if v is None or v != v else f"{v:.3g}"


def _ci(m, lo, hi) -> str:
    """' [lo, hi]', or the exact bound ' [≤ hi]' / ' [≥ lo]' where every segment has the same outcome."""
    from ser_attacks.report.format import fci
    return fci(m, lo, hi)[len(f"{m:.3f}"):] if m == m else ""


def name_protocols(tables: list[pd.DataFrame], configs: pd.DataFrame) -> None:
    """A report of one protocol names its settings by corpus alone ("emodb"): add the protocol the runs used
    (``configurations.csv``'s split column), so that study v2's first pieces, all speaker_cv, find their rows."""
    if "split" not in configs:                       # a report written before configurations.csv had it
        return
    split = configs.drop_duplicates("setting").set_index("setting").split.dropna().astype(str)
    for df in tables:
        bare = ~df.setting.astype(str).str.contains("(split=", regex=False) & df.setting.isin(split.index)
        df.loc[bare, "setting"] = df.setting[bare] + " (split=" + df.setting[bare].map(split) + ")"


def datasets(side: pd.DataFrame) -> list[str]:
    """The corpora with speaker_cv results, the paper's three first."""
    found = sorted({s[:-len(f" ({FREE})")] for s in side.setting if s.endswith(f" ({FREE})")})
    return sorted(found, key=lambda d: (list(ANCHORS).index(d) if d in ANCHORS else len(ANCHORS), d))


def partial_folds(b: pd.DataFrame) -> dict[str, str]:
    """attack -> a note for best configurations whose runs cover fewer folds than the corpus's other
    configurations (a study still running): those numbers rest on fewer speakers and segments."""
    folds = b.folds.astype(str).map(lambda f: frozenset(f.split(",")))
    every = frozenset().union(*folds) if len(folds) else frozenset()
    return {a: f" (fold{'s' if len(f) > 1 else ''} {','.join(sorted(f, key=int))} of {len(every)} only: "
               f"{int(n)} segments)"
            for a, f, n in zip(b.index, folds, b.n_segments) if f != every}


def corpus_table(side: pd.DataFrame, best: pd.DataFrame, dataset: str) -> list[str]:
    free, leaky = f"{dataset} ({FREE})", f"{dataset} ({LEAKY})"
    ours = side[side.setting == free].set_index("attack")
    lk = side[side.setting == leaky].set_index("attack")
    b = best[best.setting == free].set_index("attack")
    partial = partial_folds(b)
    lines = ["| attack | our best config | adv acc all: speaker_cv [95% CI] / leaky ours / paper | female: ours / "
             "paper | male: ours / paper | success rate on correct (speaker_cv) | mean \\|δ\\|: ours (σ units) / "
             "paper (its own normalization): not comparable | "
             "s / segment: ours / paper |", "|" + "---|" * 8]
    for a in [x for x in ORDER if x in ours.index]:
        r = ours.loc[a]
        ci = ""
        if a in b.index:
            ci = _ci(b.loc[a, "adv_acc"], b.loc[a, "adv_acc_lo"], b.loc[a, "adv_acc_hi"])
        elif a == "clean":
            c = best[best.setting == free]
            if len(c):                                  # clean accuracy: the same segments for every attack
                ci = _ci(c.clean_acc.iloc[0], c.clean_acc_lo.iloc[0], c.clean_acc_hi.iloc[0])
        lk_acc = f3(lk.loc[a, "acc_ours"]) if a in lk.index else "–"
        config = (r.config_ours if isinstance(r.config_ours, str) and r.config_ours else "–") + partial.get(a, "")
        lines.append(
            f"| {a if a != 'clean' else 'clean (no attack)'} | {config} "
            f"| {f3(r.acc_ours)}{ci} / {lk_acc} / {f3(r.acc_paper)} "
            f"| {f3(r.acc_female_ours)} / {f3(r.acc_female_paper)} | {f3(r.acc_male_ours)} / {f3(r.acc_male_paper)} "
            f"| {f3(b.loc[a, 'success_rate']) if a in b.index else '–'} "
            f"| {fg(r.perturbation_ours)} / {fg(r.perturbation_paper)} "
            f"| {fg(r.time_per_segment_s_ours)} / {fg(r.time_per_segment_s_paper)} |")
    return lines


def clean_table(side: pd.DataFrame, best: pd.DataFrame, clean: pd.DataFrame) -> list[str]:
    lines = ["| corpus | clean acc, speaker_cv [95% CI by speaker] (attacked segments) | model test acc, "
             "speaker_cv (whole test splits) | leaky split=paper, whole test split: ours / paper | "
             "EmoBox (speaker-independent) |",
             "|---|---|---|---|---|"]
    for d in datasets(side):
        anchor, paper = ANCHORS.get(d, ("–", float("nan")))
        c = best[best.setting == f"{d} ({FREE})"]
        t = clean[clean.setting == f"{d} ({FREE})"]
        lk = clean[clean.setting == f"{d} ({LEAKY})"]
        above = "above chance" if c.clean_acc_lo.iloc[0] > CHANCE else "not above chance"
        lines.append(f"| {d} | {c.clean_acc.iloc[0]:.3f} [{c.clean_acc_lo.iloc[0]:.2f}, {c.clean_acc_hi.iloc[0]:.2f}]"
                     f" ({above}: chance {CHANCE}) | {f3(t.model_test_acc.iloc[0]) if len(t) else '–'} "
                     f"| {f3(lk.model_test_acc.iloc[0]) if len(lk) else '–'} / {f3(paper)} | {anchor} |")
    return lines


def time_table(configs: pd.DataFrame) -> list[str]:
    """Attack wall time under speaker_cv: per corpus and attack, the runs and their summed ``attack_time_s``. A
    configuration's ``attack_time_s`` is its folds' sum per repetition (seed), averaged over repetitions, so
    x ``n_reps`` is all its runs' time."""
    c = configs[configs.setting.str.endswith(f"({FREE})")]
    c = c.assign(dataset=c.setting.str[:-len(f" ({FREE})")], total=c.attack_time_s * c.n_reps)
    lines = ["| corpus | attack | runs | attack time, all runs (s) | costliest configuration, all its runs (s) |",
             "|---|---|---|---|---|"]
    for d in datasets(configs):
        sub = c[c.dataset == d]
        for a in [x for x in ORDER if x in set(sub.attack)]:
            g = sub[sub.attack == a]
            lines.append(f"| {d} | {a} | {int(g.n_runs.sum())} | {g.total.sum():,.0f} | {g.total.max():,.0f} |")
        lines.append(f"| {d} | **all** | {int(sub.n_runs.sum())} | **{sub.total.sum():,.0f}** | |")
    return lines


def training_table(results: Path) -> list[str]:
    """The models the study attacked (``<results>/<corpus>/models.csv``): one row per fold, a total per corpus."""
    files = sorted(results.glob("*/models.csv"))
    if not files:
        return [f"(no models.csv under {results}: export with `python -m ser_attacks.report.export`)"]
    m = pd.concat([pd.read_csv(f, dtype={"fold": str}) for f in files], ignore_index=True)
    lines = ["| corpus | split | fold | seed | epochs | training (s) | test accuracy (test segments) |",
             "|---|---|---|---|---|---|---|"]
    order = {d: i for i, d in enumerate(ANCHORS)}
    groups = sorted(m.groupby(["dataset", "split"]), key=lambda k: (order.get(k[0][0], 99), k[0][0],
                                                                      k[0][1] != "speaker_cv"))
    for (d, split), g in groups:
        cv = split == "speaker_cv"
        g = g.assign(_f=pd.to_numeric(g.fold, errors="coerce")).sort_values(["_f", "seed"] if "seed" in g else "_f")
        for _, r in g.iterrows():
            seed = r.get("seed")
            lines.append(f"| {d} | {split} | {r.fold if cv else '–'} | {'–' if pd.isna(seed) else f'{seed:.0f}'} | "
                         f"{r.epochs:.0f} | {r.train_seconds:,.0f} | {f3(r.test_acc)} ({r.n_test:.0f}) |")
        if len(g) > 1:
            pooled = (g.test_acc * g.n_test).sum() / g.n_test.sum()
            lines.append(f"| {d} | {split} | **all {len(g)}** | | {g.epochs.sum():.0f} | "
                         f"**{g.train_seconds.sum():,.0f}** | {f3(pooled)} ({g.n_test.sum():.0f}, pooled) |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, default=Path("recipes/study/report"))
    ap.add_argument("--results", type=Path, default=Path("results/study"),
                    help="the exports (one folder per corpus) whose models.csv gives the training table")
    ap.add_argument("--out", type=Path, default=Path("recipes/study/tables.md"))
    args = ap.parse_args(argv)
    t = args.report / "tables"
    side = pd.read_csv(t / "paper_side_by_side.csv")
    best = pd.read_csv(t / "table05_best_accuracy.csv")
    clean = pd.read_csv(t / "table03_clean_accuracy.csv")
    configs = pd.read_csv(t / "configurations.csv").copy()
    name_protocols([side, best, clean, configs], configs.copy())
    md = ["# The study's tables", "", f"Made by `python recipes/study/tables.py --report {args.report} --out "
          f"{args.out}` from the report's CSV tables. *ours* = `split=speaker_cv` (every speaker tested once, "
          "folds pooled) unless marked leaky; *paper* = the paper's published value (its leaky protocol; time "
          "per segment = its total time / its test segments). Best configuration = lowest adversarial accuracy "
          "under speaker_cv.", "", "## Clean accuracy", "", *clean_table(side, best, clean)]
    for d in datasets(side):
        md += ["", f"## {d}", "", *corpus_table(side, best, d)]
    md += ["", "## Attack wall time (speaker_cv)", "", "Measured on this project's machine (2 CPU cores, no GPU, "
           "shared with other work at times; see recipes/study/README.md).", "", *time_table(configs),
           "", "## Training (the attacked models)", "", f"From `{args.results}/<corpus>/models.csv` (each model's "
           "training run: epochs until early stopping, wall time, accuracy on its fold's whole test split). Same "
           "machine as above.", "", *training_table(args.results)]
    args.out.write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
