"""``python -m ser_attacks.report.defenses``: the defenses recipe's table, figure and verdicts (issue 28,
recipes/defenses) from the attack runs of one experiment (``experiment=defenses``).

    python -m ser_attacks.report.defenses --experiment defenses --dataset emodb --out recipes/defenses/emodb

Reads the FINISHED attack runs (tag ``defense``; runs without it are undefended), their ``adversarial.npz``
(per-segment predictions, FMN's minimal perturbations, smoothing's certified radii) and the training runs of their
models (tag ``model_run_id``: ``train_seconds``). One *defense* is a defense node as attacked: its name plus the
attacker's options and parameters that differ between its runs (``smoothing (EOT 8)``, ``quantize (bits=3)``).
Per defense and speaker group (all / female / male):

* clean accuracy through the defense as deployed (every run's segments pooled, repeated runs averaged:
  ``collect.pool``);
* robust accuracy of every attack at each of its budgets (``attack.eps`` in σ, the runs' mean SNR in dB beside it);
  any attack the runs hold, transfer runs (tag ``attack_transfer=true``) marked; minimum-norm attacks (FMN) at
  the budgets of the grid from their per-segment minimal perturbations (still correct where it exceeds ε);
* certified accuracy of randomized smoothing at the radii its runs logged (``certified_acc_r<r>``), from the
  per-segment certificates (certified with the correct class and radius ≥ r);
* the robustness checklist's gradient-masking flags (``report/checklist.py``, rules (a)-(d)) per defense;
* training time (the model's training run, × the undefended model's) and attack time (the defense's runs).

Intervals: the report's cluster bootstrap over speakers (``stats.hier_ci``); where a group has fewer than
``stats.MIN_SPEAKERS`` speakers (one EmoDB fold: 2 test speakers, 1 per gender) no interval is printed (the point,
marked ``†``: a bootstrap over two speakers says nothing about other speakers). Gains over the undefended model are
paired on the segments both attacked (``stats.hier_ci`` of the per-segment difference).

Writes into ``--out``: ``defenses.md`` (the table, the verdicts, the figure), ``defenses.csv`` (the table as shown),
``defenses_long.csv`` (every number: defense × group × measure × attack × budget, with intervals and the gain over
the undefended model), ``robustness_curves.png``.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import collect, stats
from .aggregate import GROUPS, SFX, configs, subset
from .checklist import MASKING, NOISE, attack_params, checklist
from .format import FEW, attack_sort_key
from .render import md_table

log = logging.getLogger(__name__)

UNDEFENDED = "none"
FEWER = "‡"                 # a leaderboard value from fewer attacks than the undefended model's: an upper bound
LEADERBOARD_EPS = 0.05    # σ: the leaderboard's threat model, below the undefended model's saturation (EmoDB: ≈ 21 dB)
MIN_NORM_COLUMNS = {"linf": "min_linf", "l2": "min_l2"}
CERTIFIED = re.compile(r"^certified_acc_r([0-9.]+(?:e-?\d+)?)$")
RULES = {"(a)": "not monotone in ε", "(b)": "black-box / transfer beats white-box", "(c)": "noise beats the attack",
         "(d)": "EOT / BPDA needed but absent"}
NOT_INFORMATIVE = (f"{FEW} fewer than {stats.MIN_SPEAKERS} speakers in that group: no interval (a bootstrap over so "
                   "few speakers says nothing about other speakers)")


# ------------------------------------------------------------------------------------------------ defenses
def _true(v) -> bool:
    return str(v).lower() in ("true", "1")


def defense_labels(df: pd.DataFrame) -> pd.Series:
    """One label per run: the ``defense`` tag (``none`` where absent), the attacker's EOT (k > 1) and BPDA
    (when off), and the ``defense.*`` parameters that differ between runs of that defense."""
    name = df.get("defense", pd.Series("", index=df.index)).replace("", UNDEFENDED).fillna(UNDEFENDED)
    out = []
    for i, r in df.iterrows():
        n = name[i]
        same = df[name == n]
        extra = []
        eot = str(r.get("attack_eot", "") or "")
        if eot not in ("", "1"):
            extra.append(f"EOT {eot}")
        if str(r.get("attack_bpda", "")).lower() == "false" and str(r.get("defense_differentiable", "")).lower() \
                == "false":
            extra.append("no BPDA")
        keys = sorted({k for p in same.params for k in p if k.startswith("defense.")} - {"defense.name", "defense.eot",
                                                                                         "defense.bpda"})
        for k in keys:
            if len({p.get(k) for p in same.params}) > 1:
                extra.append(f"{k[len('defense.'):]}={collect.fmt_value(r.params.get(k, '?'))}")
        out.append(n + (f" ({', '.join(extra)})" if extra else ""))
    return pd.Series(out, index=df.index)


def _order(labels) -> list[str]:
    """Undefended first, then by name."""
    return sorted(set(labels), key=lambda s: (s.split(" (")[0] != UNDEFENDED, s))


def display(label: str) -> str:
    return "undefended" if label == UNDEFENDED else label


# ------------------------------------------------------------------------------------------------ cells
@dataclass
class Cell:
    """One number of the table: a share (accuracy), its interval (NaN where not informative) and the data behind
    it; ``snr_db``: the runs' mean SNR of the perturbation (attacks)."""
    value: float
    lo: float = np.nan
    hi: float = np.nan
    n_speakers: int = 0
    n_segments: int = 0
    snr_db: float = np.nan
    ref: float = np.nan        # a gain's other side (the undefended model) on the same, paired segments

    @property
    def informative(self) -> bool:
        return self.n_speakers >= stats.MIN_SPEAKERS

    def text(self, snr: bool = False) -> str:
        if self.value != self.value:
            return "—"
        s = f"{self.value:.3f}"
        if not self.informative:
            s += f" {FEW}"
        elif self.lo == self.lo:
            s += f" [≤ {self.hi:.2f}]" if self.value == self.lo == 0 else \
                f" [≥ {self.lo:.2f}]" if self.value == self.hi == 1 else f" [{self.lo:.2f}, {self.hi:.2f}]"
        if snr and self.snr_db == self.snr_db:
            s += f", {self.snr_db:.1f} dB"
        return s


def share(t: pd.DataFrame | None, col: str, g: str = "all", snr: float = np.nan) -> Cell:
    """``col``'s mean over group ``g``'s pooled segments with its speaker-bootstrap interval (``stats.hier_ci``);
    no interval under ``stats.MIN_SPEAKERS`` speakers."""
    if t is None or not len(t):
        return Cell(np.nan)
    tg = subset(t, g)
    if not len(tg):
        return Cell(np.nan)
    n_spk = int(tg.speaker.nunique())
    est, lo, hi = stats.table_ci(tg, col)
    if n_spk < stats.MIN_SPEAKERS:
        lo = hi = np.nan
    return Cell(est, lo, hi, n_spk, len(tg), snr)


def gain(a: pd.DataFrame | None, b: pd.DataFrame | None, col: str, g: str = "all") -> Cell:
    """mean ``col`` of a − of b on the segments both hold (paired on the segment key), with its speaker-bootstrap
    interval; no interval under ``stats.MIN_SPEAKERS`` speakers."""
    if a is None or b is None:
        return Cell(np.nan)
    m = subset(a, g).merge(stats.partner(b, col), on="key")
    if not len(m):
        return Cell(np.nan)
    n_spk = int(m.speaker.nunique())
    est, lo, hi = stats.paired_ci(m, col)
    if n_spk < stats.MIN_SPEAKERS:
        lo = hi = np.nan
    return Cell(est, lo, hi, n_spk, len(m), ref=float(m[col + "_b"].mean()))


def _signed(c: Cell) -> str:
    if c.value != c.value:
        return "—"
    s = f"{c.value:+.3f}"
    if not c.informative:
        return s + f" {FEW}"
    return s + (f" [{c.lo:+.2f}, {c.hi:+.2f}]" if c.lo == c.lo else "")


def pool_columns(tables: list[pd.DataFrame], cols: list[str]) -> pd.DataFrame | None:
    """``collect.pool`` for extra per-segment columns: one row per segment key, repeated runs averaged."""
    if not tables:
        return None
    t = pd.concat(tables, ignore_index=True)
    first = {c: (c, "first") for c in ("speaker", "speaker_known", "recording_id", "gender", "label", "fold")}
    return t.groupby("key", sort=True).agg(**first, **{c: (c, "mean") for c in cols}).reset_index()


# ------------------------------------------------------------------------------------------------ collect
@dataclass
class Data:
    runs: collect.Runs
    cf: pd.DataFrame                      # configurations (aggregate.configs) with ``defense_label``, ``budget``
    pooled: dict                          # config_id -> pooled segments
    samples: dict                         # run_id -> collect.Samples
    minimal: dict                         # config_id -> per-segment table with column ``r`` (minimal perturbation)
    certified: dict                       # defense label -> (radii, per-segment table with ``radius``, ``cert_ok``)
    train: pd.DataFrame                   # one row per (defense label, model run): train_seconds
    cache: Path | None = None


def _budget(r) -> float:
    """The attack's L∞ budget in σ (``attack.eps``); NaN where the budget is an SNR (``attack.snr_db``, the waveform
    attacks: then eps is the config's unused default, and the SNR stays in the attack's label)."""
    params = attack_params(r.params)
    if isinstance(collect._num(params.get("snr_db")), float):
        return np.nan
    e = collect._num(params.get("eps"))
    return float(e) if isinstance(e, float) else np.nan


def on_sigma_grid(r) -> bool:
    """Whether a minimum-norm attack's per-segment minimal perturbations are in the grid's units (σ of the
    spectrogram) and so give its accuracy at every budget of the grid. On the waveform (``input.name=waveform``) they
    are in audio amplitude: such an attack (Boundary, the black-box check) is one column without a budget, its
    robust accuracy after the run with the mean SNR of the changes it found."""
    return str(r.params.get("input.name", "spectrogram")) != "waveform"


def snr_of(r, g: str = "all") -> float:
    """The configuration's mean SNR (dB) in group ``g``: of the audio change on the waveform (``audio_snr_db``, what a
    listener hears and what ``attack.snr_db`` bounds), else of the change of the model's input (``snr_db``)."""
    a = r.get(f"audio_snr_db{SFX[g]}", np.nan)
    if not on_sigma_grid(r) and a == a:
        return float(a)
    return r.get(f"snr_db{SFX[g]}", np.nan)


def _rest(r) -> str:
    """The configuration's swept parameters other than the budget (eps and the step tied to it)."""
    parts = [p for p in str(r.config).split(", ") if p and p != "default"
             and not p.startswith(("eps=", "eps_step=", TRANSFER_KEY[len("attack."):] + "="))]
    return ", ".join(parts)


def attack_label(r) -> str:
    """The attack's name as the table shows it: transfer runs marked, other swept parameters in brackets."""
    a = str(r.attack)
    if _true(r.get("attack_transfer", "")) and "transfer" not in a:
        a += " (transfer)"
    rest = _rest(r)
    snr = collect._num(attack_params(r.params).get("snr_db"))
    if isinstance(snr, float) and "snr_db=" not in rest:      # an SNR budget is the column's budget: always named
        rest = ", ".join([p for p in (rest, f"snr_db={snr:g}") if p])
    return a + (f" [{rest}]" if rest else "")


TRANSFER_KEY = "attack.attack_transfer"


def mark_transfer(df: pd.DataFrame) -> pd.DataFrame:
    """Give every run the param ``attack.attack_transfer`` (true / false, from the tag) before ``collect.annotate``:
    a transfer run and a white-box run of the same attack parameters are two configurations, never pooled."""
    df = df.copy()
    flag = df.get("attack_transfer", pd.Series("", index=df.index)).map(_true)
    df["params"] = [{**p, TRANSFER_KEY: str(bool(f)).lower()} for p, f in zip(df.params, flag)]
    return df


def runs_of(raw: pd.DataFrame, uri: str, experiment: str, filters: dict | None = None,
            pool_over=()) -> collect.Runs:
    """``collect.collect`` from ``search_runs`` output, transfer runs marked (``mark_transfer``); the config keys
    ``pool_over`` (``--pool-over``) dropped, so runs that differ only in them are pooled."""
    df = collect.tidy(raw)
    if not len(df):
        return collect.Runs(df, uri, experiment, filters or {})
    if pool_over:
        df["params"] = [{k: v for k, v in p.items() if k not in pool_over} for p in df.params]
    df, swept, skeys, seeds = collect.annotate(mark_transfer(df))
    df["defense_label"] = defense_labels(df)
    return collect.Runs(df, uri, experiment, filters or {}, swept=swept, setting_keys=skeys, seed_keys=seeds)


def check_one_setting(runs: collect.Runs) -> None:
    """The table compares defenses on ONE corpus and protocol: runs that also differ in anything but the defense
    node (another corpus, split mode, model) stop here with one line saying how to pick."""
    other = [k for k in runs.setting_keys if not k.startswith("defense.")]
    datasets = sorted(set(runs.df.dataset))
    if len(datasets) > 1 or other:
        raise SystemExit("error: the runs differ in " + ", ".join((["dataset: " + ", ".join(datasets)]
                                                                  if len(datasets) > 1 else []) + other)
                         + " besides the defense; pick one setting (--dataset D, --tag params.KEY=VALUE, --sweep ID), "
                         "or pool over a key that does not change the comparison (--pool-over KEY)")


def load(uri: str, experiment: str, sweeps=(), dataset: str | None = None, tags: dict | None = None,
         cache: Path | None = None, pool_over=()) -> Data:
    runs = runs_of(collect.search(uri, experiment, sweeps, dataset, tags), uri, experiment,
                   {"sweeps": list(sweeps), "dataset": dataset, "tags": tags or {}, "pool_over": list(pool_over)},
                   pool_over)
    if not len(runs):
        raise SystemExit(f"error: no FINISHED attack runs in experiment {experiment!r} at {uri}"
                         + (f" for dataset {dataset!r}" if dataset else ""))
    check_one_setting(runs)
    samples = collect.load_samples(runs.uri, runs.df.run_id, cache)
    return build(runs, samples, _certificates(runs, cache), _training(runs))


def build(runs: collect.Runs, samples: dict, certificates: dict[str, pd.DataFrame] | None = None,
          train: pd.DataFrame | None = None) -> Data:
    """``Data`` from collected runs (``defense_label`` set) and their samples; ``certificates``: run_id ->
    per-segment ``certified_pred``, ``certified_radius`` (aligned with the run's samples)."""
    from ..min_norm import norm_of
    check_one_setting(runs)
    df = runs.df
    if "defense_label" not in df:
        df["defense_label"] = defense_labels(df)
    cf, pooled = configs(runs, samples)
    label_of = dict(zip(df.run_id, df.defense_label))
    cf["defense_label"] = [label_of[ids.split(",")[0]] for ids in cf.run_ids]
    cf["budget"] = [_budget(r) for _, r in cf.iterrows()]
    cf["attack_label"] = [attack_label(r) for _, r in cf.iterrows()]
    for g in GROUPS:                          # the waveform runs' SNR of the audio change (``snr_db``: of the log-Mel)
        col = f"audio_snr_db{SFX[g]}"
        if col in df:
            cf[col] = [df.loc[df.run_id.isin(ids.split(",")), col].astype(float).mean() for ids in cf.run_ids]
    minimal = {}
    for _, r in cf.iterrows():
        kind = norm_of(r.attack, r.params.get("attack.norm"))
        if kind is None or not on_sigma_grid(r):
            continue
        parts = []
        for rid in r.run_ids.split(","):
            s = samples.get(rid)
            if s is not None and s.extra and MIN_NORM_COLUMNS[kind] in s.extra:
                parts.append(s.table().assign(r=s.extra[MIN_NORM_COLUMNS[kind]],
                                              clean_pred=s.clean_pred))
        if parts:
            minimal[r.config_id] = (kind, pd.concat(parts, ignore_index=True))
    certified = {}
    for label, sub in cf.groupby("defense_label"):
        radii = sorted({float(m.group(1)) for c in runs.df.columns if (m := CERTIFIED.match(c))
                        for rid in ",".join(sub.run_ids).split(",")
                        if np.isfinite(runs.df.loc[runs.df.run_id == rid, c]).any()})
        parts = []
        for rid in ",".join(sub.run_ids).split(","):
            c, s = (certificates or {}).get(rid), samples.get(rid)
            if c is not None and s is not None:
                parts.append(s.table().assign(cert_pred=c["certified_pred"], radius=c["certified_radius"]))
        if radii and parts:
            certified[label] = (radii, pd.concat(parts, ignore_index=True))
    return Data(runs, cf, pooled, samples, minimal, certified,
                train if train is not None else pd.DataFrame(columns=["defense_label", "model_run_id",
                                                                      "train_seconds"]))


def _certificates(runs: collect.Runs, cache: Path | None) -> dict[str, dict]:
    """run_id -> smoothing's per-segment certificates (``certified_pred``, ``certified_radius``), read from the
    runs' ``adversarial.npz`` (already downloaded by ``collect.load_samples``)."""
    out = {}
    cols = [c for c in runs.df.columns if CERTIFIED.match(c)]
    if not cols:
        return out
    for _, r in runs.df.iterrows():
        if not np.isfinite(r[cols].to_numpy(float)).any():
            continue
        path = collect.download(runs.uri, r.run_id, "adversarial.npz", cache)
        if path is None:
            continue
        with np.load(path, allow_pickle=False) as z:
            if "certified_pred" in z.files and "certified_radius" in z.files:
                out[r.run_id] = {"certified_pred": z["certified_pred"].astype(int),
                                 "certified_radius": z["certified_radius"].astype(np.float64)}
    return out


def _training(runs: collect.Runs) -> pd.DataFrame:
    """Per defense and model: the training run's ``train_seconds`` (tag ``model_run_id`` of the attack runs)."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(runs.uri)
    rows = []
    for (label, rid), _ in runs.df.groupby(["defense_label", "model_run_id"]):
        sec = np.nan
        if rid:
            try:
                sec = float(client.get_run(rid).data.metrics.get("train_seconds", np.nan))
            except Exception:  # noqa: BLE001 - a training run of another store: no time
                log.warning("training run %s not found at %s", rid, runs.uri)
        rows.append({"defense_label": label, "model_run_id": rid, "train_seconds": sec})
    return pd.DataFrame(rows, columns=["defense_label", "model_run_id", "train_seconds"])


# ------------------------------------------------------------------------------------------------ numbers
def grid(cf: pd.DataFrame) -> list[float]:
    """The budgets of the grid: every eps an attack was run at (σ)."""
    return sorted({float(b) for b in cf.budget if b == b and b > 0})


def clean_table(data: Data, label: str) -> pd.DataFrame | None:
    """The defense's clean predictions: the segments of all its runs, repeated runs averaged."""
    ids = ",".join(data.cf[data.cf.defense_label == label].run_ids).split(",")
    have = [data.samples[r] for r in ids if r in data.samples]
    return collect.pool(have) if have else None


def attack_tables(data: Data, label: str) -> dict[tuple[str, float], tuple[pd.DataFrame, pd.Series]]:
    """(attack label, budget) -> (pooled segments with ``kept`` (right before and after the attack: robust accuracy),
    the configuration row; budget None: none in σ)."""
    out = {}
    sub = data.cf[data.cf.defense_label == label]
    for _, r in sub.iterrows():
        if r.config_id in data.minimal:                   # a minimum-norm attack: at every budget of the grid
            kind, seg = data.minimal[r.config_id]
            for e in grid(data.cf):
                t = pool_columns([seg.assign(kept=seg.clean_ok * (seg.r > e))], ["clean_ok", "kept"])
                out[(r.attack_label + (" L2" if kind == "l2" else ""), e)] = (t, r)
            continue
        t = data.pooled.get(r.config_id)
        if t is not None:       # no σ budget (an SNR budget): key None, since NaN keys never match each other
            out[(r.attack_label, r.budget if r.budget == r.budget else None)] = (t, r)
    return out


def long_table(data: Data) -> pd.DataFrame:
    """Every number: defense × group × measure (clean / attack / certified) × attack × budget, with its interval,
    speakers, segments, the runs' mean SNR (attacks) and the paired gain over the undefended model."""
    labels = _order(data.cf.defense_label)
    base = UNDEFENDED if UNDEFENDED in labels else None
    base_clean = clean_table(data, base) if base else None
    base_att = attack_tables(data, base) if base else {}
    rows = []
    for label in labels:
        clean = clean_table(data, label)
        att = attack_tables(data, label)
        for g in GROUPS:
            c = share(clean, "clean_ok", g)
            d = gain(clean, base_clean, "clean_ok", g) if label != base else Cell(np.nan)
            rows.append(_long_row(label, g, "clean", "", np.nan, c, d))
            for (a, e), (t, r) in att.items():
                snr = np.nan if e is not None and r.config_id in data.minimal else snr_of(r, g)
                c = share(t, "kept", g, snr)
                ref = base_att.get((a, e)) if label != base else None
                d = gain(t, ref[0], "kept", g) if ref is not None else Cell(np.nan)
                rows.append(_long_row(label, g, "attack", a, np.nan if e is None else e, c, d, r))
            if label in data.certified:
                radii, seg = data.certified[label]
                for rad in radii:
                    ok = ((seg.cert_pred == seg.label) & (seg.radius >= rad)).astype(float)
                    t = pool_columns([seg.assign(cert_ok=ok)], ["cert_ok"])
                    rows.append(_long_row(label, g, "certified", "certified (L2 radius)", rad,
                                          share(t, "cert_ok", g), Cell(np.nan)))
    return pd.DataFrame(rows)


def _long_row(label, g, measure, attack, budget, c: Cell, d: Cell, r=None) -> dict:
    return {"defense": label, "group": g, "measure": measure, "attack": attack, "budget_sigma": budget,
            "snr_db": c.snr_db, "acc": c.value, "acc_lo": c.lo, "acc_hi": c.hi, "n_speakers": c.n_speakers,
            "n_segments": c.n_segments, "interval": "95% speaker bootstrap" if c.informative else
            f"not informative (< {stats.MIN_SPEAKERS} speakers)", "gain_vs_undefended": d.value, "gain_lo": d.lo,
            "gain_hi": d.hi, "undefended_paired": d.ref,
            "attack_time_s": float(r.attack_time_s) if r is not None and "attack_time_s" in r else np.nan,
            "config_id": r.config_id if r is not None else ""}


def masking_flags(data: Data) -> pd.DataFrame:
    """The checklist's gradient-masking rows (rules (a)-(d)) with their defense label."""
    cl = checklist(data.cf, data.pooled)
    cl = cl[cl.check == MASKING].copy()
    of = dict(zip(data.cf.setting, data.cf.defense_label))
    cl["defense"] = cl.setting.map(of)
    cl["rule"] = cl.result.str.extract(r"^(\([a-d]\))", expand=False).fillna("")
    marker = r"(, )?" + TRANSFER_KEY[len("attack."):] + r"=(true|false)(, )?"      # mark_transfer's param: not shown
    for c in ("config", "result"):
        cl[c] = cl[c].str.replace(marker, lambda m: ", " if m.group(1) and m.group(3) else "", regex=True)
    cl["config"] = cl.config.replace("", "default")
    return cl.reset_index(drop=True)


def times(data: Data) -> pd.DataFrame:
    """Per defense: mean training time of its models (and × the undefended model's), attack time of its runs
    (summed; smoothing's certification apart)."""
    rows = []
    tr = data.train.groupby("defense_label").train_seconds.mean() if len(data.train) else pd.Series(dtype=float)
    base = tr.get(UNDEFENDED, np.nan)
    df = data.runs.df
    for label in _order(data.cf.defense_label):
        sub = df[df.defense_label == label] if "defense_label" in df else df.iloc[:0]
        cert = float(sub.certify_time_s.sum()) if "certify_time_s" in sub and sub.certify_time_s.notna().any() \
            else np.nan
        t = tr.get(label, np.nan)
        mine = set(data.train.model_run_id[data.train.defense_label == label])
        rows.append({"defense": label, "models": len(mine), "same_models_as_undefended": bool(mine) and mine == set(
                         data.train.model_run_id[data.train.defense_label == UNDEFENDED]) and label != UNDEFENDED,
                     "train_seconds": t, "train_x_undefended": t / base if base == base and base > 0 else np.nan,
                     "attack_seconds": float(sub.attack_time_s.sum()) if "attack_time_s" in sub else np.nan,
                     "attack_runs": len(sub), "certify_seconds": cert})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ display
def _col(a: str, e: float) -> str:
    return f"{a} {e:g} σ" if e == e else a


def _order_cols(keys) -> list:
    return sorted(keys, key=lambda k: (k[0] != "clean", k[0] != "attack", k[1] == NOISE,
                                       attack_sort_key(k[1].split(" ")[0]),
                                       k[1], k[2] if k[2] == k[2] else -1))


def wide_table(long: pd.DataFrame, flags: pd.DataFrame, tm: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: one row per defense and group; clean, each attack at each budget (with its SNR),
    certified accuracy at each radius, then (row "all") the gradient-masking flags and the times."""
    keys = _order_cols({(m, a, b) for m, a, b in zip(long.measure, long.attack, long.budget_sigma)})
    rows = []
    for label in _order(long.defense):
        for g in GROUPS:
            sub = long[(long.defense == label) & (long.group == g)]
            row = {"defense": display(label), "group": g}
            for m, a, b in keys:
                hit = sub[(sub.measure == m) & (sub.attack == a) & ((sub.budget_sigma == b) |
                                                                     (sub.budget_sigma.isna() & (b != b)))]
                name = "clean" if m == "clean" else f"certified r={b:g} σ" if m == "certified" else _col(a, b)
                if not len(hit):
                    row[name] = "—"
                    continue
                h = hit.iloc[0]
                row[name] = Cell(h.acc, h.acc_lo, h.acc_hi, h.n_speakers, h.n_segments, h.snr_db).text(snr=True)
            fl = flags[flags.defense == label]
            bad = fl[fl.verdict == "FLAG"]
            row["gradient masking"] = "" if g != "all" else (
                "; ".join(f"{r.rule} {r.attack} {r.config}" for r in bad.itertuples()) if len(bad) else
                f"none raised ({len(fl)} checked)" if len(fl) else "nothing to check")
            t = tm[tm.defense == label].iloc[0]
            row["training s (× undefended)"] = "" if g != "all" else (
                "—" if t.train_seconds != t.train_seconds else f"{t.train_seconds:.0f}"
                + (f" ({t.train_x_undefended:.2f}x)" if t.train_x_undefended == t.train_x_undefended else "")
                + (": the undefended model" if t.same_models_as_undefended else ""))
            row["attack s"] = "" if g != "all" else (
                f"{t.attack_seconds:.0f} ({t.attack_runs} run{'s' if t.attack_runs != 1 else ''})"
                + (f" + {t.certify_seconds:.0f} certification" if t.certify_seconds == t.certify_seconds else ""))
            rows.append(row)
    return pd.DataFrame(rows)


def verdicts(long: pd.DataFrame, flags: pd.DataFrame) -> list[str]:
    """Lines a reader can check against the table: per defense, the gain over the undefended model at each budget
    (all speakers) with the clean-accuracy cost, certified accuracy, and the checklist's flags in words."""
    out = []
    a = long[long.group == "all"]
    base = a[a.defense == UNDEFENDED]
    for label in _order(long.defense):
        if label == UNDEFENDED:
            continue
        sub = a[a.defense == label]
        clean = sub[sub.measure == "clean"].iloc[0]
        bclean = base[base.measure == "clean"]
        cost = (f"clean {_paired_ref(clean, bclean.acc.iloc[0]):.3f} → {clean.acc:.3f} ({_signed(_cell_gain(clean))})"
                if len(bclean) else f"clean {clean.acc:.3f} (no undefended run)")
        out.append(f"- **{label}**: {cost}.")
        for r in sub[sub.measure == "attack"].itertuples():
            ref = base[(base.measure == "attack") & (base.attack == r.attack) &
                       ((base.budget_sigma == r.budget_sigma) | (base.budget_sigma.isna() & (r.budget_sigma !=
                                                                                           r.budget_sigma)))]
            where = _col(r.attack, r.budget_sigma) + (f" ({r.snr_db:.1f} dB)" if r.snr_db == r.snr_db else "")
            if not len(ref):
                out.append(f"  - {where}: {r.acc:.3f}; no undefended run to compare")
                continue
            d = _cell_gain(r)
            word = ("robust accuracy gained" if d.informative and d.lo > 0 else
                    "robust accuracy lost" if d.informative and d.hi < 0 else
                    "no gain beyond its interval" if d.informative else
                    f"gain (no interval: {d.n_speakers} speakers)")
            out.append(f"  - {where}: {_paired_ref(r, ref.acc.iloc[0]):.3f} undefended → {r.acc:.3f}, {word} "
                       f"{_signed(d)}")
        for r in sub[sub.measure == "certified"].itertuples():
            out.append(f"  - certified accuracy at L2 radius {r.budget_sigma:g} σ: "
                       + Cell(r.acc, r.acc_lo, r.acc_hi, r.n_speakers, r.n_segments).text())
        fl = flags[flags.defense == label]
        out += _rises(sub, fl)
        for r in fl[fl.verdict == "FLAG"].itertuples():
            out.append("  - " + _flag_words(r, sub))
        if not len(fl[fl.verdict == "FLAG"]):
            out.append(f"  - gradient masking: no flag raised ({len(fl)} check(s): "
                       + ", ".join(sorted(set(fl.rule) - {""})) + ")" if len(fl) else
                       "  - gradient masking: nothing to check (no rule applies to these runs)")
    return out


def worst_case(data: Data, label: str, eps: float, only=None, tables: dict | None = None
               ) -> tuple[pd.DataFrame | None, list[str]]:
    """Per segment, robust against EVERY attack run against the defense at an L∞ budget ≤ ``eps`` (σ): white-box
    through the defense, black-box, transfer, FMN at ``eps`` from its minimal perturbations; never noise. ``kept`` is
    the minimum of the attacks' ``kept`` on that segment (each attack counted on the segments it attacked: Square
    ran on a subsample); with the columns (attack and budget) that went in. ``only``: those columns at most;
    ``tables``: the defense's ``attack_tables`` when the caller has them."""
    tabs, names = [], []
    for (a, e), (t, r) in (tables if tables is not None else attack_tables(data, label)).items():
        if e is None or e > eps * (1 + 1e-9) or r.attack == NOISE or (only is not None and _col(a, e) not in only):
            continue
        tabs.append(t)
        names.append(_col(a, e))
    if not tabs:
        return None, []
    t = pd.concat(tabs, ignore_index=True)
    first = {c: (c, "first") for c in ("speaker", "speaker_known", "recording_id", "gender", "label", "fold",
                                       "clean_ok") if c in t}
    worst = {c: (c, "min") for c in t.columns if c == "kept" or c.startswith("kept@")}
    return t.groupby("key", sort=True).agg(**first, **worst).reset_index(), names


def leaderboard(data: Data, flags: pd.DataFrame, eps: float = LEADERBOARD_EPS) -> pd.DataFrame:
    """One row per defense, best first at the threat model ``eps`` (RobustBench's form): clean accuracy, worst-case
    robust accuracy (``worst_case``) at every grid budget up to the largest, the paired gain over the undefended
    model at ``eps``, the attacks that went in there and the checklist's flags. Empty without a σ grid (waveform
    attacks have SNR budgets: their table says it all)."""
    budgets = grid(data.cf)
    if not budgets:
        return pd.DataFrame()
    at = min(budgets, key=lambda e: abs(e - eps))
    base_tables = attack_tables(data, UNDEFENDED)
    base, base_names = worst_case(data, UNDEFENDED, at, tables=base_tables)
    rows = []
    for label in _order(data.cf.defense_label):
        tables = attack_tables(data, label)
        row = {"defense": display(label), "clean": share(clean_table(data, label), "clean_ok").text()}
        for e in budgets:
            row[f"worst case ≤ {e:g} σ"] = share(worst_case(data, label, e, tables=tables)[0], "kept").text()
        t, attacks = worst_case(data, label, at, tables=tables)
        key = share(t, "kept").value
        missing = [n for n in base_names if n not in attacks]
        if missing and key == key:
            row[f"worst case ≤ {at:g} σ"] += f" {FEWER}"
        ref = worst_case(data, UNDEFENDED, at, attacks, base_tables)[0] if missing else base   # the same attacks
        row[f"gain at {at:g} σ (paired)"] = "" if label == UNDEFENDED else _signed(gain(t, ref, "kept"))
        row["FMN median minimal L∞ (σ)"] = _median_minimal(data, label)
        row[f"attacks ≤ {at:g} σ"] = ", ".join(attacks) + (f" (not run: {', '.join(missing)})" if missing else "")
        fl = flags[flags.defense == label]
        bad = sorted(set(fl[fl.verdict == "FLAG"].rule))
        row["gradient masking"] = ", ".join(bad) if bad else f"none raised ({len(fl)} checked)" if len(fl) else \
            "nothing to check"
        row["_key"] = (bool(missing), -key if key == key else np.inf)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


def _flag_words(r, sub: pd.DataFrame) -> str:
    """A checklist FLAG in words: rule (a) as "fgsm at 1.25 σ (0.82) above fgsm at 0.25 σ (0.12)"; the others with
    the checklist's own numbers."""
    name = r.attack + ("" if r.config in ("", "default") else f" [{r.config}]")
    if r.rule == "(a)":
        acc = sub[(sub.measure == "attack") & (sub.attack.str.split(" ").str[0] == r.attack)]

        def at(e: str) -> str:
            hit = acc[np.isclose(acc.budget_sigma, float(e))]
            return f"{name} at {float(e):g} σ" + (f" ({hit.acc.iloc[0]:.3f})" if len(hit) else "")
        steps = re.findall(r"from eps=(\S+) to (\S+?)(?:;|$| )", r.result)
        said = "; ".join(f"{at(hi)} above {at(lo)}" for lo, hi in steps)
        return f"{said or name}, beyond its interval: not monotone in ε → gradient masking suspected (checklist (a))"
    text = re.sub(r"^\([a-d]\)\s*", "", r.result).split(" — ")[0]
    return f"{name}: {text} → gradient masking suspected (checklist {r.rule}: {RULES.get(r.rule, '')})"


def _rises(sub: pd.DataFrame, fl: pd.DataFrame) -> list[str]:
    """Accuracy that rises with ε in the point estimates (all speakers) where the checklist raised no (a) flag for
    that attack: stated, with why it is not decided (the rise lies within its interval, or too few speakers for
    one) — the notebook's signature of gradient masking must be visible even on one fold."""
    out = []
    flagged = set(fl[(fl.verdict == "FLAG") & (fl.rule == "(a)")].attack)
    att = sub[(sub.measure == "attack") & sub.budget_sigma.notna()]
    for a, g in att.groupby("attack", sort=False):
        if a.split(" ")[0] in flagged or a.split(" ")[0] == NOISE:          # noise is the reference, not judged
            continue
        g = g.sort_values("budget_sigma")
        for lo, hi in zip(g.iloc[:-1].itertuples(), g.iloc[1:].itertuples()):
            if hi.acc > lo.acc:
                why = ("within its interval: the checklist's rule (a) raises no flag" if hi.n_speakers >=
                       stats.MIN_SPEAKERS else f"{FEW} {hi.n_speakers} speakers: not testable, the checklist's rule "
                       "(a) cannot decide; gradient masking suspected, not shown")
                out.append(f"  - not monotone in the point estimates: {a} at {hi.budget_sigma:g} σ ({hi.acc:.3f}) "
                           f"above {a} at {lo.budget_sigma:g} σ ({lo.acc:.3f}); {why}")
    return out


def _paired_ref(r, fallback: float) -> float:
    """The undefended accuracy on the segments this defense's runs share with it (the gain's other side): where the
    undefended model was attacked on more folds than the defense, its table cell pools more speakers."""
    v = getattr(r, "undefended_paired", np.nan)
    return v if v == v else fallback


def _cell_gain(r) -> Cell:
    return Cell(r.gain_vs_undefended, r.gain_lo, r.gain_hi, r.n_speakers, r.n_segments)


# ------------------------------------------------------------------------------------------------ figure
def figure(data: Data, long: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy vs ε (σ, symlog from 0 = clean), one row per defense against the undefended model, columns all /
    female / male: FMN's curve from its minimal perturbations (line; band: 95% speaker bootstrap where there are
    enough speakers), the other attacks as points at their budgets joined to the clean accuracy at 0; the top axis
    reads the grid budgets as the undefended FGSM runs' mean SNR (dB)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..min_norm import curve
    labels = _order(long.defense)
    shown = [lb for lb in labels if lb != UNDEFENDED] or labels
    on_axis = long[(long.measure == "attack") & long.budget_sigma.notna()]
    if not len(long) or not len(on_axis):     # nothing on a σ axis (only SNR budgets: the table says it all)
        path.unlink(missing_ok=True)
        return None
    e_grid = grid(data.cf)
    top = max(e_grid + [float(s.r[np.isfinite(s.r)].max()) for _, s in data.minimal.values()
                        if np.isfinite(s.r).any()] + [0.05]) * 1.1
    lin = min([e for e in e_grid if e > 0] + [0.01])
    attacks = sorted(set(long[long.measure == "attack"].attack), key=lambda a: (attack_sort_key(a.split(" ")[0]), a))
    markers = {a: "osD^v<>pXh"[k % 10] for k, a in enumerate(attacks)}
    fig, axes = plt.subplots(len(shown), 3, figsize=(13, 3.3 * len(shown) + 0.9), squeeze=False, sharey=True)
    snr_ticks = _snr_ticks(long)
    for i, label in enumerate(shown):
        for j, g in enumerate(GROUPS):
            ax = axes[i, j]
            for lb, color in [(UNDEFENDED, "0.45")] + ([(label, "C3")] if label != UNDEFENDED else []):
                sub = long[(long.defense == lb) & (long.group == g)]
                if not len(sub):
                    continue
                clean = sub[sub.measure == "clean"]
                c0 = float(clean.acc.iloc[0]) if len(clean) else np.nan
                if len(clean) and clean.acc_lo.notna().iloc[0]:
                    ax.errorbar([0.0], [c0], yerr=[[max(0.0, c0 - clean.acc_lo.iloc[0])],
                                                   [max(0.0, clean.acc_hi.iloc[0] - c0)]],
                                fmt="none", ecolor=color, capsize=2, lw=0.8, alpha=0.7)
                for a in attacks:
                    pts = sub[(sub.measure == "attack") & (sub.attack == a)].sort_values("budget_sigma")
                    pts = pts[pts.budget_sigma.notna()]
                    if not len(pts):
                        continue
                    cid = pts.config_id.iloc[0]
                    if cid in data.minimal:                # the full curve from the minimal perturbations
                        _, seg = data.minimal[cid]
                        sg = seg if g == "all" else seg[seg.gender == g]
                        if len(sg):
                            bud = np.concatenate([[0.0], np.geomspace(lin / 10, top, 80)])
                            c = curve(sg.assign(speaker=sg.speaker.astype(str)), "r", bud)
                            ax.plot(c.budget, c.acc, "-", color=color, lw=1.8 if lb != UNDEFENDED else 1.4)
                            if sg.speaker.nunique() >= stats.MIN_SPEAKERS:
                                ax.fill_between(c.budget, c.acc_lo, c.acc_hi, color=color, alpha=0.12, lw=0)
                        continue
                    x = np.r_[0.0, pts.budget_sigma.to_numpy(float)]
                    y = np.r_[c0, pts.acc.to_numpy(float)]
                    ax.plot(x, y, ":", marker=markers[a], color=color, lw=0.9, ms=5,
                            mfc="white" if lb == UNDEFENDED else color)
                    lo, hi = pts.acc_lo.to_numpy(float), pts.acc_hi.to_numpy(float)
                    ok = np.isfinite(lo) & np.isfinite(hi)
                    if ok.any():
                        ax.errorbar(pts.budget_sigma.to_numpy(float)[ok], pts.acc.to_numpy(float)[ok],
                                    yerr=np.clip(np.vstack([pts.acc.to_numpy(float)[ok] - lo[ok], hi[ok] -
                                                            pts.acc.to_numpy(float)[ok]]), 0, None),
                                    fmt="none", ecolor=color, capsize=2, lw=0.8, alpha=0.7)
            ax.set_xscale("symlog", linthresh=lin)
            ax.set_xlim(0, top)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{display(label)} vs undefended — {g} speakers" if label != UNDEFENDED else
                         f"undefended — {g} speakers", fontsize=9)
            if i == len(shown) - 1:
                ax.set_xlabel("budget ε, L∞ (σ; 0 = clean, symlog)")
            if j == 0:
                ax.set_ylabel("robust accuracy (right before and after)")
            if snr_ticks:                 # a twin on the same symlog scale (a secondary axis would be linear)
                sec = ax.twiny()
                sec.set_xscale("symlog", linthresh=lin)
                sec.set_xlim(ax.get_xlim())
                sec.set_xticks(list(snr_ticks), [f"{v:.0f}" for v in snr_ticks.values()], fontsize=7)
                sec.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                if i == 0:
                    sec.set_xlabel("mean SNR of the undefended FGSM runs at that ε (dB)", fontsize=7)
    handles = [plt.Line2D([], [], color="C3", lw=2, label="defended"),
               plt.Line2D([], [], color="0.45", lw=2, label="undefended")]
    handles += [plt.Line2D([], [], color="0.3", lw=1.6, label=f"{a}: curve from its minimal perturbations")
                for a in attacks if _is_curve(data, long, a)]
    handles += [plt.Line2D([], [], color="0.3", ls=":", marker=markers[a], ms=5, lw=0.9, label=f"{a} at its budgets")
                for a in attacks if not _is_curve(data, long, a)]
    n_spk = long[(long.measure == "clean") & (long.group == "all")].n_speakers
    if len(n_spk) and n_spk.max() < stats.MIN_SPEAKERS:
        handles.append(plt.Line2D([], [], ls="", label=f"{int(n_spk.max())} test speakers: no intervals (fewer than "
                                  f"{stats.MIN_SPEAKERS}, {FEW} in the table)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    n_leg = 1 + (len(handles) - 1) // 4
    fig.tight_layout(rect=(0, 0.28 * n_leg / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _is_curve(data: Data, long: pd.DataFrame, a: str) -> bool:
    ids = long[(long.measure == "attack") & (long.attack == a)].config_id
    return any(c in data.minimal for c in ids)


def _snr_ticks(long: pd.DataFrame) -> dict[float, float]:
    """Grid budget -> the undefended FGSM runs' mean SNR (dB) there (else the first attack's with an SNR)."""
    a = long[(long.defense == UNDEFENDED) & (long.group == "all") & (long.measure == "attack") & long.snr_db.notna()
             & long.budget_sigma.notna()]
    if not len(a):
        return {}
    pick = "fgsm" if (a.attack == "fgsm").any() else sorted(a.attack, key=lambda s: attack_sort_key(s))[0]
    a = a[a.attack == pick]
    return {float(b): float(s) for b, s in zip(a.budget_sigma, a.snr_db) if np.isfinite(s)}


# ------------------------------------------------------------------------------------------------ output
def write(data: Data, out: Path, title: str, command: str = "", eps: float = LEADERBOARD_EPS) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    long = long_table(data)
    flags = masking_flags(data)
    tm = times(data)
    wide = wide_table(long, flags, tm)
    board = leaderboard(data, flags, eps)
    paths = {"md": out / "defenses.md", "csv": out / "defenses.csv", "long": out / "defenses_long.csv",
             "flags": out / "gradient_masking.csv", "png": out / "robustness_curves.png",
             "board": out / "leaderboard.csv"}
    wide.to_csv(paths["csv"], index=False)
    if len(board):
        board.to_csv(paths["board"], index=False)
    else:
        paths["board"].unlink(missing_ok=True)
    long.to_csv(paths["long"], index=False, float_format="%.5g")
    flags.to_csv(paths["flags"], index=False)
    fig = figure(data, long, paths["png"])
    n_spk = long[(long.measure == "clean") & (long.group == "all")].n_speakers
    md = [f"# {title}", "", *([f"```bash\n{command}\n```", ""] if command else []),
          *([f"Pooled over differing {', '.join(data.runs.filters['pool_over'])} (`--pool-over`).", ""]
            if data.runs.filters.get("pool_over") else []),
          f"{len(data.runs)} attack runs, {data.cf.defense_label.nunique()} defenses, "
          f"{int(n_spk.max()) if len(n_spk) else 0} test speakers. Cells: accuracy (all / female / male speakers), "
          "95% cluster bootstrap over speakers in brackets (exact bound at 0 or 1); attacks: the runs' mean SNR of the "
          "perturbation in dB after the comma (on the waveform: of the audio change). Clean: through the defense as "
          "deployed (one draw for a randomized one). FMN: accuracy at each budget from its per-segment minimal "
          "perturbations. Certified: randomized smoothing's certified accuracy at that L2 radius (σ), from the per-"
          "segment certificates (pooled over segments like every cell: the runs' own `certified_acc_r*` metrics are "
          "means of speaker means). "
          + NOT_INFORMATIVE + ".", "", *_board_md(board, long, eps),
          "## The table", "", md_table(wide).rstrip("\n"), "", "## Verdicts", "",
          "Gain = defended − undefended accuracy on the segments both attacked (paired; 95% speaker bootstrap, "
          f"{FEW}: not informative); the clean-accuracy cost likewise; \"undefended → defended\" reads both on those "
          "segments (the table's undefended row may pool more folds). Gradient-masking rules of the robustness "
          "checklist (`ser_attacks/report/checklist.py`): (a) accuracy not monotone in ε, (b) black-box / transfer "
          "beats white-box, (c) noise beats the attack, (d) EOT / BPDA needed but absent; each decided on a paired "
          "speaker-level interval, so with few speakers a rule rarely fires.", "", *verdicts(long, flags)]
    if fig is not None:
        md += ["", f"![Robustness curves per defense vs undefended]({fig.name})", "",
               "Accuracy against the L∞ budget ε (σ, symlog axis from 0 = clean): defended (red) vs undefended (grey); "
               "FMN as a curve from its minimal perturbations (band: 95% speaker bootstrap where a group has at "
               f"least {stats.MIN_SPEAKERS} speakers), the other attacks as points at their budgets joined to the "
               "clean accuracy at 0 (open markers: undefended). Top axis: the undefended FGSM runs' mean SNR at the "
               "grid budgets (dB). The undefended curves pool every segment the undefended model was attacked on, "
               "which may be more folds than a defense's (a defense trained on one fold): the verdict lines and the "
               "leaderboard's gains pair the two on the same segments."]
    md += ["", "Files: `defenses.csv` (this table), `defenses_long.csv` (every number with its interval, speakers, "
           "segments and gain), `gradient_masking.csv` (the checklist's rows)."]
    paths["md"].write_text("\n".join(md) + "\n")
    return paths


def _median_minimal(data: Data, label: str) -> str:
    """FMN's minimal L∞ perturbation of the segments the defended model classified right, summarized per speaker
    (each speaker's median), then across speakers (the median of those); "—" without an L∞ FMN run: how far the
    defense moves the robustness curve."""
    sub = data.cf[data.cf.defense_label == label]
    segs = [seg[seg.clean_ok > 0] for cid in sub.config_id if cid in data.minimal
            for kind, seg in [data.minimal[cid]] if kind == "linf"]
    if not segs:
        return "—"
    per_speaker = pd.concat(segs).groupby("speaker").r.median()
    return f"{float(np.median(per_speaker)):.4f}" if len(per_speaker) else "—"


def _board_md(board: pd.DataFrame, long: pd.DataFrame, eps: float) -> list[str]:
    if not len(board):
        return []
    at = next(c for c in board.columns if c.startswith("gain at ")).split()[2]
    snr = _snr_ticks(long).get(float(at))
    return ["## Leaderboard", "",
            f"Threat model: L∞ perturbation of the model's input (log-Mel, σ units) of at most **ε = {at} σ**"
            + (f" (the undefended FGSM runs' mean SNR there: {snr:.1f} dB)" if snr is not None else "")
            + "; the attacker knows the defense (white-box through it: BPDA for non-differentiable transforms, EOT "
            "for randomized ones, as the runs' tags say) or queries it (black box), or transfers from the undefended "
            "model. **Worst case per segment**: a segment counts as robust only if it is classified right before "
            "and after every attack run against the defense at a budget ≤ ε (noise excluded; FMN at ε from its "
            "minimal perturbations); each defense is judged by the attacks its runs hold (column \"attacks\"), so "
            "a defense attacked by fewer attacks would be judged more leniently: "
            f"{FEWER} marks one not attacked by every attack the undefended model was (the missing ones named), an "
            "upper bound listed after the comparable rows, its gain taken against the undefended model's worst case "
            "over the same attacks. Sorted by the worst case at ε; the gain is paired with the undefended model's "
            "worst case on the same segments. FMN median: its minimal L∞ perturbation of the segments the "
            "defended model got right, each speaker's median, then the median across speakers. A flag of the "
            "checklist means the number is not to be believed (gradient masking).", "",
            md_table(board).rstrip("\n"), ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ser_attacks.report.defenses", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    collect.add_run_filters(p)
    p.set_defaults(experiment="defenses")
    p.add_argument("--out", required=True, help="output folder (recipes/defenses/<corpus>)")
    p.add_argument("--title", default=None)
    p.add_argument("--eps", type=float, default=LEADERBOARD_EPS,
                   help=f"the leaderboard's threat model: L∞ budget in σ (default {LEADERBOARD_EPS}; the grid budget "
                        "nearest to it)")
    p.add_argument("--cache", default=None,
                   help="download cache for a remote artifact store (default $SER_ATTACKS_CACHE/report_artifacts; "
                        "a local store is read in place)")
    p.add_argument("--pool-over", action="append", default=[], metavar="KEY",
                   help="a config key (params name, e.g. input.griffin_lim_iter) whose values are pooled instead of "
                        "kept apart (repeatable; stated in the table's header)")
    a = p.parse_args(argv)
    if not a.eps > 0:
        p.error(f"--eps must be a budget above 0 (σ), got {a.eps}")
    filters = collect.cli_run_filters(a)
    if filters is None:
        return 2
    uri, tags = filters
    data = load(uri, a.experiment, a.sweep, a.dataset, tags, Path(a.cache) if a.cache else None, a.pool_over)
    cmd = "python -m ser_attacks.report.defenses " + " ".join(argv if argv is not None else sys.argv[1:])
    paths = write(data, Path(a.out), a.title or f"Defenses: {a.dataset or a.experiment}", cmd, a.eps)
    print(paths["md"].read_text())
    print("Written: " + ", ".join(str(v) for v in paths.values() if v.exists()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
