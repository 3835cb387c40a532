"""The report's figures (matplotlib, Agg backend), written as PNG files."""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .aggregate import SFX as GENDER_SFX  # noqa: E402
from .format import attack_sort_key  # noqa: E402


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


GENDER_STYLE = {"all": dict(color="0.35"), "female": dict(color="#d95f02"), "male": dict(color="#1b9e77")}


def grouped_bars(best: pd.DataFrame, metric: str, ylabel: str, path: Path, ci: bool = True,
                 log: bool = False, clean: str | None = None) -> Path | None:
    """One panel per setting, stacked (a report of three corpora x two protocols stays one page wide); per
    attack three bars: all, female, male speakers (with the 95% CI where the tables have one). ``clean``: the
    metric drawn as a black tick over each bar (e.g. clean accuracy, so the fall is visible). Cells that were
    not run are simply absent."""
    if best.empty or best[metric].isna().all():
        return None
    attacks = sorted(best.attack.unique(), key=attack_sort_key)
    settings = sorted(best.setting.unique())
    width = 0.27
    fig, axes = plt.subplots(len(settings), 1, figsize=(max(6.0, 0.9 * len(attacks) + 1.5),
                                                        0.5 + 2.9 * len(settings)),
                             squeeze=False, sharey=True, sharex=True)
    for ax, s in zip(axes.flat, settings):
        for j, g in enumerate(GENDER_SFX):
            col = f"{metric}{GENDER_SFX[g]}"
            if col not in best:
                continue
            xs, ys, err, ticks = [], [], [[], []], []
            for i, a in enumerate(attacks):
                hit = best[(best.attack == a) & (best.setting == s)]
                if not len(hit) or hit[col].isna().all():
                    continue
                r = hit.iloc[0]
                x = i + (j - 1) * width
                xs.append(x)
                ys.append(r[col])
                lo, hi = r.get(f"{col}_lo", np.nan), r.get(f"{col}_hi", np.nan)
                err[0].append(max(0.0, r[col] - lo) if ci and lo == lo else 0.0)
                err[1].append(max(0.0, hi - r[col]) if ci and hi == hi else 0.0)
                ck = f"{clean}{GENDER_SFX[g]}"
                if clean and ck in r and r[ck] == r[ck]:
                    ticks.append((x, r[ck]))
            if xs:
                ax.bar(xs, ys, width, label=g, yerr=err if ci else None, capsize=2, **GENDER_STYLE[g])
            for x, v in ticks:
                ax.hlines(v, x - width / 2, x + width / 2, color="black", lw=1.6)
        ax.set_xticks(range(len(attacks)), attacks)
        ax.tick_params(labelbottom=True)        # shared x: attack names under every panel
        ax.set_xlim(-0.6, len(attacks) - 0.4)
        ax.set_title(s, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if log:
            ax.set_yscale("log")
    for ax in axes.flat:
        ax.set_ylabel(ylabel, fontsize=8)
    axes.flat[-1].set_xlabel("attack")
    if metric.endswith("acc") and not log:
        axes.flat[0].set_ylim(0, 1.02)          # accuracies on their whole scale
    handles = [plt.Rectangle((0, 0), 1, 1, **GENDER_STYLE[g]) for g in GENDER_SFX]
    labels = [f"{g} speakers" if g != "all" else "all speakers" for g in GENDER_SFX]
    if clean:
        handles.append(plt.Line2D([], [], color="black", lw=1.6))
        labels.append("clean")
    fig.legend(handles, labels, fontsize=7.5, loc="upper center", ncol=len(handles), frameon=False,
               handlelength=1.5, columnspacing=1.0)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return _save(fig, path, tight=False)


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
    colors = {s: f"C{k % 10}" for k, s in enumerate(sorted(cand.setting.unique()))}  # same colour in every panel
    for ax, a in zip(axes.flat, attacks):
        sub = cand[cand.attack == a]
        for s, ss in sorted(sub.groupby("setting")):
            # several configs may share x (another key swept too): one line per other-key combination
            ss = ss.sort_values("x")
            color = colors[s]
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
        handles, _ = ax.get_legend_handles_labels()
        handles += [plt.Line2D([], [], color="0.3", ls=ls, label=lbl)
                    for ls, lbl in (("-", "all"), ("--", "female"), (":", "male"))]
        ax.legend(handles=handles, fontsize=6)
    for ax in list(axes.flat)[n:]:       # unused cells of the grid only
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
    ax.set_xlabel("attack")
    ax.set_yscale("log")
    # plain numbers (0.2, 5) rather than 2×10⁻¹, 5×10⁰; minor ticks labelled at 2 and 5 of each decade
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
    ax.set_ylabel("attack time per segment (s, log)")
    ax.grid(axis="y", alpha=0.3, which="both")
    return _save(fig, path)


def shrink_png(src: Path, dst: Path, max_px: int = 1000) -> None:
    """Copy a logged figure at most ``max_px`` wide/high, 256 colours (keeps report.html small)."""
    try:
        from PIL import Image
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((max_px, max_px))
            im.quantize(256).save(dst, optimize=True)
    except Exception:  # noqa: BLE001 - keep the original
        shutil.copyfile(src, dst)
