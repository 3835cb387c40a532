"""The whole report: collect → tables → figures → text → files (+ a ``run_type=report`` MLflow run)."""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import audio, checklist, figures, min_norm, stats
from .collect import SEED_KEYS, Runs, collect, download, load_samples, tag_texts
from .format import FEW, MISSING, attack_sort_key
from .plan import load as load_plan
from .render import md_table, md_to_html
from .significance import significance_lines
from .summary import effect_list, summary_lines
from .tables import Tables, build_tables

log = logging.getLogger(__name__)


@dataclass
class Report:
    out: Path
    runs: Runs
    tables: Tables
    figures: dict = field(default_factory=dict)
    run_id: str | None = None

    @property
    def md(self) -> Path:
        return self.out / "report.md"

    @property
    def html(self) -> Path:
        return self.out / "report.html"


def _checklist_lines(cl: pd.DataFrame) -> list[str]:
    """The checklist section: what is checked, the verdict counts and FLAGs, then one table per setting."""
    lines = ["Carlini et al., *On Evaluating Adversarial Robustness* (2019): a robustness number is only "
             "trusted when these sanity checks hold. Differences are paired on the segments both "
             "configurations attacked, with a speaker-level 95% CI; *beyond its CI* = the CI excludes 0. "
             "**budget**: accuracy never rises with eps / th / gamma, and is not identical at every budget; "
             "**iterations**: more `max_iter` never raises it, the grid's last step that at least doubles it "
             "changes it within its CI; "
             f"**unbounded → ~0**: DeepFool, C&W, JSMA, Boundary (and L∞ attacks, FGSM included, at eps ≥ "
             f"{checklist.LARGE_EPS:g}) leave ≤ {checklist.NEAR_ZERO} of the correctly classified segments correct, "
             "decided on the interval (*undecided* when it straddles the threshold); **iterative ≥ "
             "single-step**: BIM/PGD/AutoAttack reach FGSM's accuracy at equal eps; **beats noise**: fewer "
             "segments correct and unflipped than `attack=noise` (uniform ±eps) at the same L∞ budget, beyond CI (FLAG "
             "when no fewer on the same segments, *undecided* when fewer but not beyond CI); "
             "Pixel against sparse noise changing as many cells (`attack.cells=<th>`; without it *n/a*, not judged); "
             "**reference**: "
             "L∞ attacks agree with `attack=autoattack` (APGD-CE + APGD-DLR) at the same eps — a weaker result "
             "is reported as FLAG, not hidden; **gradient masking** (Athalye et al. 2018): (a) accuracy not monotone "
             "in eps, (b) a black-box (Boundary, Pixel, Square) or transfer attack beating the white-box gradient "
             "attacks at an equal or larger L∞ budget, (c) noise beating a gradient attack, (d) a gradient attack on a "
             "randomized defense without EOT or on a non-differentiable one without BPDA (run tags). "
             "*n/a* names the run that is missing.", ""]
    if cl.empty:
        return lines + ["_(no configuration to check)_"]
    for setting, sub in cl.groupby("setting", sort=True):
        flags = sub[sub.verdict == "FLAG"]
        lines += [f"### {setting}: {checklist.counts(sub)}", ""]
        if len(flags):
            lines += ["FLAGs: " + "; ".join(f"{r.attack} {r.config} ({r.check})" for r in flags.itertuples()) + ".",
                      ""]
        lines.append(md_table(sub.drop(columns="setting")).rstrip("\n"))
        lines.append("")
    return lines + [csv_link("checklist")]


def csv_link(key: str) -> str:
    """The line under a table: a relative link to its CSV (``tables/<key>.csv`` beside report.html)."""
    return f"CSV: [tables/{key}.csv](tables/{key}.csv)"


def _header(runs: Runs, name: str) -> list[str]:
    df = runs.df
    f = runs.filters
    filt = [f"experiment `{runs.experiment}`"]
    if f.get("sweeps"):
        filt.append("sweep(s) " + ", ".join(f"`{s}`" for s in f["sweeps"]))
    if f.get("dataset"):
        filt.append(f"dataset `{f['dataset']}`")
    filt += [f"tag `{t}`" for t in tag_texts(f.get("tags"))]
    sweeps = sorted({s for s in df.sweep_id if s})
    effect_none = df[df.attack_effect == "none"]
    effect_undef = df[df.attack_effect == "undefined"]
    lines = [f"# {name}", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `python -m ser_attacks.report` from "
             f"`{runs.uri}`; filters: {', '.join(filt)}.",
             "",
             f"**{len(df)} FINISHED attack runs** ({df.attack.nunique()} attacks: "
             f"{', '.join(sorted(df.attack.unique(), key=attack_sort_key))}; settings: "
             f"{', '.join(sorted(df.setting.unique()))}; model(s): {', '.join(sorted(df.model.unique()))}) "
             f"from {len(sweeps)} sweep(s){': ' + ', '.join(f'`{s}`' for s in sweeps) if sweeps else ''}. "
             f"Runs that differ only by the seed are aggregated (mean ± std over seeds), folds of a "
             f"cross-validation pooled; "
             f"`{MISSING}` marks a cell that was not run (or not finished)."]
    extra_seeds = [k for k in runs.seed_keys if k not in SEED_KEYS]
    if extra_seeds:
        lines += ["", "Seed-derived keys (equal to `seed` in every run), aggregated like the seed: "
                  + ", ".join(f"`{k}`" for k in extra_seeds) + "."]
    if runs.setting_keys:
        lines += ["", "Settings differ in " + ", ".join(f"`{k}`" for k in runs.setting_keys)
                  + " as well as the dataset; they are kept apart."]
    if len(effect_none):
        lines += ["", f"{len(effect_none)} run(s) had **no effect** (tag `attack_effect=none`): listed by "
                  "configuration under *Flags* in the Overview."]
    if len(effect_undef):
        lines += ["", f"{len(effect_undef)} run(s) had an **undefined effect** (tag `attack_effect=undefined`: no "
                  "attacked segment was classified correctly, so the run cannot show what the attack does), by "
                  "configuration:", "", *[ln.strip() for ln in effect_list(effect_undef).split("\n") if ln.strip()]]
    folds = df[df.fold != ""]
    if len(folds):
        lines += ["", "Cross-validation (`split=speaker_cv`): the runs of "
                  + ", ".join(f"{s} (folds {', '.join(sorted(set(sub.fold), key=int))})"
                              for s, sub in folds.groupby("setting"))
                  + " are pooled per configuration: every fold tests other speakers, so together they test each "
                  "speaker once. A configuration missing a fold is pooled over the folds it has (column `folds`)."]
    return lines


def build_report(uri: str | None = None, experiment: str = "ser-attacks", sweeps=(), dataset: str | None = None,
                 tags: dict | None = None, out: str | Path = "reports/report", name: str | None = None,
                 log_run: bool = True, cache: Path | None = None, max_spectrograms: int = 24,
                 results=None, plan=None) -> Report:
    """``results``: export folders (report/export.py) to read instead of MLflow (nothing is logged then);
    ``plan``: an analysis plan file (report/plan.py) whose comparisons the report marks planned."""
    plan = load_plan(plan) if plan else None
    if results:
        from .export import load_results
        runs, samples = load_results(results)
        log_run = False
    else:
        runs, samples = collect(uri, experiment, sweeps, dataset, tags), None
    if not len(runs):
        raise SystemExit(f"error: no FINISHED attack runs in experiment {experiment!r} at "
                         f"{runs.uri} matching {runs.filters}")
    final = Path(out)
    if final.exists() and any(final.iterdir()) and not (final / "report.md").exists():
        raise SystemExit(f"error: {final} exists and is not a report folder (no report.md); choose another --out")
    # built in a sibling folder and moved into place at the end: a failure leaves the previous report whole
    final.parent.mkdir(parents=True, exist_ok=True)
    name = name or f"ser-attacks report: {final.name}"
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        t, figs = _write_report(runs, samples, out, name, cache, max_spectrograms, plan)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _replace_report(out, final)
    rep = Report(final, runs, t, {k: final / "figures" / v.name for k, v in figs.items()})
    if log_run:
        rep.run_id = _log_report_run(runs, final, name)
    return rep


REPORT_PARTS = ("tables", "figures", "audio", "report.md", "report.html")


def _replace_report(stage: Path, final: Path) -> None:
    """Move the report built in ``stage`` to ``final``, replacing a previous report's parts (nothing else
    there: other files in the folder stay)."""
    final.mkdir(exist_ok=True)
    for part in REPORT_PARTS:
        old = final / part
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        if (stage / part).exists():
            (stage / part).rename(old)
    shutil.rmtree(stage, ignore_errors=True)


def _write_report(runs: Runs, samples, out: Path, name: str, cache: Path | None,
                  max_spectrograms: int, plan=None) -> tuple[Tables, dict]:
    """Tables, figures, report.md and report.html written into the (empty) folder ``out``."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    if samples is None:
        samples = load_samples(runs.uri, runs.df.run_id, cache)
    t = build_tables(runs, samples, plan)
    cl = checklist.checklist(t.configs, t.samples)

    for item in t.items:
        item.data.drop(columns=[c for c in ("params",) if c in item.data]).to_csv(
            out / "tables" / f"{item.key}.csv", index=False)
    t.configs.drop(columns="params").to_csv(out / "tables" / "configurations.csv", index=False)
    runs.df.drop(columns="params").to_csv(out / "tables" / "runs.csv", index=False)
    cl.to_csv(out / "tables" / "checklist.csv", index=False)

    figs = {}
    figs["adv_acc"] = figures.grouped_bars(t.best, "adv_acc", "adversarial accuracy (best config)",
                                           out / "figures" / "fig05_adv_accuracy.png", clean="clean_acc")
    pert_db = "perturbation_db" in t.best and t.best.perturbation_db.notna().any()
    figs["perturbation"] = figures.grouped_bars(
        t.best, "perturbation_db" if pert_db else "perturbation",
        "mean |δ| in dB of log-Mel (best config)" if pert_db else "mean |x_adv − x| (best config)",
        out / "figures" / "fig06_perturbation.png", ci=False)
    figs["curves"] = figures.robustness_curves(t.configs, out / "figures" / "robustness_curves.png")
    figs["time"] = figures.time_per_attack(t.configs, out / "figures" / "time_per_attack.png")
    forests = figures.gap_forests(t, out / "figures")
    spec = []
    for r in t.best.sort_values(["attack", "setting"], key=lambda c: c.map(attack_sort_key) if c.name == "attack"
                                else c).itertuples():
        if len(spec) >= max_spectrograms:
            break
        rid = r.run_ids.split(",")[0]
        p = download(runs.uri, rid, "spectrograms.png", cache)
        if p is not None:
            dst = out / "figures" / f"spectrograms_{r.attack}_{len(spec):02d}.png"
            figures.shrink_png(p, dst)
            spec.append((r, rid, dst))
    figs = {k: v for k, v in figs.items() if v is not None}

    md = _header(runs, name)
    # issue 15: the report opens on its summary (what was attacked, headline table + Figure 5, flags)
    md = md[:2] + summary_lines(runs, t, f"figures/{figs['adv_acc'].name}" if "adv_acc" in figs else None, cl) \
        + ["", "## About this report", ""] + md[2:]
    md += ["", "## Significance", "", *significance_lines(t, runs.df.dataset.nunique(), plan)]
    md += ["", "## Robustness checklist", "", *_checklist_lines(cl)]
    md += min_norm.section(runs, samples, out, plan=plan)   # minimal perturbations: curves, summaries, questions
    sections = {"table03": "Clean accuracy", "table04": "Best configuration per attack", "table45": "Rank scores",
                "table47": "Female vs male", "paper_": "Beside the paper", "protocol": "Protocol gap",
                "language_": "Between languages",
                "param_": "Per-attack parameter tables"}
    seen = set()
    for item in t.items:
        sec = next((v for k, v in sections.items() if item.key.startswith(k)), None)
        if sec and sec not in seen:
            seen.add(sec)
            md += ["", f"## {sec}"]
            if sec == "Best configuration per attack":
                for key, cap in (("perturbation", "Figure 6: mean perturbation of the best configuration"
                                  + (" in dB of log-Mel" if pert_db else "") + ", all, female and male speakers"),):
                    if key in figs:
                        md += ["", f"![{cap}](figures/{figs[key].name})"]
            if sec in forests:
                md += ["", f"![{forests[sec][1]}](figures/{forests[sec][0].name})"]
            if sec == "Per-attack parameter tables" and "curves" in figs:
                md += ["", "![Robustness curves: adversarial accuracy vs the swept parameter from 0 (clean); solid "
                       "all, dashed female, dotted male; band = 95% CI of all; leaky runs in their own panels]"
                       "(figures/" + figs["curves"].name + ")"]
        md += ["", f"### {item.title}", ""]
        if item.note:
            md += [item.note, ""]
        md.append(md_table(item.display).rstrip("\n"))
        md.append("\n" + csv_link(item.key))
    if "time" in figs:
        md += ["", "## Time", "", "![Attack time per segment, every configuration (log scale)](figures/"
               + figs["time"].name + ")"]
    if spec:
        md += ["", "## Spectrograms", "", "Original / adversarial / difference for the best configuration's run "
               "(as logged by the attack run)."]
        for r, rid, dst in spec:
            md += ["", f"![{r.attack} {r.config} on {r.setting} (run {rid[:8]})](figures/{dst.name})"]
    # adversarial audio: SNR / realized accuracy, players (report/audio.py); a run's spectrograms shown once
    md += audio.section(runs, out, cache, shown={rid: dst.name for _, rid, dst in spec})[0]
    md += ["", "## Definitions", "",
           "- Adversarial accuracy: accuracy on the adversarial examples of the attacked test segments "
           "(`adv_acc`); clean accuracy likewise on the originals (`clean_acc`); per gender with `_female`/`_male`.",
           "- Perturbation: the paper's mean |x_adv − x| over all cells (`perturbation`) in normalized log-Mel units "
           "(per-band standard deviations for the `_std` normalizations); `perturbation_db` the same in dB of "
           "log-Mel (δ × the band's σ); `snr_db` per segment 10·log10(Σ P / Σ (√P′ − √P)²) with P the original and "
           "P′ the perturbed Mel power, averaged over the segments the attack changed.",
           "- Configuration: runs equal in everything but the seeds (`seed`, `split.seed`, `attack.seed`, "
           "`attack.sample_seed`) and the fold (`split.fold`); its metrics pool the folds (weighted by segments) "
           "and average the seeds (± std over seeds).",
           "- Best configuration: per attack and dataset, the configuration with the lowest adversarial accuracy; "
           "ties broken by the lowest mean perturbation.",
           "- Rank score: per dataset, attacks ranked by the best configuration's adversarial accuracy (1 = lowest) "
           "and, separately, by its perturbation in dB (1 = smallest); ranks summed over datasets.",
           f"- 95% CI: cluster bootstrap over speakers ({stats.N_BOOT} draws, widened for few speakers); exact "
           "bound (≤ x / ≥ x) where every segment has the same outcome; over the configuration's segments, each "
           f"counted once (repeated runs averaged per segment). {FEW} marks a group of fewer than "
           f"{stats.MIN_SPEAKERS} speakers.",
           "- p: permutation test over speakers on |difference of mean speaker means| (gender within folds); not "
           f"testable with fewer than {stats.MIN_SPEAKERS} speakers per group or when the design's smallest p "
           "exceeds α. Holm: " + stats.FAMILY_RULE + ".",
           "- Runs: `tables/runs.csv` lists every run id used; configurations: `tables/configurations.csv`."]
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(audio.embed_players(md_to_html(text, out, name), out))
    return t, {**figs, **{f"forest_{k}": v[0] for k, v in forests.items()}}


def _log_report_run(runs: Runs, out: Path, name: str) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    client = MlflowClient(runs.uri)
    exp = client.get_experiment_by_name(runs.experiment)
    f = runs.filters
    tags = {"run_type": "report", "mlflow.runName": name, "report_sweeps": ",".join(f.get("sweeps") or []),
            "report_dataset": f.get("dataset") or "", "report_tags": ",".join(tag_texts(f.get("tags")))}
    # not a child of the sweep (mlflow.parentRunId): a sweep still running counts its children as its jobs
    run = client.create_run(exp.experiment_id, tags=tags, run_name=name)
    rid = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(rid, metrics=[Metric("n_runs", float(len(runs)), now, 0),
                                   Metric("n_attacks", float(runs.df.attack.nunique()), now, 0),
                                   Metric("n_settings", float(runs.df.setting.nunique()), now, 0)],
                     params=[Param("out", str(out)), Param("experiment", runs.experiment)])
    client.log_artifacts(rid, str(out))
    client.set_terminated(rid)
    log.info("Report logged as MLflow run %s", rid)
    return rid
