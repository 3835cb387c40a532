"""The paper's published numbers (Facchinetti, Simonetta, Ntalampiras 2024), for the report's "Beside the paper"
section: ``paper_values.csv`` beside this module, one value per row (long format), read with pandas only.

Columns of the CSV: ``table`` and ``line`` (the paper table, and the line of the paper's text copy
``shared/paper/000_b99e46e4a73c207f.txt``, beside the project checkout, that the value was read from), ``dataset``
(emodb / emovo / ravdess), ``attack`` (our attack names; ``clean`` for Tables 3 and 22), ``gender``
(all / female / male),
``metric`` (``clean_acc``, ``adv_acc``, ``perturbation``, ``time_s`` = total seconds to attack the whole test set,
``n_segments`` = test segments, Table 22), ``value``, ``config`` (the paper's best configuration, Table 4) and
``note`` (where the paper disagrees with itself). ``paper_values.md`` says where each block comes from and why the
paper's single "C&W" row is our ``cw_linf``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_CSV = Path(__file__).with_name("paper_values.csv")
PAPER_DATASETS = ("emodb", "emovo", "ravdess")
PAPER_ATTACKS = ("fgsm", "bim", "deepfool", "jsma", "cw_l2", "cw_linf", "pixel", "boundary")
METRICS = ("clean_acc", "adv_acc", "perturbation", "time_s", "n_segments")
GENDERS = ("all", "female", "male")


def load_paper_values(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The CSV as a frame (``value`` as float); ValueError for an unknown dataset, attack, gender or metric,
    or a value given twice."""
    df = pd.read_csv(path, dtype={"config": str, "note": str}, keep_default_na=False,
                     converters={"value": float})
    for col, allowed in (("dataset", PAPER_DATASETS), ("attack", ("clean",) + PAPER_ATTACKS),
                         ("gender", GENDERS), ("metric", METRICS)):
        bad = sorted(set(df[col]) - set(allowed))
        if bad:
            raise ValueError(f"{path}: unknown {col} {bad}")
    dup = df[df.duplicated(["dataset", "attack", "gender", "metric"], keep=False)]
    if len(dup):
        raise ValueError(f"{path}: value given twice: {dup[['dataset', 'attack', 'gender', 'metric']].values.tolist()}")
    return df


def paper_wide(values: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset, attack), ``clean`` included: ``acc``/``acc_female``/``acc_male`` (clean accuracy for
    ``clean``, adversarial accuracy otherwise), ``perturbation``(``_female``/``_male``), ``time_s`` (total, whole
    test set), ``time_per_segment_s`` (``time_s`` / the dataset's test segments, Table 22), ``config`` and
    ``tables`` (the paper tables behind the row). Missing values are NaN."""
    v = load_paper_values() if values is None else values
    sfx = {"all": "", "female": "_female", "male": "_male"}
    name = {"clean_acc": "acc", "adv_acc": "acc", "perturbation": "perturbation", "time_s": "time_s"}
    rows = {}
    for r in v[v.metric != "n_segments"].itertuples():
        row = rows.setdefault((r.dataset, r.attack), {"dataset": r.dataset, "attack": r.attack, "config": "",
                                                      "tables": set()})
        col = name[r.metric] + ("" if r.metric == "time_s" else sfx[r.gender])
        row[col] = r.value
        row["config"] = row["config"] or r.config
        row["tables"].add(int(r.table))
    out = pd.DataFrame([{**r, "tables": ", ".join(map(str, sorted(r["tables"])))} for r in rows.values()])
    for c in ("acc", "acc_female", "acc_male", "perturbation", "perturbation_female", "perturbation_male", "time_s"):
        if c not in out:
            out[c] = float("nan")
    n = v[(v.metric == "n_segments") & (v.gender == "all")].set_index("dataset").value
    out["time_per_segment_s"] = out.time_s / out.dataset.map(n)
    return out
