"""Study v2's budget: the attack and training times measured on one fold → the projected wall time of the whole
plan (recipes/study_v2/plan.yaml, `study:`: folds, seeds, the whole-split and subsample tiers), per corpus.

    python -m ser_attacks.report.export --experiment study-v2 --out /tmp/v2_fold0      # the measured fold's runs
    python recipes/study_v2/budget.py --runs /tmp/v2_fold0 --models recipes/speaker_independent/emodb/models.csv \
        --machine "2-core CPU, load 2-4" --out recipes/study_v2

Per configuration (attack + its parameters) the MEAN seconds per attacked segment over the measured runs (a mean,
not a median: JSMA's heavy tail is part of the bill), and the per-job overhead (data, model, metrics, logging, the
adversarial audio's resynthesis) from the gaps between the jobs' start times minus their attack time: a fixed part
and a part per attacked segment (the resynthesis), fitted through the two tiers' medians (8 segments vs a whole
split), so a corpus with larger test splits pays more per whole-split job. Training: the mean train_seconds of
the corpus's models in ``--models`` (models.csv of recipes/speaker_independent, the models issue), else EmoDB's
scaled by training segments. A configuration of the plan not measured is an error, not a zero.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
# test segments per speaker fold of a whole test split, and training segments of a fold with augment=paper (9
# versions of each training recording). EmoDB: its v2 models (382 segments / 5 folds; 2,385 training segments,
# recipes/speaker_independent/emodb). EMOVO and RAVDESS test segments: study v1's models (results/study/*/models.csv:
# 155-169 per fold of 2 EMOVO speakers, 160 per RAVDESS fold); their training segments are ESTIMATES until their v2
# models exist: training speakers x test segments per speaker x (1 - 0.16 validation) x 9 versions.
CORPORA = {"emodb": {"test_segments": 76.4, "train_segments": 2385},
           "emovo": {"test_segments": 78.0, "train_segments": round(5 * 78 * 0.84 * 9)},
           "ravdess": {"test_segments": 160.0, "train_segments": round(20 * 40 * 0.84 * 9)}}


def plan_configs(study: dict) -> list[tuple[str, str, dict, str]]:
    """The plan's configurations, its grid lines expanded: (name, attack, {key: value as written}, tier)."""
    import itertools
    out = []
    lines = [(ln, "whole") for ln in study["whole_test_split"] if ln.startswith("attack=")]
    for line, tier in lines + [(ln, "subsample") for ln in study["subsample"]["attacks"]]:
        toks = line.split("#")[0].split()
        attack = toks[0].split("=", 1)[1]
        sweeps = [[(t.split("=", 1)[0].removeprefix("attack."), v) for v in t.split("=", 1)[1].split(",")]
                  for t in toks[1:]]
        for combo in itertools.product(*sweeps):
            out.append((" ".join([attack] + [f"{k}={v}" for k, v in combo]), attack, dict(combo), tier))
    return out


# attack.* overrides that choose segments, not the attack's configuration
NOT_CONFIG = {"n_samples", "sample_strata", "sample_seed", "batch_size", "verbose", "seed"}


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def run_config(overrides: str, configs: list[tuple[str, str, dict, str]]) -> str | None:
    """The plan configuration a job ran, from its overrides (tag ``overrides``): the same attack and exactly the
    same configuration keys (``attack.noise attack.cells=5`` is not ``noise eps=0.25``, whatever eps defaults to)."""
    toks = dict(t.split("=", 1) for t in str(overrides).split() if "=" in t)
    attack = toks.get("attack")
    own = {k.removeprefix("attack."): v for k, v in toks.items() if k.startswith("attack.")}
    own = {k: v for k, v in own.items() if k not in NOT_CONFIG}
    for name, a, kv, _ in configs:
        if a == attack and set(kv) == set(own) and all(_same(own[k], v) for k, v in kv.items()):
            return name
    return None


def measured(runs_csv: Path, configs: list[tuple[str, str, dict, str]]) -> tuple[pd.DataFrame, tuple[float, float]]:
    """(per plan configuration: tier, runs, mean s/segment), the overhead per job as (fixed seconds, seconds per
    attacked segment). Runs of no configuration of the plan are left out."""
    raw = pd.read_csv(runs_csv)
    need = {"run_id", "tags.attack", "tags.overrides", "start_time", "metrics.attack_time_s",
            "metrics.time_per_sample_s"}
    if not need <= set(raw.columns):
        raise SystemExit(f"error: {runs_csv} lacks {sorted(need - set(raw.columns))} (an export of attack runs?)")
    raw = raw[raw["tags.attack"].notna()].copy()
    raw["start"] = pd.to_datetime(raw.start_time, utc=True, format="ISO8601")
    raw = raw.sort_values("start").reset_index(drop=True)
    raw["overhead"] = raw.start.diff().dt.total_seconds().shift(-1) - raw["metrics.attack_time_s"]
    raw["segments"] = (raw["metrics.n_samples"] if "metrics.n_samples" in raw
                       else (raw["metrics.attack_time_s"] / raw["metrics.time_per_sample_s"]).round())
    raw["config"] = [run_config(o, configs) for o in raw["tags.overrides"]]
    raw = raw[raw.config.notna()].copy()
    raw["tier"] = raw.config.map({c[0]: c[3] for c in configs})
    per = raw.groupby(["config", "tier"]).agg(runs=("run_id", "size"),
                                              seconds_per_segment=("metrics.time_per_sample_s", "mean"))
    return per.reset_index(), overhead_model(raw.dropna(subset=["overhead"]))


def overhead_model(jobs: pd.DataFrame) -> tuple[float, float]:
    """(fixed s, s per attacked segment) through the medians of the tiers' overheads and segment counts; one
    segment count only (or one tier): a constant."""
    tiers = jobs.groupby("tier").agg(overhead=("overhead", "median"), segments=("segments", "median"))
    if not len(tiers):
        return 0.0, 0.0
    if len(tiers) < 2 or tiers.segments.max() == tiers.segments.min():
        return max(float(jobs.overhead.median()), 0.0), 0.0
    lo, hi = tiers.loc[tiers.segments.idxmin()], tiers.loc[tiers.segments.idxmax()]
    slope = max(float((hi.overhead - lo.overhead) / (hi.segments - lo.segments)), 0.0)
    return max(float(lo.overhead - slope * lo.segments), 0.0), slope


def project(per: pd.DataFrame, overhead: tuple[float, float], study: dict, train_s: dict) -> pd.DataFrame:
    """Per corpus of the plan: models, jobs, training, attack and total hours."""
    n_sub = int(study["subsample"]["n_samples"])
    fixed, per_segment = overhead
    rows = []
    for corpus in study["corpora"]:
        models = int(study["folds"][corpus]) * len(study["seeds"])
        seg = CORPORA[corpus]["test_segments"]
        segments = [seg if r.tier == "whole" else min(n_sub, seg) for r in per.itertuples()]
        per_model = sum(r.seconds_per_segment * n + fixed + per_segment * n
                        for r, n in zip(per.itertuples(), segments))
        jobs = models * len(per)
        attack = models * per_model
        train = models * train_s[corpus]
        rows.append({"corpus": corpus, "models": models, "configurations": len(per), "jobs": jobs,
                     "train_hours": round(train / 3600, 1), "attack_hours": round(attack / 3600, 1),
                     "total_hours": round((train + attack) / 3600, 1)})
    return pd.DataFrame(rows)


def training_seconds(models_csv: Path | None, corpora) -> dict:
    """Mean train_seconds per corpus from models.csv files; a corpus without one scales EmoDB's by its training
    segments."""
    known = {}
    for path in models_csv or []:
        t = pd.read_csv(path)
        if "train_seconds" not in t or "dataset" not in t:
            raise SystemExit(f"error: {path} lacks train_seconds / dataset (rerun scripts/speaker_independent.py)")
        known.update(t.groupby("dataset").train_seconds.mean().to_dict())
    if "emodb" not in known and len(known) < len(corpora):
        raise SystemExit("error: --models must give EmoDB's training time at least (others are scaled from it)")
    base = known.get("emodb")
    return {c: known.get(c, base * CORPORA[c]["train_segments"] / CORPORA["emodb"]["train_segments"])
            for c in corpora}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="export folder (runs.csv) of the measured fold")
    p.add_argument("--models", type=Path, action="append", help="models.csv with train_seconds (repeatable)")
    p.add_argument("--plan", type=Path, default=HERE / "plan.yaml")
    p.add_argument("--machine", required=True, help="where the times were measured, in words (and its load)")
    p.add_argument("--out", type=Path, default=HERE)
    a = p.parse_args(argv)
    for path, what in [(a.runs / "runs.csv", "--runs"), (a.plan, "--plan")] + [(m, "--models") for m in a.models or []]:
        if not path.is_file():
            raise SystemExit(f"error: {what}: {path}: no such file")
    study = (yaml.safe_load(a.plan.read_text()) or {}).get("study")
    if not isinstance(study, dict):
        raise SystemExit(f"error: --plan {a.plan}: no `study:` design to project (recipes/study_v2/plan.yaml has one)")
    configs = plan_configs(study)
    per, overhead = measured(a.runs / "runs.csv", configs)
    missing = sorted({c[0] for c in configs} - set(per.config))
    if missing:
        raise SystemExit(f"error: {len(missing)} configuration(s) of the plan not measured in {a.runs}: "
                         + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    proj = project(per, overhead, study, training_seconds(a.models, study["corpora"]))
    out = {"machine": a.machine, "overhead_seconds_per_job": round(overhead[0], 1),
           "overhead_seconds_per_segment": round(overhead[1], 3),
           "measured": per.round(4).to_dict("records"), "projection": proj.to_dict("records")}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "budget.json").write_text(json.dumps(out, indent=2) + "\n")
    proj.to_csv(a.out / "budget.csv", index=False)
    sys.stdout.write(proj.to_string(index=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
