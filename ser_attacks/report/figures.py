"""The report's figures (matplotlib, Agg backend), written as PNG files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .tables import attack_sort_key  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grouped_bars(best: pd.DataFrame, metric: str, ylabel: str, path: Path, ci: bool = True,
                 log: bool = False) -> Path | None:
    """Bars per attack (x) and setting (colour); cells that were not run are simply absent."""
    if best.empty or best[metric].isna().all():
        return None
    attacks = sorted(best.attack.unique(), key=attack_sort_key)
    settings = sorted(best.setting.unique())
    width = 0.8 / len(settings)
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(attacks) + 2), 3.6))
    for j, s in enumerate(settings):
        xs, ys, err = [], [], [[], []]
        for i, a in enumerate(attacks):
            hit = best[(best.attack == a) & (best.setting == s)]
            if not len(hit) or hit[metric].isna().all():
                continue
            r = hit.iloc[0]
            xs.append(i + (j - (len(settings) - 1) / 2) * width)
            ys.append(r[metric])
            lo, hi = r.get(f"{metric}_lo", np.nan), r.get(f"{metric}_hi", np.nan)
            err[0].append(max(0.0, r[metric] - lo) if ci and lo == lo else 0.0)
            err[1].append(max(0.0, hi - r[metric]) if ci and hi == hi else 0.0)
        if xs:
            ax.bar(xs, ys, width, label=s, yerr=err if ci else None, capsize=2)
    ax.set_xticks(range(len(attacks)), attacks)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def robustness_curves(cf: pd.DataFrame, path: Path) -> Path | None:
    """Adversarial accuracy vs the swept numeric parameter (eps, theta, th, ...), per attack; solid =
    all, dashed = female, dotted = male; shaded = 95% bootstrap CI of 'all'."""
    cand = cf[cf.x.notna()]
    attacks = [a for a in sorted(cand.attack.unique(), key=attack_sort_key) if cand[cand.attack == a].x.nunique() > 1]
    if not attacks:
        return None
    n = len(attacks)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, a in zip(axes.flat, attacks):
        sub = cand[cand.attack == a]
        for k, (s, ss) in enumerate(sorted(sub.groupby("setting"))):
            # several configs may share x (another key swept too): one line per other-key combination
            ss = ss.sort_values("x")
            color = f"C{k}"
            # the x parameter and the step that a sweep moves with it (eps_step = eps / 4) are one line
            tied = ss.x_param.iloc[0] + ("|eps_step" if ss.x_param.iloc[0] == "eps" else "")
            others = ss.config.str.replace(r"(^|, )(" + tied + r")=[^,]*", "", regex=True).str.strip(", ")
            for k_line, (extra, line) in enumerate(ss.groupby(others)):
                label = s + (f" {extra.strip(', ')}" if extra.strip(", ") else "")
                ax.plot(line.x, line.adv_acc, "-", marker="os^Dv<>"[k_line % 7], color=color, label=label)
                if line.adv_acc_lo.notna().all():
                    ax.fill_between(line.x, line.adv_acc_lo, line.adv_acc_hi, color=color, alpha=0.12)
                ax.plot(line.x, line.adv_acc_female, "--", color=color, alpha=0.7)
                ax.plot(line.x, line.adv_acc_male, ":", color=color, alpha=0.7)
        ax.set_title(a)
        ax.set_xlabel(sub.x_param.iloc[0])
        ax.set_ylabel("adversarial accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return _save(fig, path)


def time_per_attack(cf: pd.DataFrame, path: Path) -> Path | None:
    """Attack time per segment of every configuration (log scale), per attack and setting."""
    if cf.empty or cf.time_per_sample_s.isna().all():
        return None
    attacks = sorted(cf.attack.unique(), key=attack_sort_key)
    settings = sorted(cf.setting.unique())
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(attacks) + 2), 3.4))
    width = 0.8 / len(settings)
    for j, s in enumerate(settings):
        for i, a in enumerate(attacks):
            v = cf[(cf.attack == a) & (cf.setting == s)].time_per_sample_s.dropna()
            if len(v):
                x = i + (j - (len(settings) - 1) / 2) * width
                ax.scatter(np.full(len(v), x), v, color=f"C{j}", s=18, label=s if i == 0 or a == attacks[0] else None)
    handles = [plt.Line2D([], [], marker="o", ls="", color=f"C{j}", label=s) for j, s in enumerate(settings)]
    ax.legend(handles=handles, fontsize=7)
    ax.set_xticks(range(len(attacks)), attacks)
    ax.set_yscale("log")
    ax.set_ylabel("attack time per segment (s, log)")
    ax.grid(axis="y", alpha=0.3, which="both")
    return _save(fig, path)
