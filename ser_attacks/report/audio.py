"""The report's audio section: SNR and realized-accuracy tables, accuracy vs SNR, and audio players.

Reads what attack runs log with ``ser_attacks.inputs`` (metrics ``audio_snr_db``, ``realized_adv_acc[_gl]``,
``realized_clean_acc_gl`` per gender; artifacts ``audio/index.json`` + WAVs). Runs without them (older runs,
``input.realize=false``) are simply absent from this section.

* ``section(runs, out, ...)`` → Markdown lines (tables, figure, players as links ``[original](audio/….flac)``)
  and writes ``tables/audio_*.csv``, ``figures/accuracy_vs_snr.png``, ``audio/*.flac`` (lossless 16-bit).
* ``embed_players(html, out)`` → the rendered HTML with each such link (an ``<a href>`` or, from a renderer that
  leaves links as text, the literal ``[label](audio/….flac)``) replaced by an ``<audio controls>`` player whose
  source is embedded as a ``data:audio/flac`` URI, so the HTML stays one self-contained file.
* ``python -m ser_attacks.report.audio_check report.html`` loads the page in headless Chromium and reports
  every player's decoded duration (and screenshots the audio section with ``--screenshot``).
"""
from __future__ import annotations

import base64
import html as htmllib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import SFX
from .collect import Runs, download
from .format import MISSING, attack_sort_key
from .render import md_table

log = logging.getLogger(__name__)
KINDS = (("original", "original"), ("adversarial", "adversarial"), ("perturbation_x10", "perturbation ×10"))


def input_of(params: dict) -> str:
    return str(params.get("input.name", "spectrogram"))


def _cell(row, metric: str, digits: int = 3) -> str:
    """'all (female / male)' of one metric, '—' where missing."""
    def f(g):
        v = row.get(f"{metric}{SFX[g]}", np.nan)
        return MISSING if v is None or v != v else f"{v:.{digits}f}"
    if f("all") == MISSING:
        return MISSING
    return f"{f('all')} ({f('female')} / {f('male')})"


def _setting(text: str) -> str:
    """The report's setting label without ``input=…`` / ``input.*=…`` (each audio table and panel is one input;
    an input parameter that varies is shown in the config column instead)."""
    out = re.sub(r"(, )?input(\.\w+)?=[^,)]+", "", str(text)).replace("(, ", "(")
    return out.replace(" ()", "")


def _config(text: str) -> str:
    """The report's config label without unset keys, and without eps/eps_step where an SNR budget replaced them."""
    parts = [p for p in str(text).split(", ") if not p.endswith("=None")]
    if any(p.startswith("snr_db=") for p in parts):
        parts = [p for p in parts if not p.startswith(("eps=", "eps_step="))]
    return ", ".join(parts) or "default"


def configurations(runs: Runs) -> pd.DataFrame:
    """One row per configuration (seeds averaged) of the runs that logged audio metrics."""
    df = runs.df
    if "audio_snr_db" not in df and "realized_adv_acc" not in df:
        return pd.DataFrame()
    df = df.assign(input=[input_of(p) for p in df.params])
    has = np.zeros(len(df), bool)
    for m in ("audio_snr_db", "realized_adv_acc", "n_audio_unchanged"):
        if m in df:
            has |= df[m].notna().to_numpy()
    df = df[has]
    rows = []
    metrics = sorted(c for c in df.columns if any(c.startswith(p) for p in (
        "clean_acc", "adv_acc", "realized_", "audio_snr_db", "n_audio_unchanged", "n_samples", "snr_budget_db")))
    for _, sub in df.groupby("group", sort=False):
        first = sub.iloc[0]
        config = _config(first.config)
        varying = dict(re.findall(r"input\.(\w+)=([^,)]+)", first.setting))
        if first.input == "waveform" and "snr_db=" in config and "step_ratio" in varying:
            config += f", step_ratio={varying['step_ratio']}"
        row = {"attack": first.attack, "input": first.input, "setting": _setting(first.setting),
               "dataset": first.dataset, "config": config, "n_runs": len(sub), "run_ids": ",".join(sub.run_id)}
        row.update({m: float(np.nanmean(sub[m])) if sub[m].notna().any() else np.nan for m in metrics})
        row["n_samples_total"] = float(sub.n_samples.sum()) if "n_samples" in sub and sub.n_samples.notna().any() \
            else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(["input", "attack", "setting", "config"], key=lambda c: c.map(attack_sort_key)
                           if c.name == "attack" else c).reset_index(drop=True)


def _segments(cf: pd.DataFrame) -> list[str]:
    """The attacked segments a row's numbers pool: every run's (folds and seeds), ``50 (5 runs)``."""
    return [MISSING if r.n_samples_total != r.n_samples_total else
            f"{r.n_samples_total:.0f}" + (f" ({r.n_runs} runs)" if r.n_runs > 1 else "") for r in cf.itertuples()]


def tables(cf: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame, pd.DataFrame, str]]:
    """(key, title, numbers, display, note) for the spectrogram-realized and the waveform tables."""
    out = []
    spec = cf[(cf.input == "spectrogram") & cf.get("realized_adv_acc", pd.Series(np.nan, cf.index)).notna()] \
        if len(cf) else cf
    if len(spec):
        disp = pd.DataFrame({
            "attack": spec.attack, "config": spec.config, "setting": spec.setting,
            "segments": _segments(spec),
            "clean acc": [_cell(r, "clean_acc") for _, r in spec.iterrows()],
            "adv acc (spectrogram)": [_cell(r, "adv_acc") for _, r in spec.iterrows()],
            "realized acc (phase kept)": [_cell(r, "realized_adv_acc") for _, r in spec.iterrows()],
            "realized acc (Griffin-Lim)": [_cell(r, "realized_adv_acc_gl") for _, r in spec.iterrows()],
            "clean acc (Griffin-Lim)": [_cell(r, "realized_clean_acc_gl") for _, r in spec.iterrows()],
            "SNR dB": [_cell(r, "audio_snr_db", 1) for _, r in spec.iterrows()],
            "unchanged": [_cell(r, "n_audio_unchanged", 0) for _, r in spec.iterrows()]})
        out.append(("audio_realized", "Spectrogram attacks as sound: realized accuracy and SNR", spec, disp,
                    "Each cell: all (female / male), the mean over the row's runs; segments: attacked in all of them. "
                    "Adversarial spectrograms resynthesized as audio (the Mel-domain "
                    "change as a gain on the segment's STFT, original phase kept; Griffin-Lim from the same magnitude "
                    "for comparison), re-analysed by the librosa front end and classified again. SNR: of the "
                    "resynthesized waveform change (phase-kept version; mean over segments the attack changed; "
                    "`unchanged` counts segments it left as they were). Clean acc (Griffin-Lim): the clean segments "
                    "through Griffin-Lim alone, the vocoder's own damage."))
    wav = cf[cf.input == "waveform"] if len(cf) else cf
    if len(wav):
        disp = pd.DataFrame({
            "attack": wav.attack, "config": wav.config, "setting": wav.setting,
            "segments": _segments(wav),
            "SNR budget dB": wav.get("snr_budget_db", pd.Series(np.nan, wav.index)).map(
                lambda v: MISSING if v != v else f"{v:g}"),
            "clean acc": [_cell(r, "clean_acc") for _, r in wav.iterrows()],
            "adv acc (audio)": [_cell(r, "adv_acc") for _, r in wav.iterrows()],
            "SNR dB (measured)": [_cell(r, "audio_snr_db", 2) for _, r in wav.iterrows()],
            "min SNR dB": [_cell(r, "audio_snr_db_min", 2) for _, r in wav.iterrows()]})
        out.append(("audio_waveform", "Waveform attacks: accuracy and SNR", wav, disp,
                    "Each cell: all (female / male), the mean over the row's runs; segments: attacked in all of them. "
                    "The attack perturbs the 3 s segment's audio through the "
                    "differentiable front end; SNR = 10·log10(Σx²/Σδ²) per segment, mean (and minimum) over segments."))
    return out


def accuracy_vs_snr(cf: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy of the SOUND vs its SNR: waveform attacks (adversarial accuracy) and spectrogram attacks
    (realized accuracy, phase kept); one panel per attack and input, female and male, clean accuracy dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if cf.empty or "audio_snr_db" not in cf:
        return None
    cf = cf[cf.audio_snr_db.notna()]
    panels = sorted({(a, i) for a, i in zip(cf.attack, cf.input)}, key=lambda p: (p[1] != "waveform",
                                                                                   attack_sort_key(p[0])))
    if not panels:
        return None
    cols = min(len(panels), 3)
    rows = int(np.ceil(len(panels) / cols))
    settings = sorted(cf.setting.unique())
    style = {"female": dict(color="C3", marker="o", ls="-", ms=8, mfc="none", mew=1.5),
             "male": dict(color="C0", marker="s", ls="--", ms=5)}
    several = len(settings) > 1        # then colour = setting, and the gender keys are drawn in gray
    keys = {g: {**style[g], "color": "gray"} if several else style[g] for g in style}
    handles = [plt.Line2D([], [], **keys[g], label=g) for g in ("female", "male")]
    handles += [plt.Line2D([], [], color="gray", ls=":",
                           label=f"clean accuracy (per {'setting' if several else 'gender'} colour)")]
    if several:
        handles += [plt.Line2D([], [], color=f"C{k % 10}", lw=3, label=s) for k, s in enumerate(settings)]
    ncol = min(len(handles), 4)
    head = 0.22 * int(np.ceil(len(handles) / ncol)) + 0.35         # inches above the panels: legend rows + title
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows + head), squeeze=False, sharey=True)
    xs = cf[[c for c in ("audio_snr_db_female", "audio_snr_db_male") if c in cf]].to_numpy(float)
    lo, hi = np.nanmin(xs), np.nanmax(xs)            # one SNR axis for every panel, so panels compare
    pad = max(2.0, 0.05 * (hi - lo), (10.0 - (hi - lo)) / 2)
    for ax, (a, inp) in zip(axes.flat, panels):
        sub = cf[(cf.attack == a) & (cf.input == inp)]
        acc = "adv_acc" if inp == "waveform" else "realized_adv_acc"
        for k, s in enumerate(settings):
            ss = sub[sub.setting == s]
            for g in ("female", "male"):
                x, y = ss.get(f"audio_snr_db_{g}"), ss.get(f"{acc}_{g}")
                if x is None or y is None or not (x.notna() & y.notna()).any():
                    continue
                order = np.argsort(x.to_numpy())
                st = dict(style[g])
                if several:                 # colour = setting, marker and line = gender
                    st["color"] = f"C{k % 10}"
                ax.plot(x.to_numpy()[order], y.to_numpy()[order], **st)
                clean = ss.get(f"clean_acc_{g}")
                if clean is not None and clean.notna().any():
                    ax.axhline(float(clean.mean()), color=st["color"], ls=":", lw=1, alpha=0.8)
        ax.set_title(f"{a} ({'waveform' if inp == 'waveform' else 'spectrogram, as sound'})", fontsize=10)
        ax.set_xlabel("SNR of the audio perturbation (dB)")
        ax.set_xlim(lo - pad, hi + pad)
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy on the adversarial audio")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.997))
    height = fig.get_figheight()
    fig.suptitle("Accuracy of the adversarial audio vs the SNR of its perturbation (right = quieter)", fontsize=10,
                 y=1 - (head - 0.3) / height)
    fig.tight_layout(rect=(0, 0, 1, 1 - head / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _players(runs: Runs, cf: pd.DataFrame, out: Path, cache: Path | None, max_runs: int,
             shown: dict | None = None) -> list[str]:
    """Per attack × input × setting, the configuration with the lowest accuracy of the sound (ties: lower accuracy
    on the model input, then higher SNR): its spectrogram triplets and, per logged sample, players for
    original / adversarial / perturbation ×10."""
    if cf.empty:
        return []
    acc = np.where(cf.input == "waveform", cf.get("adv_acc", np.nan), cf.get("realized_adv_acc", np.nan))
    # lowest accuracy of the sound, then of the model input (a stronger attack), then the quietest
    pick = cf.assign(_acc=acc).sort_values(["_acc", "adv_acc", "audio_snr_db"], ascending=[True, True, False],
                                           na_position="last")
    pick = pick.groupby(["attack", "input", "setting"], sort=False).head(1)
    pick = pick.sort_values(["input", "attack"], key=lambda c: c.map(attack_sort_key) if c.name == "attack" else c,
                            ascending=[False, True]).head(max_runs)
    md: list[str] = []
    (out / "audio").mkdir(exist_ok=True)
    for r in pick.itertuples():
        rid = r.run_ids.split(",")[0]
        index = download(runs.uri, rid, "audio/index.json", cache)
        if index is None:
            continue
        entries = json.loads(Path(index).read_text())
        what = "waveform attack" if r.input == "waveform" else "spectrogram attack, resynthesized"
        md += ["", f"### {r.attack} {r.config} on {r.setting} ({what}; run {rid[:8]})", ""]
        if rid in (shown or {}):      # the same run's figure is already in the report (Spectrograms): once
            md += [f"Spectrograms of this run: `figures/{shown[rid]}` in *Spectrograms* above.", ""]
            spec = None
        else:
            spec = download(runs.uri, rid, "spectrograms.png", cache)
        if spec is not None:
            dst = out / "figures" / f"audio_spectrograms_{rid[:8]}.png"
            from .figures import shrink_png
            shrink_png(Path(spec), dst)
            md += [f"![{r.attack} {r.config} on {r.setting}: original / adversarial / difference "
                   f"(normalized log-Mel)](figures/{dst.name})", ""]
        head = ["sample", "prediction", "SNR dB"] + [label for _, label in KINDS]
        rows = []
        for e in entries:
            cells = []
            for kind, label in KINDS:
                src = download(runs.uri, rid, e["files"][kind], cache)
                if src is None:
                    cells.append(MISSING)
                    continue
                name = f"{rid[:8]}_{Path(e['files'][kind]).stem}.flac"
                _to_flac(Path(src), out / "audio" / name)
                cells.append(f"[{label}](audio/{name})")
            pred = f"{e['label']} → {e['adv_pred']}"
            if "realized_pred" in e:
                pred += f" (as sound: {e['realized_pred']})"
            snr = MISSING if e.get("snr_db") is None else f"{e['snr_db']:.1f}"
            rows.append([f"{e['gender']} {e['speaker']}", pred, snr, *cells])
        md.append(md_table(pd.DataFrame(rows, columns=head)).rstrip("\n"))
    return md


def _to_flac(src: Path, dst: Path) -> None:
    import soundfile as sf
    y, sr = sf.read(str(src), dtype="int16")
    sf.write(str(dst), y, sr, format="FLAC", subtype="PCM_16")


def section(runs: Runs, out: Path, cache: Path | None = None, max_runs: int = 12,
            shown: dict | None = None) -> tuple[list[str], list]:
    """(Markdown lines of the audio section, [(key, numbers)] for CSV) — empty when no run logged audio.
    ``shown``: run id → figure name of the runs whose spectrograms the report shows already."""
    cf = configurations(runs)
    if cf.empty:
        return [], []
    md = ["", "## Adversarial audio", "",
          "What the attacks sound like and whether they survive as sound. Spectrogram attacks: each adversarial "
          "spectrogram is turned back into audio and classified again (`input.realize`); waveform attacks "
          "(`input=waveform`) perturb the audio directly, with the budget as an SNR (`attack.snr_db`)."]
    csv = []
    for key, title, data, disp, note in tables(cf):
        data.to_csv(out / "tables" / f"{key}.csv", index=False)
        csv.append((key, data))
        md += ["", f"### {title}", "", note, "", md_table(disp).rstrip("\n"),
               f"\nCSV: [tables/{key}.csv](tables/{key}.csv)"]
    fig = accuracy_vs_snr(cf, out / "figures" / "accuracy_vs_snr.png")
    if fig is not None:
        md += ["", "![Accuracy of the adversarial audio vs the SNR of its perturbation, per attack; female solid, "
               "male dashed, clean accuracy dotted](figures/accuracy_vs_snr.png)"]
    players = _players(runs, cf, out, cache, max_runs, shown)
    if players:
        md += ["", "### Listen", "", "Per attack, the configuration whose sound fooled the model most: original, "
               "adversarial and the perturbation amplified ×10 (clipped to full scale), the first attacked segment "
               "of each gender (16-bit FLAC); the spectrogram figure above it starts with the same segments (same "
               "speaker and labels in the row titles). For spectrogram attacks the adversarial audio is the "
               "resynthesized one (phase kept), and \"as sound\" is its prediction."] + players
    return md, csv


_LINK = re.compile(r'<a href="(audio/[^"]+\.flac)"[^>]*>([^<]*)</a>|\[([^\]]+)\]\((audio/[^)\s]+\.flac)\)')


def embed_players(page: str, out: Path) -> str:
    """Replace every link to ``audio/*.flac`` in the rendered HTML by an embedded ``<audio>`` player."""
    def repl(m: re.Match) -> str:
        path, label = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        f = out / htmllib.unescape(path)
        if not f.exists():
            return m.group(0)
        data = base64.b64encode(f.read_bytes()).decode()
        return (f'<span class="player"><audio controls preload="metadata" title="{htmllib.escape(label)}" '
                f'src="data:audio/flac;base64,{data}"></audio><br><small>{label}</small></span>')
    return _LINK.sub(repl, page)
