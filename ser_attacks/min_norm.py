"""Measures below saturation: the minimal adversarial perturbation per segment, and the robustness curve it gives.

Per segment (``segment_columns``; in ``adversarial.npz`` and ``segments.csv.gz``):

- ``linf``, ``l2``: the norms of the run's perturbation x_adv − x, in the model's input units (σ: per-band
  standard deviations of the normalized log-Mel), for every attack;
- for the attacks that search for a SMALL perturbation (``MIN_NORM_ATTACKS``: FMN, DeepFool, C&W L2 / L∞,
  Boundary): ``min_linf``, ``min_l2`` = that norm where the segment ends up misclassified, 0 where the model
  already got it wrong (no perturbation needed), +inf where the attack found no adversarial point;
  ``min_snr_db`` = the SNR (dB) of the audio change of that perturbation (the resynthesized audio of a
  spectrogram attack, ``input.realize``; the waveform change for ``input=waveform``), +inf where none was
  needed, −inf where none was found, NaN where no audio was made (``input.realize=false``).

The norm an attack MINIMISES (``norm_of``: L∞ for FMN ``norm=inf`` and C&W L∞, L2 for the others) is the one
its curve is drawn on. The curve (``curve``): accuracy at budget ε = share of segments whose minimal
perturbation is larger than ε (the model is still right under every perturbation of norm ≤ ε that the attack
can find), so ε = 0 gives the clean accuracy; success rate at ε = share of the CLEAN-CORRECT segments whose
minimal perturbation is ≤ ε. On the SNR axis the budget is an SNR s: the model is still right where its
minimal perturbation is louder than s allows (``min_snr_db`` < s). Speaker-level throughout: the mean of each
speaker, then the mean across speakers; 95% intervals from a bootstrap over speakers (seeded; and over each
fold's training seeds where the rows carry ``fold`` and ``model`` and a fold has several: ``report.stats.boot_draws``),
widened for few speakers as every interval of the report (``report.stats.small_sample_factor``).

One-number summaries (``summaries``), each with a speaker-bootstrap interval (and over each fold's training
seeds where the segments carry ``fold`` and ``model`` and a fold has several): ``median`` minimal perturbation
of the clean-correct segments (+inf if more than half were never flipped), ``eps_half`` (the smallest budget
at which accuracy is at most half the clean accuracy; +inf if never), ``auc`` (the area under the accuracy
curve over [0, ε_max], divided by ε_max: 1 = no segment flipped within ε_max, 0 = none right even at ε = 0).
On the SNR axis (where the segments carry ``min_snr_db``): ``snr_acc50`` and ``snr_acc0``, the SNR (dB) of the
audio change at which accuracy first falls to 50 % and to 0 % (+inf: the clean accuracy is already there;
−inf: never reached), to set beside the SNR of the paper's fixed budgets (the report's audio section).
ε_max is the top of the curve's σ axis (``default_grid``: 1.05 × the largest finite minimal perturbation):
of the run in MLflow (metric ``minnorm_auc_eps_max``), common to all runs of one norm in a report, so that
AUCs compare within a report. (The paper's budgets, 0.25 ... 1.25 σ L∞, lie far above the minimal
perturbations of a trained model, so an AUC over them would be ~0 for every attack.)
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

MIN_NORM_ATTACKS = ("fmn", "deepfool", "cw_l2", "cw_linf", "boundary")
COLUMNS = ("linf", "l2", "min_linf", "min_l2", "min_snr_db")
N_BOOT = 1000
ALPHA = 0.05


def norm_of(attack: str, norm=None) -> str | None:
    """``linf`` | ``l2``: the norm ``attack`` minimises (None: not a minimum-norm attack)."""
    if attack not in MIN_NORM_ATTACKS:
        return None
    if attack == "fmn":
        return "l2" if str(norm) in ("2", "2.0") else "linf"
    return "linf" if attack == "cw_linf" else "l2"


def segment_columns(x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray,
                    minimal: bool, audio_snr: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The per-segment columns (module docstring), float64 arrays of length n."""
    n = len(x)
    d = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(n, -1)
    out = {"linf": np.abs(d).max(1) if d.size else np.zeros(n), "l2": np.linalg.norm(d, axis=1)}
    if not minimal:
        return out
    wrong = np.asarray(clean_pred) != np.asarray(y)
    flipped = np.asarray(adv_pred) != np.asarray(y)
    for k in ("linf", "l2"):
        out[f"min_{k}"] = np.where(wrong, 0.0, np.where(flipped, out[k], np.inf))
    snr = np.full(n, np.nan) if audio_snr is None else np.asarray(audio_snr, np.float64)
    out["min_snr_db"] = np.where(wrong, np.inf, np.where(flipped, snr, -np.inf))
    return out


# -- speaker-level curves -----------------------------------------------------------------------------------
def _speaker_matrix(speaker: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(speakers, per-speaker mean of each column of ``values`` (n, k)); rows with NaN left out per column."""
    speakers = np.unique(speaker)
    out = np.full((len(speakers), values.shape[1]), np.nan)
    for i, s in enumerate(speakers):
        v = values[speaker == s]
        if len(v):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[i] = np.nanmean(v, axis=0)
    return speakers, out


def _boot(mat: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap over speakers (rows) of the across-speaker mean: (n_boot, k)."""
    from .report.stats import boot_draws
    idx, _ = boot_draws(len(mat), None, n_boot, np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(mat[idx], axis=1)


def _seed_boot(vals: np.ndarray, design: tuple, n_boot: int, seed: int) -> np.ndarray:
    """``_boot`` with each fold's training seeds drawn too (``report.stats.boot_draws``): per draw a speaker's
    value is the mean over its fold's drawn seeds of its mean under each: (n_boot, k)."""
    from .report.stats import boot_draws
    per_fold, per = design
    k = max(per_fold.values())
    m = np.full((len(per), k, vals.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, (_, by_slot) in enumerate(per):
            for j, rows in by_slot.items():
                if len(rows):
                    m[i, j] = np.nanmean(vals[rows], axis=0)
        pick, seeds = boot_draws(len(per), per_fold, n_boot, np.random.default_rng(seed))
        w = np.zeros((n_boot, len(per), k))
        for i, (f, _) in enumerate(per):
            w[:, i, :per_fold[f]] = seeds[f]
        a = np.isfinite(m)
        s = np.einsum("bij,ijc->bic", w, np.where(a, m, 0.0)) / np.einsum("bij,ijc->bic", w, a.astype(float))
        return np.nanmean(np.take_along_axis(s, pick[:, :, None], axis=1), axis=1)


def _ci(reps: np.ndarray, n_speakers: int, lower=0.0, upper=np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the replicates (rows) widened for few speakers as every interval of the report is
    (``stats.small_sample_factor``), clipped to [lower, upper]."""
    from .report.stats import small_sample_factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fin = np.isfinite(reps)                    # an unreached budget (inf) stays inf
        m = np.nanmean(np.where(fin, reps, np.nan), axis=0)
        reps = np.where(fin, m + (reps - m) * small_sample_factor(n_speakers, ALPHA), reps)
        return (np.clip(_quantile(reps, ALPHA / 2, "lower"), lower, upper),
                np.clip(_quantile(reps, 1 - ALPHA / 2, "higher"), lower, upper))


def _quantile(reps: np.ndarray, q: float, side: str) -> np.ndarray:
    """``np.nanquantile`` (linear) of each column; where it lands between two infinite replicates (inf − inf:
    NaN) the replicate on ``side`` instead, so an interval reaching an unreached budget reads ∞, not NaN."""
    linear = np.nanquantile(reps, q, axis=0)
    bad = np.isnan(linear) & np.isinf(reps).any(axis=0)
    return np.where(bad, np.nanquantile(reps, q, axis=0, method=side), linear) if bad.any() else linear


def curve(seg: pd.DataFrame, col: str, grid, snr: bool = False, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Accuracy and success rate at each budget of ``grid`` (σ, or SNR dB with ``snr``), speaker level, with
    bootstrap intervals (NaN with fewer than ``stats.MIN_SPEAKERS`` speakers). ``seg``: columns speaker, label,
    clean_pred and ``col``."""
    from .report.stats import MIN_SPEAKERS
    grid = np.asarray(grid, np.float64)
    r = seg[col].to_numpy(np.float64)
    speaker = seg.speaker.astype(str).to_numpy()
    correct = seg.clean_pred.to_numpy() == seg.label.to_numpy()
    still = (r[:, None] < grid[None, :]) if snr else (r[:, None] > grid[None, :])
    acc = still.astype(float)
    succ = np.where(correct[:, None], 1.0 - acc, np.nan)
    out = {"budget": grid}
    speakers = np.unique(speaker)
    design = _seed_groups(seg, speaker, speakers)
    few = len(speakers) < MIN_SPEAKERS      # the report's rule: no interval below 3 speakers (a band over two
    for name, vals in (("acc", acc), ("success", succ)):                            # speakers spans 0-1)
        _, mat = _speaker_matrix(speaker, vals)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[name] = np.nanmean(mat, axis=0)
        if few:
            out[f"{name}_lo"] = out[f"{name}_hi"] = np.full(len(grid), np.nan)
            continue
        reps = _boot(mat, n_boot, seed) if design is None else _seed_boot(vals, design, n_boot, seed)
        out[f"{name}_lo"], out[f"{name}_hi"] = _ci(reps, len(mat), upper=1.0)
    out["n_speakers"] = np.full(len(grid), len(np.unique(speaker)))
    out["n_segments"] = np.full(len(grid), len(r))
    return pd.DataFrame(out)


def _summary_values(r: np.ndarray, speaker: np.ndarray, correct: np.ndarray, e_max: float,
                    snr: np.ndarray | None = None) -> np.ndarray:
    """(median of the clean-correct segments' minimal perturbations, eps_half, auc[, snr_acc50, snr_acc0]) of one
    set of segments, accuracy speaker-level (mean per speaker, then across speakers)."""
    med = float(np.median(r[correct])) if correct.any() else np.nan
    speakers, inv = np.unique(speaker, return_inverse=True)
    w = 1.0 / (len(speakers) * np.bincount(inv))[inv]       # speaker-level mean = weighted segment mean
    finite = np.sort(np.unique(r[np.isfinite(r)]))
    grid = np.concatenate([[0.0], finite])
    acc = np.array([np.sum(w * (r > e)) for e in grid])
    below = np.flatnonzero(acc <= acc[0] / 2 + 1e-12)
    half = float(grid[below[0]]) if len(below) and acc[0] > 0 else np.inf
    auc = float(np.sum(w * np.minimum(r, e_max)) / e_max)
    out = [med, half, auc]
    if snr is not None:
        out += _snr_points(snr, w)
    return np.array(out)


SNR_TARGETS = (0.5, 0.0)        # accuracy levels whose SNR the summaries give (snr_acc50, snr_acc0)


def _snr_points(snr: np.ndarray, w: np.ndarray) -> list[float]:
    """The SNR (dB) of the audio change at which speaker-level accuracy first falls to each of ``SNR_TARGETS``,
    going from quiet to loud: accuracy at SNR s = the weighted share of segments with ``min_snr_db`` < s. +inf
    where the clean accuracy is already at or below the level, −inf where it is never reached (segments never
    flipped), NaN where a segment has no audio (``input.realize=false``)."""
    if np.isnan(snr).any():
        return [np.nan] * len(SNR_TARGETS)
    levels = np.sort(np.unique(snr[np.isfinite(snr)]))[::-1]
    order = np.argsort(snr, kind="stable")
    below = np.concatenate([[0.0], np.cumsum(w[order])])       # weight of the segments with min_snr_db < v
    acc = below[np.searchsorted(snr[order], levels, side="left")]
    clean = float(np.sum(w * (snr < np.inf)))
    out = []
    for target in SNR_TARGETS:
        hit = np.flatnonzero(acc <= target + 1e-12)
        out.append(np.inf if clean <= target + 1e-12 else float(levels[hit[0]]) if len(hit) else -np.inf)
    return out


def _seed_groups(seg: pd.DataFrame, speaker: np.ndarray, speakers: np.ndarray) -> tuple[dict, list] | None:
    """Where ``seg`` has ``fold`` and ``model`` columns and a fold was attacked through several trained models
    (training seeds): (seeds per fold, per speaker [its fold, {seed slot: its row indices}]); else None."""
    if "model" not in seg or "fold" not in seg:
        return None
    fold = seg.fold.astype(str).to_numpy()
    model = seg.model.astype(str).to_numpy()
    slots = {f: sorted(set(model[fold == f])) for f in sorted(set(fold))}
    if all(len(m) <= 1 for m in slots.values()):
        return None
    per = []
    for s_ in speakers:
        rows = np.flatnonzero(speaker == s_)
        f = fold[rows[0]]
        per.append((f, {j: rows[model[rows] == m] for j, m in enumerate(slots[f])}))
    return {f: len(m) for f, m in slots.items()}, per


def summaries(seg: pd.DataFrame, col: str, e_max: float, n_boot: int = N_BOOT, seed: int = 0,
              snr_col: str = "snr") -> dict[str, float]:
    """``median``, ``eps_half``, ``auc`` (module docstring) and, where ``seg`` has ``snr_col`` (the minimal
    perturbation's SNR in dB), ``snr_acc50`` / ``snr_acc0`` (``_snr_points``), each with ``_lo`` / ``_hi``: a
    bootstrap over speakers (``report.stats.boot_draws``) and, where ``seg`` has ``fold`` and ``model`` columns
    and a fold was attacked through several trained models, over each fold's training seeds too (drawn k of k,
    shared by the fold's speakers: a drawn speaker brings its rows under each drawn seed, as often as that seed
    was drawn); NaN with fewer than ``stats.MIN_SPEAKERS`` speakers."""
    from .report.stats import MIN_SPEAKERS, boot_draws
    r = seg[col].to_numpy(np.float64)
    speaker = seg.speaker.astype(str).to_numpy()
    correct = seg.clean_pred.to_numpy() == seg.label.to_numpy()
    snr = seg[snr_col].to_numpy(np.float64) if snr_col in seg else None
    point = _summary_values(r, speaker, correct, e_max, snr)
    speakers = np.unique(speaker)
    groups = [np.flatnonzero(speaker == s) for s in speakers]
    design = _seed_groups(seg, speaker, speakers)
    few = len(speakers) < MIN_SPEAKERS                 # as ``curve``: no interval, so no bootstrap
    picks, seeds = ([], None) if few else boot_draws(len(speakers), design[0] if design else None, n_boot,
                                                     np.random.default_rng(seed))
    reps = []
    for b, pick in enumerate(picks):
        if seeds is None:
            rows = [groups[i] for i in pick]
        else:
            rows = []
            for i in pick:
                f, by_slot = design[1][i]
                rows.append(np.concatenate([np.tile(by_slot[j], int(c)) for j, c in enumerate(seeds[f][b])]))
        idx = np.concatenate(rows)
        # resampled speakers are distinct clusters even when drawn twice
        sp = np.concatenate([np.full(len(g), k) for k, g in enumerate(rows)])
        reps.append(_summary_values(r[idx], sp, correct[idx], e_max, None if snr is None else snr[idx]))
    names = ("median", "eps_half", "auc") + (("snr_acc50", "snr_acc0") if snr is not None else ())
    lower = np.array([0.0, 0.0, 0.0, -np.inf, -np.inf])[:len(names)]        # SNR in dB may be negative
    lo, hi = (np.full(len(names), np.nan),) * 2 if few else _ci(np.array(reps), len(speakers), lower=lower)
    out = {}
    for k, name in enumerate(names):
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = float(point[k]), float(lo[k]), float(hi[k])
    return out


def default_grid(r: np.ndarray, n: int = 60) -> np.ndarray:
    """Budgets from 0 to just past the largest finite minimal perturbation (saturation), ``n`` steps."""
    finite = r[np.isfinite(r)]
    top = float(finite.max()) * 1.05 if len(finite) and finite.max() > 0 else 1.0
    return np.linspace(0.0, top, n)


def snr_grid(s: np.ndarray, n: int = 60) -> np.ndarray:
    """SNR budgets (dB) from above the quietest minimal perturbation down to the loudest, ``n`` steps."""
    finite = s[np.isfinite(s)]
    if not len(finite):
        return np.linspace(60.0, -20.0, n)
    return np.linspace(float(finite.max()) + 1.0, float(finite.min()) - 1.0, n)


# -- the attack run: metrics and the curve artifact ---------------------------------------------------------
def run_summary(attack: str, norm, segs: pd.DataFrame, y: np.ndarray, clean_pred: np.ndarray,
                cols: dict[str, np.ndarray], seed: int = 0):
    """(MLflow metrics, curve table) of one minimum-norm run; (None, None) for other attacks. Metrics:
    ``minnorm_{median,eps_half,auc}`` (+ ``_lo`` / ``_hi``) in the attack's norm (σ), ``minnorm_snr_median``
    (dB), all and per gender; non-finite values are left out (MLflow stores no inf)."""
    kind = norm_of(attack, norm)
    if kind is None:
        return None, None
    seg = pd.DataFrame({"speaker": segs.speaker.astype(str).to_numpy(), "gender": segs.gender.astype(str).to_numpy(),
                        "label": y, "clean_pred": clean_pred, "r": cols[f"min_{kind}"], "snr": cols["min_snr_db"]})
    grid = default_grid(seg.r.to_numpy())
    metrics, tables = {"minnorm_auc_eps_max": float(grid[-1])}, []
    for g in ("all", "female", "male"):
        sub = seg if g == "all" else seg[seg.gender == g]
        if not len(sub):
            continue
        sfx = "" if g == "all" else f"_{g}"
        for k, v in summaries(sub, "r", float(grid[-1]), seed=seed).items():
            metrics[f"minnorm_{k}{sfx}"] = v
        ok = sub.clean_pred.to_numpy() == sub.label.to_numpy()
        metrics[f"minnorm_snr_median{sfx}"] = float(np.median(sub.snr[ok])) if ok.any() else np.nan
        for axis, budgets in (("sigma", grid), ("snr_db", snr_grid(seg.snr.to_numpy()))):
            if axis == "snr_db" and not np.isfinite(seg.snr.to_numpy()).any():
                continue
            c = curve(sub, "r" if axis == "sigma" else "snr", budgets, snr=axis == "snr_db", seed=seed)
            c.insert(0, "axis", axis)
            c.insert(0, "gender", g)
            tables.append(c)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "norm", kind)
    return {k: v for k, v in metrics.items() if np.isfinite(v)}, table


def plot_run_curve(table: pd.DataFrame, title: str):
    """The run's curve artifact: accuracy vs budget (σ and, if present, SNR dB), all / female / male."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    axes_ = [a for a in ("sigma", "snr_db") if (table.axis == a).any()]
    fig, axes = plt.subplots(1, len(axes_), figsize=(4.6 * len(axes_), 3.4), squeeze=False)
    styles = {"all": ("0.2", "-"), "female": ("#d95f02", "--"), "male": ("#1b9e77", ":")}
    for ax, a in zip(axes[0], axes_):
        for g, (color, ls) in styles.items():
            c = table[(table.axis == a) & (table.gender == g)]
            if not len(c):
                continue
            ax.plot(c.budget, c.acc, ls, color=color, label=g)
            ax.fill_between(c.budget, c.acc_lo, c.acc_hi, color=color, alpha=0.12, lw=0)
        ax.set_xlabel(f"budget: {table.norm.iloc[0].replace('linf', 'L∞').replace('l2', 'L2')} (σ)" if a == "sigma"
                      else "budget: SNR of the audio change (dB)")
        if a == "snr_db":
            ax.invert_xaxis()
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, y=0.02, va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.92))
    return fig
