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
# the clean-accuracy tick over each bar: a darker shade of the bar's colour and its own marker, so the three
# groups' ticks tell apart (they were all black)
CLEAN_TICK = {"all": dict(color="black", marker="o"), "female": dict(color="#7a3300", marker="v"),
              "male": dict(color="#0b5944", marker="^")}


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
                # a bar of height 0 is invisible: a thick line at 0 says "ran, reached 0" (a cell not run has none)
                zero = [x for x, y in zip(xs, ys) if y == 0]
                if zero and not log:
                    ax.hlines([0] * len(zero), [x - width * 0.45 for x in zero], [x + width * 0.45 for x in zero],
                              lw=3.5, zorder=3, **GENDER_STYLE[g])
            for x, v in ticks:
                ax.hlines(v, x - width / 2, x + width / 2, lw=1.6, color=CLEAN_TICK[g]["color"], zorder=4)
                ax.plot(x, v, ls="", ms=3.5, zorder=4, **CLEAN_TICK[g])
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
        axes.flat[0].set_ylim(-0.03, 1.03)      # accuracies on their whole scale; a line at 0 stays visible
    elif not log:
        axes.flat[0].set_ylim(bottom=min(-0.02 * axes.flat[0].get_ylim()[1], axes.flat[0].get_ylim()[0]))
    handles = [plt.Rectangle((0, 0), 1, 1, **GENDER_STYLE[g]) for g in GENDER_SFX]
    labels = [f"{g} speakers" if g != "all" else "all speakers" for g in GENDER_SFX]
    if clean:
        for g in GENDER_SFX:
            handles.append(plt.Line2D([], [], lw=1.6, ms=3.5, **CLEAN_TICK[g]))
            labels.append(f"clean: {g}")
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


def forest(rows: pd.DataFrame, path: Path, xlabel: str, title: str) -> Path | None:
    """A forest plot: one line per comparison (``label``), its difference (``diff``) as a point and its 95% CI
    (``lo``, ``hi``) as a line, a zero line, and the comparisons significant after Holm (``sig``) drawn filled
    in red with a star; ``group`` (optional) separates blocks with a rule and a heading."""
    rows = rows[rows["diff"].notna()].reset_index(drop=True)
    if rows.empty:
        return None
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 1.1 + 0.19 * n + 0.25 * rows.get("group", pd.Series([""])).nunique()))
    y = np.arange(n)[::-1].astype(float)
    ax.axvline(0, color="0.2", lw=1, zorder=1)
    for yi, r in zip(y, rows.itertuples()):
        sig = bool(r.sig)
        color = "#c0392b" if sig else "0.25"
        if r.lo == r.lo and r.hi == r.hi:
            ax.hlines(yi, r.lo, r.hi, color=color, lw=1.6 if sig else 1.1, zorder=2)
        ax.plot(r.diff, yi, "o", ms=5, color=color, mfc=color if sig else "white", zorder=3)
        if sig:
            ax.annotate("*", (r.hi if r.hi == r.hi else r.diff, yi), xytext=(4, -4), textcoords="offset points",
                        color=color, fontsize=11, fontweight="bold")
    if "group" in rows:
        prev = None
        for yi, g in zip(y, rows.group):
            if g != prev and prev is not None:
                ax.axhline(yi + 0.5, color="0.8", lw=0.8)
            prev = g
    ax.set_yticks(y, rows.label, fontsize=7)
    ax.set_ylim(-0.8, n - 0.2)
    lim = max(0.05, np.nanmax(np.abs(np.concatenate([rows.lo.to_numpy(float), rows.hi.to_numpy(float),
                                                      rows["diff"].to_numpy(float)]))))
    ax.set_xlim(-lim * 1.12, lim * 1.12)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("comparison", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    handles = [plt.Line2D([], [], marker="o", color="0.25", mfc="white", label="not significant (Holm)"),
               plt.Line2D([], [], marker="o", color="#c0392b", label="* significant after Holm, α = 0.05")]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    return _save(fig, path, tight=False)


def _short(setting: str) -> str:
    """``emodb (split=speaker_cv)`` → ``emodb speaker_cv``: labels a forest plot can afford."""
    return setting.replace(" (split=", " ").replace("(", "").replace(")", "")


def gap_forests(t, folder: Path) -> dict:
    """The gender, protocol and language gaps as forest plots: {report section: (path, caption)}. Reads the
    gap tables (``table03``/``table47``, ``protocol_gap``, ``Tables.tests``) and their Holm-corrected p-values
    as the tables report them."""
    from . import stats
    from .significance import clean_gender_holm, protocol_holm
    from .summary import _name
    a = stats.ALPHA
    out = {}
    items = {i.key: i.data for i in t.items}
    rows = []
    t3 = items.get("table03_clean_accuracy")
    if t3 is not None and len(t3) and "gap" in t3:
        adj = clean_gender_holm(t3) if "p" in t3 else np.full(len(t3), np.nan)
        rows += [{"label": f"clean · {_short(r.setting)}", "diff": r.gap, "lo": r.gap_lo, "hi": r.gap_hi,
                  "sig": h < a, "group": "clean"} for r, h in zip(t3.itertuples(), adj)]
    t47 = items.get("table47_gender_accuracy")
    if t47 is not None and len(t47):
        rows += [{"label": f"{_name(r.attack)} · {_short(r.setting)}", "diff": r.gap, "lo": r.gap_lo,
                  "hi": r.gap_hi, "sig": r.p_holm < a, "group": r.attack} for r in t47.itertuples()]
    if rows:
        p = forest(pd.DataFrame(rows), folder / "forest_gender.png", "female − male accuracy (95% CI)",
                   "Female − male: clean accuracy, then each attack's best configuration")
        if p:
            out["Female vs male"] = (p, "Forest plot: female − male accuracy per setting, clean and per attack's "
                                        "best configuration (point, 95% CI over speakers; filled red with * = "
                                        "significant after Holm)")
    d = items.get("protocol_gap")
    if d is not None and len(d):
        clean, adj_c, adj_a = protocol_holm(d)
        rows = [{"label": f"clean · {r.dataset}", "diff": r.clean_acc_diff, "lo": r.clean_acc_diff_lo,
                 "hi": r.clean_acc_diff_hi, "sig": h < a, "group": "clean"}
                for r, h in zip(clean.itertuples(), adj_c)]
        rows += [{"label": f"{_name(r.attack)} {r.config} · {r.dataset}", "diff": r.adv_acc_diff,
                  "lo": r.adv_acc_diff_lo, "hi": r.adv_acc_diff_hi, "sig": h < a, "group": r.dataset}
                 for r, h in zip(d.itertuples(), adj_a)]
        free = d.leakage_free.iloc[0]
        p = forest(pd.DataFrame(rows), folder / "forest_protocol.png", f"split=paper − split={free} accuracy (95% CI)",
                   f"Protocol gap: leaky split=paper − split={free}")
        if p:
            out["Protocol gap"] = (p, f"Forest plot: accuracy under the leaky split=paper minus split={free}, clean "
                                      "and per configuration (95% CI; filled red with * = significant after Holm "
                                      "within clean accuracy or within adversarial accuracy)")
    lt = t.tests
    if lt is not None and len(lt):
        rows = []
        for r in lt.itertuples():
            pair = f"{_short(r.a).split(' ')[0]} − {_short(r.b).split(' ')[0]} {_short(r.a).partition(' ')[2]}"
            if r.attack == "clean":
                rows.append({"label": f"clean · {pair}", "diff": r.clean_diff, "lo": r.clean_lo, "hi": r.clean_hi,
                             "sig": getattr(r, "clean_p_holm", np.nan) < a, "group": "clean"})
            else:
                rows.append({"label": f"{_name(r.attack)} · {pair}", "diff": r.diff, "lo": r.lo, "hi": r.hi,
                             "sig": r.p_holm < a, "group": r.attack})
        df = pd.DataFrame(rows)
        df["_o"] = [-1 if g == "clean" else attack_sort_key(g)[0] for g in df.group]
        df = df.sort_values(["_o", "label"], kind="stable").drop(columns="_o")
        p = forest(df, folder / "forest_language.png", "accuracy of corpus a − corpus b (95% CI)",
                   "Between corpora (same protocol): clean, then each attack's best configuration")
        if p:
            out["Between languages"] = (p, "Forest plot: accuracy difference between corpora under the same "
                                           "protocol, clean and per attack (95% CI over speakers; filled red with * = "
                                           "significant after Holm)")
    return out


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
