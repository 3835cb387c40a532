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


# x parameters whose 0 is the clean input (a budget, a number of changed cells, of iterations): curves start there
CLEAN_AT_ZERO = ("eps", "th", "max_iter")
GENDER_LINES = (("", "-", "all"), ("_female", "--", "female"), ("_male", ":", "male"))


def _legend_below(fig, handles, ncol: int = 4) -> None:
    """One legend for the whole figure, below the panels (never over the data)."""
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)


def robustness_curves(cf: pd.DataFrame, path: Path) -> Path | None:
    """Adversarial accuracy vs the swept numeric parameter (eps, theta, th, ...), one panel per attack and
    protocol (leaky ``split=paper`` runs in panels of their own). A curve over a budget starts at 0 with the
    clean accuracy (eps, th, max_iter = 0 is the clean input); a line of one point is not drawn. Solid = all
    (band: its 95% CI, where a panel has at most three lines), dashed = female, dotted = male; one legend,
    below the panels."""
    cand = cf[cf.x.notna()].copy()
    if not len(cand):
        return None
    cand["leaky"] = cand.setting.str.contains("split=paper", regex=False)
    panels = []
    for (a, leaky), sub in sorted(cand.groupby(["attack", "leaky"]), key=lambda t: (t[0][1], attack_sort_key(t[0][0]))):
        if sub.x.nunique() > 1 or (sub.x_param.iloc[0] in CLEAN_AT_ZERO and "clean_acc" in sub):
            panels.append((a, leaky, sub))
    if not panels:
        return None
    n = len(panels)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows + (0 if n < rows * cols else 0.9)),
                             squeeze=False)
    drawn: dict[str, object] = {}
    colors: dict[str, str] = {}                         # one colour per line label, the same in every panel
    for ax, (a, leaky, sub) in zip(axes.flat, panels):
        lines = []
        for s, ss in sorted(sub.groupby("setting")):
            ss = ss.sort_values("x")
            # the x parameter and the step that a sweep moves with it (eps_step = eps / 4) are one line
            tied = ss.x_param.iloc[0] + ("|eps_step" if ss.x_param.iloc[0] == "eps" else "")
            others = ss.config.str.replace(r"(^|, )(" + tied + r")=[^,]*", "", regex=True).str.strip(", ")
            for extra, line in ss.groupby(others):
                lines.append((s, extra.strip(", "), line))
        for k_line, (s, extra, line) in enumerate(lines):
            x = line.x.to_numpy(float)
            pts = {sfx: line[f"adv_acc{sfx}"].to_numpy(float) for sfx, _, _ in GENDER_LINES}
            lo, hi = line.adv_acc_lo.to_numpy(float), line.adv_acc_hi.to_numpy(float)
            if line.x_param.iloc[0] in CLEAN_AT_ZERO and "clean_acc" in line and 0 not in x:
                x = np.r_[0.0, x]
                pts = {sfx: np.r_[line[f"clean_acc{sfx}"].mean() if f"clean_acc{sfx}" in line else np.nan, v]
                       for sfx, v in pts.items()}
                lo = np.r_[line.clean_acc_lo.mean() if "clean_acc_lo" in line else np.nan, lo]
                hi = np.r_[line.clean_acc_hi.mean() if "clean_acc_hi" in line else np.nan, hi]
            if len(x) < 2:
                continue                                   # never a lone dot
            label = s + (f" ({extra})" if extra else "")
            color = colors.setdefault(label, f"C{len(colors) % 10}")
            marker = "os^Dv<>"[k_line % 7]
            if len(x) == 2:
                # clean + ONE attacked budget: two marked points, a faint connector (nothing is known between)
                ax.plot(x, pts[""], ":", marker=marker, ms=5, color=color, lw=0.8, alpha=0.8)
                ax.errorbar(x, pts[""], yerr=np.abs(np.vstack([pts[""] - lo, hi - pts[""]])), fmt="none",
                            ecolor=color, capsize=3, lw=1, alpha=0.6)
                drawn.setdefault(label, plt.Line2D([], [], color=color, marker=marker, ms=4, label=label))
                continue
            for sfx, ls, _ in GENDER_LINES:
                ax.plot(x, pts[sfx], ls, marker=marker if sfx == "" else None, ms=3, color=color,
                        alpha=1 if sfx == "" else 0.7)
            drawn.setdefault(label, plt.Line2D([], [], color=color, marker=marker, ms=4, label=label))
            if len(lines) <= 3 and np.isfinite(lo).all() and np.isfinite(hi).all():
                ax.fill_between(x, lo, hi, color=color, alpha=0.12, lw=0)
        one = all(len(ln.x.unique()) == 1 for _, _, ln in lines)
        ax.set_title(a + (" — leaky split=paper" if leaky else "") + (" (one budget)" if one else ""), fontsize=9)
        ax.set_xlabel(sub.x_param.iloc[0] + (" (0 = clean)" if sub.x_param.iloc[0] in CLEAN_AT_ZERO else ""))
        ax.set_ylabel("adversarial accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:       # unused cells of the grid only
        ax.axis("off")
    handles = list(drawn.values()) + [plt.Line2D([], [], color="0.3", ls=ls, label=lbl) for _, ls, lbl in GENDER_LINES]
    handles.append(plt.Line2D([], [], color="0.3", ls=":", marker="o", ms=4, lw=0.8,
                              label="one attacked budget (± 95% CI)"))
    if n < rows * cols:                  # the legend in the first empty cell: outside every panel
        list(axes.flat)[n].legend(handles=handles, loc="center", fontsize=7, frameon=False)
        return _save(fig, path)
    _legend_below(fig, handles, ncol=min(3, len(handles)))
    fig.tight_layout(rect=(0, 0.22 * (1 + len(handles) // 3) / fig.get_figheight(), 1, 1))
    return _save(fig, path, tight=False)


def min_norm_curves(curves: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy vs budget from the minimal perturbations (``report/min_norm.py``): one row of panels per norm
    and protocol (leaky runs apart), columns σ and SNR dB (louder to the right); one colour per attack
    configuration, solid = all with its 95% speaker-bootstrap band, dashed = female, dotted = male; one legend
    below the panels."""
    if curves is None or not len(curves):
        return None
    curves = curves.assign(name=curves.attack + curves.config.map(lambda c: f" {c}" if c and c != "default" else ""))
    panel_rows = sorted(curves.groupby(["leaky", "norm", "setting"]).groups, key=lambda k: (k[0], k[1] != "linf", k[2]))
    axis_cols = [a for a in ("sigma", "snr_db") if (curves.axis == a).any()]
    fig, axes = plt.subplots(len(panel_rows), len(axis_cols), figsize=(5.0 * len(axis_cols),
                             3.1 * len(panel_rows) + 0.5), squeeze=False)
    names = sorted(curves.name.unique(), key=lambda n: (attack_sort_key(n.split(" ")[0]), n))
    colors = {n: f"C{k % 10}" for k, n in enumerate(names)}
    for i, (leaky, norm, setting) in enumerate(panel_rows):
        block = curves[(curves.leaky == leaky) & (curves.norm == norm) & (curves.setting == setting)]
        for j, axis in enumerate(axis_cols):
            ax = axes[i, j]
            for name, c in block[block.axis == axis].groupby("name"):
                for g, ls in (("all", "-"), ("female", "--"), ("male", ":")):
                    cg = c[c.gender == g]
                    if len(cg) < 2:
                        continue
                    ax.plot(cg.budget, cg.acc, ls, color=colors[name], lw=1.6 if g == "all" else 1.1,
                            alpha=1 if g == "all" else 0.75)
                    if g == "all":
                        ax.fill_between(cg.budget, cg.acc_lo, cg.acc_hi, color=colors[name], alpha=0.13, lw=0)
            unit = {"linf": "L∞", "l2": "L2"}[norm]
            ax.set_xlabel(f"budget {unit} (σ, 0 = clean)" if axis == "sigma" else
                          f"budget: SNR of the audio change (dB), minimal {unit} perturbation")
            if axis == "snr_db":
                ax.invert_xaxis()
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))
            if axis == "sigma":
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.set_ylabel("accuracy")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{setting}{' — leaky split=paper' if leaky else ''}: minimal {unit}", fontsize=9)
    handles = [plt.Line2D([], [], color=colors[n], lw=2, label=n) for n in names] + \
        [plt.Line2D([], [], color="0.3", ls=ls, label=g) for g, ls in (("all", "-"), ("female", "--"), ("male", ":"))]
    _legend_below(fig, handles, ncol=min(5, len(handles)))
    fig.tight_layout(rect=(0, 0.3 * (1 + (len(handles) - 1) // 5) / fig.get_figheight(), 1, 1))
    return _save(fig, path, tight=False)


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
