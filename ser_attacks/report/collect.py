"""MLflow → a tidy table of attack runs (one row per run) plus their per-sample arrays.

Runs are read with ``mlflow.search_runs`` only (works against sqlite, a file store or a tracking
server); artifacts are read in place from a local artifact store, else downloaded with
``mlflow.artifacts.download_artifacts`` into a cache folder
keyed by run id (a finished run's artifacts never change).
"""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..identity import FOLD_KEYS, NEUTRAL, SEED_KEYS, is_run_only
from ..metrics import exact_fractions
from ..paths import default_uri, resolve_uri

log = logging.getLogger(__name__)

# Seed, fold and run-only keys: one definition in ser_attacks.identity (seed_keys adds seed-derived keys per report).
# Attack keys that are not attack parameters.
ATTACK_META = ("attack.name", "attack._target_", "attack.verbose")
GROUPS = ("all", "female", "male")
METRICS = ("clean_acc", "adv_acc", "robust_acc", "success_rate", "perturbation", "l0", "l2", "linf", "adv_confidence",
           "n_samples", "perturbation_db", "linf_db", "snr_db", "changed")


def add_run_filters(p) -> None:
    """The run-selection options shared by ``ser_attacks.report`` and ``ser_attacks.report.studies``."""
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--experiment", default="ser-attacks")
    p.add_argument("--sweep", action="append", default=[], metavar="PARENT_RUN_ID",
                   help="only the children of this sweep run (repeatable)")
    p.add_argument("--dataset", default=None, help="only runs with this dataset tag")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs with this tag (repeatable; params.KEY=VALUE filters a param; the same KEY "
                        "again: any of its values, e.g. --tag params.split.fold=0 --tag params.split.fold=1)")


def run_filters(a) -> tuple[str, dict]:
    """(tracking URI, tags) from the options of ``add_run_filters``; ValueError for a malformed --tag."""
    bad = [t for t in a.tag if "=" not in t]
    if bad:
        raise ValueError(f"--tag expects KEY=VALUE, got {bad[0]!r}")
    tags: dict = {}
    for k, v in (t.split("=", 1) for t in a.tag):      # a key given again: any of its values (OR)
        tags[k] = ((*tags[k], v) if isinstance(tags[k], tuple) else (tags[k], v)) if k in tags else v
    return (resolve_uri(a.tracking_uri) if a.tracking_uri else default_uri()), tags


def tag_texts(tags: dict | None) -> list[str]:
    """``KEY=VALUE`` per tag filter (``KEY=a|b`` for a key given several values)."""
    return [f"{k}={'|'.join(v) if isinstance(v, tuple) else v}" for k, v in (tags or {}).items()]


def cli_run_filters(a) -> tuple[str, dict] | None:
    """``run_filters`` for a command line: logging set up; a malformed --tag is printed as an error (None)."""
    import sys
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        return run_filters(a)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def fmt_value(v: str) -> str:
    f = _num(v)
    if isinstance(f, float):
        return f"{f:g}"
    return str(v)


@dataclass
class Runs:
    """Attack runs, one row each: ids, tags, metrics (plain names), ``params`` (dict of strings) and
    derived columns ``setting`` (dataset plus any non-attack config that differs), ``config``
    (the swept attack parameters as text), ``group`` (configuration minus seed)."""
    df: pd.DataFrame
    uri: str
    experiment: str
    filters: dict = field(default_factory=dict)
    swept: dict = field(default_factory=dict)       # attack -> [attack.* keys that vary]
    seed_keys: tuple = SEED_KEYS
    setting_keys: list = field(default_factory=list)  # non-attack keys that vary within a dataset

    def __len__(self) -> int:
        return len(self.df)


def search(uri: str, experiment: str, sweeps=(), dataset: str | None = None, tags: dict | None = None,
           run_type: str = "attack", include_unfinished: bool = False) -> pd.DataFrame:
    """``mlflow.search_runs`` with the report's filters; one row per run (pandas output)."""
    import mlflow
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise SystemExit(f"error: experiment {experiment!r} not found at {uri}")
    def clause(k, v):
        return f"tags.`{k}` = '{v}'" if not k.startswith(("params.", "metrics.", "attributes.")) else f"{k} = '{v}'"

    clauses = [f"tags.run_type = '{run_type}'"]
    if dataset:
        clauses.append(f"tags.dataset = '{dataset}'")
    tags = tags or {}
    clauses += [clause(k, v) for k, v in tags.items() if not isinstance(v, tuple)]
    if not include_unfinished:
        clauses.append("attributes.status = 'FINISHED'")
    multi = {k: v for k, v in tags.items() if isinstance(v, tuple)}     # any of the values: one query each
    choices = [[clause(k, v) for k, v in zip(multi, combo)] for combo in itertools.product(*multi.values())]
    frames = []
    for sweep, extra in itertools.product(list(sweeps) or [None], choices):
        clauses_here = clauses + extra
        flt = " and ".join(clauses_here + ([f"tags.mlflow.parentRunId = '{sweep}'"] if sweep else []))
        frames.append(mlflow.search_runs(experiment_names=[experiment], filter_string=flt,
                                         max_results=50000, output_format="pandas"))
        if sweep:   # a resumed sweep skips configurations FINISHED earlier (parent tags skipped.<run_id>)
            skipped = skipped_runs(experiment, sweep)
            if skipped:
                ids = ", ".join(f"'{r}'" for r in skipped)
                flt = " and ".join(clauses_here + [f"attributes.run_id IN ({ids})"])
                frames.append(mlflow.search_runs(experiment_names=[experiment], filter_string=flt,
                                                 max_results=50000, output_format="pandas"))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).drop_duplicates("run_id").reset_index(drop=True)


def skipped_runs(experiment: str, sweep: str) -> list[str]:
    """Run ids a (resumed) sweep reused instead of rerunning: its parent's ``skipped.<run_id>`` tags."""
    import mlflow
    parent = mlflow.search_runs(experiment_names=[experiment], filter_string=f"attributes.run_id = '{sweep}'",
                                output_format="pandas")
    if not len(parent):
        raise SystemExit(f"error: sweep run {sweep!r} not found in experiment {experiment!r}")
    return [c[len("tags.skipped."):] for c in parent.columns
            if c.startswith("tags.skipped.") and isinstance(parent[c].iloc[0], str)]


# the defense contract's run tags (issue 28), read by the checklist's gradient-masking rules; "" on older runs
DEFENSE_TAGS = ("defense", "defense_stage", "defense_randomized", "defense_differentiable", "attack_eot", "attack_bpda",
                "attack_transfer")


def tidy(raw: pd.DataFrame) -> pd.DataFrame:
    """search_runs output → one row per run with plain metric names, a ``params`` dict and tags."""
    rows = []
    for _, r in raw.iterrows():
        params = {k[len("params."):]: v for k, v in r.items() if k.startswith("params.") and isinstance(v, str)}
        row = {"run_id": r["run_id"], "status": r["status"], "start_time": r["start_time"], "params": params}
        for t in ("dataset", "language", "attack", "model", "sweep_id", "config_hash", "attack_effect",
                  "attack_effect_reason", "clip_box", "model_key", "model_run_id", "mlflow.runName",
                  "mlflow.parentRunId", "unused_params") + DEFENSE_TAGS:
            v = r.get(f"tags.{t}")
            row[t] = v if isinstance(v, str) else ""
        for k, v in r.items():
            if k.startswith("metrics."):
                row[k[len("metrics."):]] = float(v) if v is not None else np.nan
        row = exact_fractions(row)      # shares of segments from their exact counts (MLflow holds 4 decimals)
        row["split"] = params.get("split.mode", "")
        row["seed"] = params.get("seed", "")
        row["fold"] = params.get("split.fold", "") if row["split"] == "speaker_cv" else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    # oldest first: adding runs later never reorders the earlier ones (deterministic pooling / bootstrap)
    out = out.sort_values(["start_time", "run_id"]).reset_index(drop=True)
    # a job rerun with force=true supersedes its earlier FINISHED run: the latest run per config_hash counts
    superseded = (out.config_hash != "") & out.duplicated("config_hash", keep="last")
    if superseded.any():
        log.info("%d run(s) superseded by a later run of the same job (config_hash; force=true) left out: %s",
                 int(superseded.sum()), ", ".join(out.run_id[superseded].str[:8]))
    return out[~superseded].reset_index(drop=True)


def fill_new_keys(params: list[dict]) -> list[dict]:
    """Config schemas grow: a key that older runs lack but that has ONE value in every run that has it
    (e.g. a new ``mode: attack``) is filled in for the older runs, so it neither splits settings nor
    configurations. A key with several values stays missing ("?") where absent. A ``NEUTRAL`` option
    (``identity.NEUTRAL``: ``defense.name``, ``defense.bpda``, ``defense.eot``, ...) is not logged at its
    old-behaviour value, so where it is absent it HAS that value (as logged: ``str``), whatever the other runs
    logged; a defense's own parameters (other ``defense.*`` keys) are never filled in (else the undefended runs of a
    sweep with ONE defense, or its ``eot=1`` runs beside ``eot=8`` ones, would be pooled with the defended runs)."""
    keys = set().union(*[set(p) for p in params]) if params else set()
    fill = {}
    for k in keys:
        if k in NEUTRAL:
            if any(k not in p for p in params):
                fill[k] = str(NEUTRAL[k])           # as Tracking.log_params writes it
            continue
        if k.startswith("defense."):
            continue
        vals = {p[k] for p in params if k in p}
        if len(vals) == 1 and any(k not in p for p in params):
            fill[k] = vals.pop()
    return [{**fill, **p} for p in params] if fill else params


def seed_keys(params: list[dict]) -> tuple[str, ...]:
    """SEED_KEYS plus every key ending in "seed" that equals ``seed`` in every run (seed-derived)."""
    keys = set().union(*[set(p) for p in params]) if params else set()
    derived = sorted(k for k in keys if k.endswith("seed") and k not in SEED_KEYS and not is_run_only(k)
                     and all("seed" in p and p.get(k) == p["seed"] for p in params))
    return SEED_KEYS + tuple(derived)


NOT_AN_AXIS = ("attack.norm",)


def annotate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict, list, tuple]:
    """Add ``setting``, ``config``, ``group``, ``protocol_key`` (and ``x_param``/``x`` for curves)."""
    df = df.copy()
    df["params"] = fill_new_keys(list(df.params))
    keys = set().union(*[set(p) for p in df.params]) if len(df) else set()
    SEEDS = seed_keys(list(df.params))

    def varying(sub: pd.DataFrame, cand) -> list[str]:
        out = []
        for k in sorted(cand):
            vals = {p.get(k) for p in sub.params}
            if len(vals) > 1:
                out.append(k)
        return out

    # Non-attack config that differs between runs of one dataset (split mode, model, normalization...)
    other = [k for k in keys if not k.startswith(("attack.", "dataset.")) and k not in SEEDS
             and k not in FOLD_KEYS and not is_run_only(k)]
    # a split mode's own parameters (split.val_utterances, split.val, split.n_folds ...) follow from split.mode
    # when the modes differ: they name a setting only where they vary among the runs of ONE mode
    mode_params = [k for k in other if k.startswith("split.") and k != "split.mode"]
    modes = [p.get("split.mode") for p in df.params]
    setting_keys = sorted({k for _, sub in df.groupby("dataset") for k in varying(sub, set(other) - set(mode_params))}
                          | {k for _, sub in df.assign(_mode=modes).groupby(["dataset", "_mode"], dropna=False)
                             for k in varying(sub, mode_params)})

    def setting(p: dict, ds: str) -> str:
        extra = [f"{k.rsplit('.', 1)[0] if k.endswith(('.mode', '.name')) else k}={p.get(k, '?')}"
                 for k in setting_keys]
        return ds + (" (" + ", ".join(extra) + ")" if extra else "")
    df["setting"] = [setting(p, d) for p, d in zip(df.params, df.dataset)]

    swept = {}
    for atk, sub in df.groupby("attack"):
        cand = [k for k in keys if k.startswith("attack.") and k not in ATTACK_META and k not in SEEDS]
        swept[atk] = varying(sub, cand)

    def config(p: dict, atk: str) -> str:
        ks = swept.get(atk, [])
        return ", ".join(f"{k[len('attack.'):]}={fmt_value(p.get(k))}" for k in ks) if ks else "default"
    df["config"] = [config(p, a) for p, a in zip(df.params, df.attack)]

    def group(p: dict, drop=()) -> str:
        return repr(sorted((k, v) for k, v in p.items() if k not in SEEDS and k not in FOLD_KEYS and k not in drop
                           and not is_run_only(k)))
    df["group"] = [group(p) for p in df.params]
    # equal across split modes: the split's own keys (paper/recording: val, test; speaker_cv: n_folds) dropped
    df["protocol_key"] = [group(p, tuple(k for k in p if k.startswith("split."))) for p in df.params]
    # repetition = the seeds: the folds of one repetition together form one pass over the speakers
    df["rep"] = [repr([p.get(k) for k in SEEDS]) for p in df.params]
    # x axis of the robustness curve: the first numeric swept parameter (eps, theta, th, max_iter ...); a norm
    # (FMN's 2 / inf) is a category, never an axis
    preferred = ("attack.eps", "attack.theta", "attack.th", "attack.max_iter")
    xs, xparams = [], []
    for p, a in zip(df.params, df.attack):
        ks = [k for k in swept.get(a, []) if k not in NOT_AN_AXIS]
        ks = [k for k in preferred if k in ks] + [k for k in ks if k not in preferred]
        k = next((k for k in ks if isinstance(_num(p.get(k)), float)), None)
        xparams.append(k[len("attack."):] if k else "")
        xs.append(_num(p.get(k)) if k else np.nan)
    df["x_param"], df["x"] = xparams, xs
    return df, swept, setting_keys, SEEDS


def collect(uri: str | None = None, experiment: str = "ser-attacks", sweeps=(), dataset: str | None = None,
            tags: dict | None = None) -> Runs:
    uri = uri or default_uri()
    raw = search(uri, experiment, sweeps, dataset, tags)
    df = tidy(raw)
    if len(df):
        df, swept, skeys, seeds = annotate(df)
    else:
        swept, skeys, seeds = {}, [], SEED_KEYS
    return Runs(df, uri, experiment, {"sweeps": list(sweeps), "dataset": dataset, "tags": tags or {}},
                swept=swept, setting_keys=skeys, seed_keys=seeds)


# ----------------------------------------------------------------------------------- artifacts
def cache_dir() -> Path:
    base = os.environ.get("SER_ATTACKS_CACHE", ".cache")
    return Path(base) / "report_artifacts"


def local_artifact(uri: str, run_id: str, artifact: str) -> Path | None:
    """The artifact's own file where the run's artifact store is a folder on this machine (``file://`` or a plain
    path, as ``tracking.artifact_root`` makes it): read in place, never copied; None for a remote store or a
    missing file."""
    from urllib.parse import unquote, urlparse

    from mlflow.tracking import MlflowClient
    try:
        root = MlflowClient(tracking_uri=uri).get_run(run_id).info.artifact_uri or ""
    except Exception:  # noqa: BLE001 - an unknown run: the caller's download reports it
        return None
    if root.startswith("file:"):
        root = unquote(urlparse(root).path)
    elif "://" in root or ":" in root.split("/")[0]:          # s3://, mlflow-artifacts:, ...
        return None
    path = Path(root) / artifact
    return path if path.is_file() else None


def download(uri: str, run_id: str, artifact: str, cache: Path | None = None) -> Path | None:
    """One artifact of a run: in place where the artifact store is local (``local_artifact``), else downloaded
    once into ``cache/<run_id>/``; None if the run lacks it."""
    if uri.startswith("results:"):        # a report rebuilt from exported files (report/export.py): no artifacts
        return None
    here = local_artifact(uri, run_id, artifact)
    if here is not None:
        return here
    import mlflow.artifacts
    cache = Path(cache or cache_dir()) / run_id
    target = cache / artifact
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    try:
        got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(cache),
                                                  tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - missing artifact: the report shows it as missing
        log.warning("run %s: no artifact %s (%s)", run_id, artifact, exc.__class__.__name__)
        return None
    return Path(got)


@dataclass
class Samples:
    """Per-sample arrays of one attack run (the attacked test segments). Runs logged before the
    speaker-level statistics existed lack ``speaker`` and ``utterance`` (None): their recordings stand in
    for speakers in the intervals, and speaker tests say they are not testable."""
    label: np.ndarray
    gender: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    test_index: np.ndarray
    speaker: np.ndarray | None = None
    recording_id: np.ndarray | None = None
    segment: np.ndarray | None = None
    augment: np.ndarray | None = None
    fold: np.ndarray | None = None
    extra: dict | None = None       # per-segment measures of ser_attacks.min_norm (linf, l2, min_*), where logged

    @property
    def clean_ok(self) -> np.ndarray:
        return (self.clean_pred == self.label).astype(float)

    @property
    def adv_ok(self) -> np.ndarray:
        return (self.adv_pred == self.label).astype(float)

    def table(self) -> pd.DataFrame:
        """One row per attacked segment: ``key`` (the segment's identity across runs), speaker, recording_id,
        gender, label, clean_ok, adv_ok, kept (correct before and after the attack), fold (-1: none; its
        speakers share one model)."""
        n = len(self.label)
        rec = self.recording_id if self.recording_id is not None else np.array([f"test#{i}" for i in self.test_index])
        seg = self.segment if self.segment is not None else np.zeros(n, int)
        if self.augment is not None:
            key = [f"{r}|{s}|{a}" for r, s, a in zip(rec, seg, self.augment)]
        else:                      # older runs: the test index tells augmented copies of one recording apart
            key = [f"{r}|{s}|test#{t}" for r, s, t in zip(rec, seg, self.test_index)]
        known = self.speaker is not None
        return pd.DataFrame({"key": key, "speaker": self.speaker if known else rec, "speaker_known": known,
                             "recording_id": rec, "gender": self.gender, "label": self.label,
                             "clean_ok": self.clean_ok, "adv_ok": self.adv_ok,
                             "kept": self.clean_ok * self.adv_ok,
                             "fold": self.fold if self.fold is not None else np.full(n, -1)})


POOLED = ("clean_ok", "adv_ok", "kept")          # the measures pool averages (per seed slot too)


def pool(items: list[Samples], models=None) -> pd.DataFrame:
    """The segments of several runs, one row per distinct segment: runs on the same segment (seeds, repeated
    runs) are AVERAGED (clean_ok, adv_ok, kept become the share of runs that got it right), never counted
    twice, so repeating a run changes no point estimate, no interval and no p-value. Folds hold different
    segments: they are simply joined. ``n_runs`` = runs that attacked the segment.

    ``models``: per item, the trained model it attacked (its training seed: ``model_labels``). Then a segment's
    value is the mean over its models of each model's mean (repeated runs of one model averaged first), and
    where a fold was attacked through several models the per-seed values are kept beside it, ``clean_ok@j``,
    ``adv_ok@j``, ``kept@j`` (j: the model's rank within its fold; NaN where it did not attack the segment), and
    ``n_models``: the bootstrap draws each fold's seeds from them (``stats.seed_matrix``, ``stats.boot_draws``).
    With one model per fold, or ``models`` None, the table is exactly the seed-free one."""
    if not items:
        return pd.DataFrame(columns=["key", "speaker", "speaker_known", "recording_id", "gender", "label", "fold",
                                     "clean_ok", "adv_ok", "kept", "n_runs"])
    tables = [s.table() for s in items]
    if models is not None:
        tables = [t.assign(model=str(m)) for t, m in zip(tables, models)]
    t = pd.concat(tables, ignore_index=True)
    first = dict(speaker=("speaker", "first"), speaker_known=("speaker_known", "all"),
                 recording_id=("recording_id", "first"), gender=("gender", "first"), label=("label", "first"),
                 fold=("fold", "first"))
    if models is None or t.groupby("fold").model.nunique().max() <= 1:
        agg = t.groupby("key", sort=True).agg(**first, **{c: (c, "mean") for c in POOLED},
                                               n_runs=("clean_ok", "size"))
        return agg.reset_index()
    by_model = t.groupby(["key", "model"], sort=True).agg(**first, **{c: (c, "mean") for c in POOLED},
                                                          n_runs=("clean_ok", "size")).reset_index()
    agg = by_model.groupby("key", sort=True).agg(**first, **{c: (c, "mean") for c in POOLED},
                                                 n_runs=("n_runs", "sum"), n_models=("model", "size"))
    # each fold's models ranked (sorted labels): slot j of a fold is one trained model, the same in every
    # configuration attacked through it (paired comparisons pair it)
    ranks = by_model.groupby("fold").model.transform(lambda m: m.map({v: i for i, v in enumerate(sorted(set(m)))}))
    wide = by_model.assign(slot=ranks.to_numpy()).pivot(index="key", columns="slot", values=list(POOLED))
    for c in POOLED:
        for j in sorted(wide[c].columns):
            agg[f"{c}@{int(j)}"] = wide[c][j].reindex(agg.index).to_numpy(float)
    return agg.reset_index()


def model_labels(runs: pd.DataFrame) -> list[str]:
    """Per run, the trained model it attacked, as far as a configuration's runs of one fold tell them apart: its
    training seed and split seed (``seed``, ``split.seed``; every other key that shapes the model is equal within
    a configuration). Runs of one model (attack seeds, reruns) share it; the label is the same whether the runs
    come from MLflow or from an export's runs.csv (so are the seed slots, and the report's numbers)."""
    out = []
    for r in runs.itertuples():
        p = getattr(r, "params", {}) or {}
        out.append(f"seed={p.get('seed', getattr(r, 'seed', ''))}|split.seed={p.get('split.seed', '')}")
    return out


def load_samples(uri: str, run_ids, cache: Path | None = None) -> dict[str, Samples]:
    out = {}
    for rid in run_ids:
        path = download(uri, rid, "adversarial.npz", cache)
        if path is None:
            continue
        with np.load(path, allow_pickle=False) as z:     # x_adv is not read (lazy npz)
            opt = {k: (z[k].astype(str) if k in ("speaker", "recording_id", "augment") else z[k]) if k in z.files
                   else None for k in ("speaker", "recording_id", "segment", "augment", "fold")}
            from ..min_norm import COLUMNS
            extra = {k: z[k].astype(np.float64) for k in COLUMNS if k in z.files} or None
            out[rid] = Samples(z["label"].astype(int), z["gender"].astype(str), z["clean_pred"].astype(int),
                               z["adv_pred"].astype(int), z["test_index"].astype(int), opt["speaker"],
                               opt["recording_id"], opt["segment"], opt["augment"], opt["fold"], extra)
    return out
