"""Attack runs → small files that outlive the MLflow database: ``runs.csv``, ``segments.csv.gz``, ``manifest.json``.

    python -m ser_attacks.report.export --sweep <parent_run_id> --out results/study/emodb
    python -m ser_attacks.report --from-results results/study/emodb [results/study/emovo ...] --out reports/study

``runs.csv``: one row per FINISHED attack run, in the columns of ``mlflow.search_runs`` (``run_id``,
``status``, ``start_time``, ``tags.*``, ``metrics.*``, ``params.*``: every logged parameter, so the report
groups configurations, settings, seeds and folds exactly as from MLflow).
``segments.csv.gz``: one row per attacked segment and run (from the run's ``adversarial.npz``, without the
spectrograms): the run's configuration (dataset, model, split, fold, seed, attack, config = its swept parameters,
``attack.*`` = all its parameters),
the segment's identity (recording_id, speaker, utterance, segment, augment, test_index), gender, emotion,
label, clean/adversarial prediction, perturbation (normalized units, mean |δ|), perturbation_db, linf_db,
snr_db (dB of log-Mel / SNR of the Mel power; +inf: segment unchanged), linf / l2 (norms of δ, σ units), the
minimal perturbation min_linf / min_l2 / min_snr_db of minimum-norm attacks (``ser_attacks.min_norm``: FMN,
DeepFool, C&W, Boundary; NaN for the others) and the run's attack time per segment.
``models.csv``: one row per trained model the runs attacked (their ``tags.model_run_id``: the training run,
in whichever experiment it was logged): dataset, model, split, fold, seed, epochs, the epoch kept, training time,
segment counts, validation and test accuracy on the fold's whole splits, host and commit. The attack runs only point
to their model; this keeps the training side of a study (time per fold) with its results.
``manifest.json``: where the runs came from (tracking URI, experiment, filters), counts, the command.

``--merge`` adds to an earlier export in ``--out`` instead of replacing it: a study run piece by piece on machines
that do not keep their MLflow store (the files are what survives; each piece is exported and committed). The earlier
runs stay unless the new export holds a run of the same configuration (``tags.config_hash``: the new run replaces
it) or the same run id; their segments and models stay with them; ``manifest.json`` lists every piece (``pieces``).

``load_results`` reads one or more such folders back into exactly what ``collect.collect`` and
``collect.load_samples`` give the report. What the files lack: the logged figures (spectrograms) and audio,
which the rebuilt report leaves out.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import exact_fractions
from .collect import (
    ATTACK_META,
    SEED_KEYS,
    Runs,
    Samples,
    add_run_filters,
    annotate,
    cli_run_filters,
    download,
    search,
    tidy,
)

log = logging.getLogger(__name__)

RESULTS_SCHEME = "results:"        # Runs.uri of a report rebuilt from files (collect.download skips it)
RUNS_FILE, SEGMENTS_FILE, MODELS_FILE, MANIFEST_FILE = "runs.csv", "segments.csv.gz", "models.csv", "manifest.json"
# identity columns of a segment: strings (speaker "03" stays "03")
ID_COLUMNS = ("recording_id", "speaker", "utterance", "augment", "emotion", "gender")
# per-segment measures; linf, l2, min_* from ser_attacks.min_norm (absent from older runs: NaN)
MIN_NORM_COLUMNS = ("linf", "l2", "min_linf", "min_l2", "min_snr_db")     # = ser_attacks.min_norm.COLUMNS
PER_SEGMENT = ("perturbation", "perturbation_db", "linf_db", "snr_db", "linf", "l2", "min_linf", "min_l2",
               "min_snr_db")


def _segments(run: pd.Series, z, classes: np.ndarray, swept: list[str]) -> pd.DataFrame:
    """The rows of one run's ``adversarial.npz`` (arrays of length n; ``x_adv`` and logits left out)."""
    n = len(z["label"])
    p = run.params
    cols = {"run_id": run.run_id, "dataset": run.dataset, "model": run.model, "split": run.split,
            "fold": (z["fold"].astype(int) if "fold" in z.files else np.full(n, -1)), "seed": run.seed,
            "attack": run.attack, "config": run.config}
    cols.update({k: p.get(k, "") for k in swept})
    for c in ID_COLUMNS[:4]:
        cols[c] = z[c].astype(str) if c in z.files else np.full(n, "")
    cols["segment"] = z["segment"].astype(int) if "segment" in z.files else np.zeros(n, int)
    cols["test_index"] = z["test_index"].astype(int)
    cols["gender"] = z["gender"].astype(str)
    label, clean, adv = (z[k].astype(int) for k in ("label", "clean_pred", "adv_pred"))
    cols.update(label=label, emotion=(z["emotion"].astype(str) if "emotion" in z.files else classes[label]),
                clean_pred=clean, adv_pred=adv, clean_emotion=classes[clean], adv_emotion=classes[adv])
    for k in PER_SEGMENT:
        cols[k] = z[k].astype(np.float64) if k in z.files else np.full(n, np.nan)
    cols["time_per_segment_s"] = float(run.get("time_per_sample_s", np.nan))
    return pd.DataFrame(cols)


def _raw_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """search_runs' frame, reduced to what the report reads (all params and metrics, the tags it uses)."""
    # sorted: mlflow.search_runs gives the metric columns in no fixed order; the file should not churn
    keep = ["run_id", "status", "start_time"] + sorted(c for c in raw.columns if c.startswith(("metrics.", "params.",
                                                                                                "tags.")))
    out = raw[keep].copy()
    out = out.drop(columns=[c for c in out.columns if c in ("tags.mlflow.source.name", "tags.mlflow.user",
                                                           "tags.mlflow.source.type", "tags.mlflow.log-model.history")])
    out["start_time"] = pd.to_datetime(out.start_time, utc=True).map(lambda t: t.isoformat())
    return out


MODEL_COLUMNS = ("model_run_id", "model_key", "dataset", "model", "split", "fold", "seed", "epochs", "epoch_kept",
                 "train_seconds", "n_train", "n_val", "n_test", "val_acc", "test_acc", "start_time", "host",
                 "git_commit", "from_cache", "resumed_after_epoch", "device")


def _models(uri: str, model_run_ids) -> tuple[pd.DataFrame, list[str]]:
    """The training runs behind the attack runs → ``models.csv`` rows (and the ids not found at ``uri``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    client, rows, missing = MlflowClient(uri), [], []
    for rid in sorted({str(r) for r in model_run_ids if isinstance(r, str) and r}):
        try:
            r = client.get_run(rid)
        except MlflowException:
            missing.append(rid)
            continue
        p, m, t = r.data.params, exact_fractions(r.data.metrics), r.data.tags     # val/test acc from their counts
        rows.append({"model_run_id": rid, "model_key": t.get("model_key", ""),
                     "dataset": p.get("dataset.name", t.get("dataset", "")), "model": t.get("model", ""),
                     "split": p.get("split.mode", ""), "fold": p.get("split.fold", ""), "seed": p.get("seed", ""),
                     **{k: m.get(k, np.nan) for k in ("epochs", "epoch_kept", "train_seconds", "n_train", "n_val",
                                                        "n_test", "val_acc", "test_acc")},
                     "start_time": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC").isoformat(),
                     "host": t.get("host", ""), "git_commit": t.get("git_commit", ""),
                     # "true": trained elsewhere (experiment=study_models), logged here from the model cache when
                     # its first attack job ran, after training; "false": trained in this run (it began with it)
                     "from_cache": t.get("from_cache", "false"),
                     # a training killed and resumed from its state after this epoch (blank: in one process);
                     # its train_seconds count both processes, the break between them left out
                     "resumed_after_epoch": m.get("resumed_after_epoch", np.nan),
                     # the machine that trained it (ser_attacks.machine; blank: trained before it was recorded)
                     "device": t.get("device", "")})
    df = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    return df.sort_values(["dataset", "model", "split", "fold", "seed", "start_time"], kind="stable"), missing


def _read_text_frame(path: Path, **kw) -> pd.DataFrame:
    """An exported file as text, every cell as written (a merge rewrites the earlier rows unchanged)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path, dtype=str, keep_default_na=False, **kw)


def _as_text(df: pd.DataFrame, float_format: str) -> pd.DataFrame:
    """Float columns as ``to_csv(float_format=...)`` writes them (NaN as ""): beside earlier rows read as text, a
    column is of no single dtype, and ``to_csv`` would format the new numbers in full."""
    df = df.copy()
    for c in df.columns[[pd.api.types.is_float_dtype(t) for t in df.dtypes]]:
        df[c] = [("" if np.isnan(v) else float_format % v) for v in df[c]]
    return df


def merge_earlier(out: Path, runs: pd.DataFrame, seg: pd.DataFrame, models: pd.DataFrame):
    """(runs, segments, models) of the export in ``out`` followed by the new ones; an earlier run is dropped when
    a new one has its run id or its configuration (``tags.config_hash``), its segments with it, and a model row
    only when no kept run attacks it. Returns the three frames and (earlier runs kept, earlier runs exported again,
    earlier runs replaced by another run of their configuration)."""
    old = _read_text_frame(out / RUNS_FILE)
    if not len(old):
        return runs, seg, models, (0, 0, 0)
    again = old.run_id.isin(set(runs.run_id))
    rerun = pd.Series(False, index=old.index)
    if "tags.config_hash" in old and "tags.config_hash" in runs:
        new_hashes = set(runs["tags.config_hash"].dropna().astype(str)) - {""}
        rerun = old["tags.config_hash"].isin(new_hashes) & ~again
    gone = again | rerun
    kept = old[~gone]
    old_seg = _read_text_frame(out / SEGMENTS_FILE, compression="gzip")
    if len(old_seg):
        old_seg = old_seg[old_seg.run_id.isin(set(kept.run_id))]
    merged_runs = pd.concat([kept, runs], ignore_index=True)
    attacked = set(merged_runs.get("tags.model_run_id", pd.Series(dtype=str)).dropna().astype(str))
    old_models = _read_text_frame(out / MODELS_FILE)
    if len(old_models):
        old_models = old_models[old_models.model_run_id.isin(attacked)
                                & ~old_models.model_run_id.isin(set(models.model_run_id))]
    return (merged_runs, pd.concat([old_seg, _as_text(seg, "%.6g")], ignore_index=True),
            pd.concat([old_models, _as_text(models, "%.6g")], ignore_index=True),
            (len(kept), int(again.sum()), int(rerun.sum())))


def export(out: Path, uri: str, experiment: str = "ser-attacks", sweeps=(), dataset: str | None = None,
           tags: dict | None = None, cache: Path | None = None, command: str = "", merge: bool = False) -> dict:
    """Write runs.csv, segments.csv.gz, models.csv and manifest.json into ``out``; returns the manifest. The files are
    written under temporary names and renamed at the end (an interrupted export leaves the old files). ``merge``:
    add to the export already in ``out`` (``merge_earlier``) instead of replacing it."""
    raw = search(uri, experiment, sweeps, dataset, tags)
    if not len(raw):
        raise SystemExit(f"error: no FINISHED attack runs in experiment {experiment!r} at {uri} matching "
                         f"sweeps={list(sweeps)} dataset={dataset} tags={tags or {}}")
    df = annotate(tidy(raw))[0]
    # every attack parameter any run logged (the swept ones and the fixed ones: a row says its whole attack)
    swept_keys = sorted({k for p in df.params for k in p if k.startswith("attack.") and k not in ATTACK_META})
    frames, missing = [], []
    for _, run in df.iterrows():
        path = download(uri, run.run_id, "adversarial.npz", cache)
        if path is None:
            missing.append(run.run_id)
            continue
        with np.load(path, allow_pickle=False) as z:          # x_adv is never read (lazy npz)
            classes = z["classes"].astype(str) if "classes" in z.files else np.array([], str)
            frames.append(_segments(run, z, classes, swept_keys))
    seg = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    kept = raw[raw.run_id.isin(df.run_id)]
    models, models_missing = _models(uri, kept.get("tags.model_run_id", pd.Series(dtype=object)))
    if models_missing:
        log.warning("%d training runs not found at %s (left out of %s): %s", len(models_missing), uri,
                    MODELS_FILE, ", ".join(models_missing))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = _raw_runs(kept)
    piece = {"tracking_uri": uri, "experiment": experiment, "sweeps": list(sweeps), "dataset": dataset,
             "tags": tags or {}, "n_runs": len(df), "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": command}
    pieces, counts, earlier = [], (0, 0, 0), {}
    if merge and (out / RUNS_FILE).exists():
        earlier = json.loads((out / MANIFEST_FILE).read_text()) if (out / MANIFEST_FILE).exists() else {}
        pieces = earlier.get("pieces") or [{k: earlier.get(k) for k in piece}]
        runs, seg, models, counts = merge_earlier(out, runs, seg, models)
        ids = set(runs.run_id)            # the earlier ones still in the export, once
        missing = list(dict.fromkeys(r for r in earlier.get("runs_without_segments", []) + missing if r in ids))
    manifest = {**piece, "n_runs": len(runs), "n_segment_rows": len(seg),
                "runs_without_segments": missing, "n_models": len(models),
                "models_not_found": models_missing,
                "datasets": sorted(set(df.dataset) | set(earlier.get("datasets", []))),
                "attacks": sorted(set(df.attack) | set(earlier.get("attacks", []))),
                "pieces": pieces + [piece]}
    if merge:
        manifest["merged"] = {"new_runs": len(df), **dict(zip(("earlier_runs_kept", "earlier_runs_exported_again",
                                                               "earlier_runs_replaced"), counts))}
    tmp = {f: out / f".{f}.tmp" for f in (RUNS_FILE, SEGMENTS_FILE, MODELS_FILE, MANIFEST_FILE)}
    runs.to_csv(tmp[RUNS_FILE], index=False)
    seg.to_csv(tmp[SEGMENTS_FILE], index=False, compression={"method": "gzip", "mtime": 0}, float_format="%.6g")
    models.to_csv(tmp[MODELS_FILE], index=False, float_format="%.6g")
    tmp[MANIFEST_FILE].write_text(json.dumps(manifest, indent=2) + "\n")
    for f, t in tmp.items():
        t.replace(out / f)
    return manifest


# ------------------------------------------------------------------------------------------ reading back
def _read_runs(folder: Path) -> pd.DataFrame:
    raw = pd.read_csv(folder / RUNS_FILE, dtype=str, keep_default_na=False)
    for c in raw.columns:
        if c.startswith("metrics."):
            raw[c] = pd.to_numeric(raw[c].replace("", np.nan), errors="coerce")
        elif c.startswith("params."):
            raw[c] = raw[c].where(raw[c] != "", None)       # a parameter the run did not log
    raw["start_time"] = pd.to_datetime(raw.start_time, utc=True, format="ISO8601")
    return raw


def _read_segments(folder: Path) -> pd.DataFrame:
    path = folder / SEGMENTS_FILE
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path, dtype={c: str for c in ID_COLUMNS}, keep_default_na=False,
                       na_values={k: ["", "nan", "NaN"] for k in PER_SEGMENT})


def samples_from_segments(seg: pd.DataFrame) -> dict[str, Samples]:
    """segments.csv rows → ``collect.Samples`` per run, as ``collect.load_samples`` reads them from the npz."""
    out = {}
    if not len(seg):
        return out
    for rid, g in seg.groupby("run_id", sort=False):
        out[rid] = Samples(g.label.to_numpy(int), g.gender.to_numpy(str), g.clean_pred.to_numpy(int),
                           g.adv_pred.to_numpy(int), g.test_index.to_numpy(int), g.speaker.to_numpy(str),
                           g.recording_id.to_numpy(str), g.segment.to_numpy(int), g.augment.to_numpy(str),
                           g.fold.to_numpy(int),
                           {k: g[k].to_numpy(np.float64) for k in MIN_NORM_COLUMNS if k in g and g[k].notna().any()}
                           or None)
    return out


def load_results(folders) -> tuple[Runs, dict[str, Samples]]:
    """One or more export folders → (Runs, samples) as ``collect.collect`` + ``collect.load_samples`` give."""
    folders = [Path(f) for f in folders]
    for f in folders:
        if not (f / RUNS_FILE).exists():
            raise SystemExit(f"error: {f} holds no {RUNS_FILE} (write one with python -m ser_attacks.report.export)")
    raws = [_read_runs(f) for f in folders]
    raw = pd.concat(raws, ignore_index=True).drop_duplicates("run_id").reset_index(drop=True)
    df = tidy(raw)
    if not len(df):
        raise SystemExit(f"error: no runs in {', '.join(map(str, folders))}")
    df, swept, skeys, seeds = annotate(df)
    manifests = [json.loads((f / MANIFEST_FILE).read_text()) if (f / MANIFEST_FILE).exists() else {} for f in folders]
    experiments = sorted({m.get("experiment", "?") for m in manifests})
    filters = {"sweeps": [s for m in manifests for s in m.get("sweeps", [])], "dataset": None, "tags": {}}
    runs = Runs(df, RESULTS_SCHEME + ",".join(map(str, folders)), ",".join(experiments), filters,
                swept=swept, setting_keys=skeys, seed_keys=seeds or SEED_KEYS)
    seg = pd.concat([_read_segments(f) for f in folders], ignore_index=True)
    samples = samples_from_segments(seg[seg.run_id.isin(set(df.run_id))] if len(seg) else seg)
    return runs, samples


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ser_attacks.report.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_filters(p)
    p.add_argument("--out", required=True, help="folder for runs.csv, segments.csv.gz, manifest.json "
                   "(e.g. results/study/emodb); files of an earlier export there are replaced, unless --merge")
    p.add_argument("--merge", action="store_true", help="add to the export already in --out (a study run piece by "
                   "piece): its runs stay unless a new run has the same configuration (tags.config_hash)")
    p.add_argument("--cache", default=None, help="artifact download cache "
                   "(default $SER_ATTACKS_CACHE/report_artifacts)")
    a = p.parse_args(argv)
    filters = cli_run_filters(a)
    if filters is None:
        return 2
    uri, tags = filters
    cmd = "python -m ser_attacks.report.export " + " ".join(argv if argv is not None else sys.argv[1:])
    m = export(Path(a.out), uri, a.experiment, a.sweep, a.dataset, tags,
               Path(a.cache) if a.cache else None, command=cmd, merge=a.merge)
    if a.merge:
        g = m["merged"]
        print(f"Merged: {g['new_runs']} runs exported; of the earlier runs {g['earlier_runs_kept']} kept, "
              f"{g['earlier_runs_exported_again']} exported again, {g['earlier_runs_replaced']} replaced by a new run "
              "of the same configuration")
    extra = f" ({len(m['runs_without_segments'])} runs without adversarial.npz)" if m["runs_without_segments"] else ""
    print(f"Exported {m['n_runs']} runs, {m['n_segment_rows']} segment rows, {m['n_models']} models → "
          f"{a.out}/{RUNS_FILE}, {a.out}/{SEGMENTS_FILE}, {a.out}/{MODELS_FILE}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
