"""What a researcher sees (issue 15): MLflow-native models, the sweep's parent run, the report, the logs.

One module-scoped sweep as a user runs it (``python -m ser_attacks -m attack=fgsm,bim attack.eps=...`` in a
subprocess, progress bars and attack verbosity left at their defaults, stderr not a terminal) is read back
from MLflow: the registered pyfunc model predicts on a WAV file, the parent run holds the summary table and
the report, the report renders in headless Chromium (skipped with a reason when Chromium is absent).
"""
from __future__ import annotations

import contextlib
import html as htmllib
import json
import pickle
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from ser_attacks.tracking import EXPERIMENT_KIND, SUMMARY_TABLE, Tracking
from tests.helpers import compose_config, mlflow_runs, run_cli, tiny_overrides

SWEEP = ["attack=fgsm,bim", "attack.eps=0.05,0.2", "attack.n_samples=8", "attack.max_iter=3"]
REGISTERED = "ser-synthetic-tiny"


@contextlib.contextmanager
def tracking_uri(uri: str):
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, corpus_root):
    tmp = tmp_path_factory.mktemp("ui")
    # progress bars and ART's verbosity as a user leaves them (on); stderr is a pipe here, as in CI
    proc = run_cli(tmp, corpus_root, "-m", *SWEEP, "progress=true", "attack.verbose=true")
    client, by_type = mlflow_runs(tmp)
    (parent,) = by_type["sweep"]
    (train,) = by_type["train"]
    (report_dir,) = list((tmp / "multirun").glob("*/*/report"))
    return SimpleNamespace(tmp=tmp, proc=proc, client=client, parent=parent, train=train, attacks=by_type["attack"],
                           uri=f"sqlite:///{tmp / 'mlflow.db'}", report=report_dir, corpus=corpus_root)


# ----------------------------------------------------------------------------------------------- MLflow
def test_experiment_opens_as_model_development_also_when_it_already_existed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    key, kind = EXPERIMENT_KIND
    Tracking(uri, "fresh", str(tmp_path / "mlruns"))
    client = MlflowClient(uri)
    assert client.get_experiment_by_name("fresh").tags[key] == kind
    client.create_experiment("older")                    # as an earlier version of the platform left it
    assert key not in client.get_experiment_by_name("older").tags
    Tracking(uri, "older", str(tmp_path / "mlruns"))
    assert client.get_experiment_by_name("older").tags[key] == kind


def _model_dir(client, model_id: str, dst: Path) -> Path:
    import mlflow.artifacts
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_id}", dst_path=str(dst)))


@pytest.mark.e2e
def test_trained_model_is_a_registered_mlflow_model_without_pickles(sweep, tmp_path):
    import yaml
    c, train = sweep.client, sweep.train
    models = {m.name: m for m in c.search_logged_models([train.info.experiment_id])
              if m.source_run_id == train.info.run_id}
    assert set(models) == {"model", "keras_model"}
    with tracking_uri(sweep.uri):
        keras_dir = _model_dir(c, models["keras_model"].model_id, tmp_path / "k")
        wrap_dir = _model_dir(c, models["model"].model_id, tmp_path / "w")
    km = yaml.safe_load((keras_dir / "MLmodel").read_text())
    assert km["flavors"]["keras"]["save_exported_model"] is False and (keras_dir / "data" / "model.keras").is_file()
    sig = json.loads(km["signature"]["inputs"])[0]
    assert sig["type"] == "tensor" and sig["tensor-spec"]["shape"][0] == -1 and len(sig["tensor-spec"]["shape"]) == 4
    assert km["saved_input_example_info"] and (keras_dir / "input_example.json").is_file()
    wm = yaml.safe_load((wrap_dir / "MLmodel").read_text())
    pf = wm["flavors"]["python_function"]
    assert pf["loader_module"] == "ser_attacks.pyfunc_model" and pf.get("code") is None and "model_code_path" not in pf
    assert not list(wrap_dir.rglob("*.py")), "the wrapper's artifact holds data only, no code"
    assert {p.name for p in (wrap_dir / pf["data"]).iterdir()} == {"model.keras", "normalizer.npz", "ser_model.json"}
    assert wm["saved_input_example_info"] and json.loads(wm["signature"]["outputs"])[0]["name"] == "emotion"
    (wsig,) = json.loads(wm["signature"]["inputs"])          # the features form: log-Mel dB (-1, frames, n_mels)
    assert wsig["tensor-spec"]["dtype"] == "float32"
    assert wsig["tensor-spec"]["shape"] == [-1, *sig["tensor-spec"]["shape"][1:3]]
    pickles = [p for d in (keras_dir, wrap_dir) for p in d.rglob("*")
               if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    assert not pickles
    # registered as ser-<dataset>-<model>, version tagged with the model cache key
    (mv,) = c.search_model_versions(f"name = '{REGISTERED}'")
    assert mv.tags["model_key"] == train.data.tags["model_key"] and mv.run_id == train.info.run_id
    assert mv.tags["defense"] == "none"
    assert float(mv.tags["val_acc"]) == pytest.approx(train.data.metrics["val_acc"], abs=1e-4)
    assert mv.source == f"models:/{models['model'].model_id}"
    # every attack run records the models:/ URI it used, and the logged model as its input
    for r in sweep.attacks:
        assert r.data.params["model_uri"] == f"models:/{REGISTERED}/1"
        assert [m.model_id for m in c.get_run(r.info.run_id).inputs.model_inputs] == [models["model"].model_id]


def _independent_probabilities(sweep, wav: Path) -> tuple[list[str], np.ndarray]:
    """The same prediction without MLflow: the cached model, its normalizer and the pipeline's features."""
    from ser_attacks.data.audio import FrontEnd, recording_features
    from ser_attacks.pyfunc_model import softmax
    from ser_attacks.train import load_trained
    key = sweep.train.data.tags["model_key"]
    tm = load_trained(sweep.tmp / "cache" / "models" / key, key)
    X = recording_features(str(wav), FrontEnd())[0]
    logits = tm.model.predict(tm.normalizer.transform(X), verbose=0)
    return tm.classes, softmax(np.asarray(logits, np.float64))


@pytest.mark.e2e
def test_pyfunc_model_predicts_emotions_from_a_wav_file(sweep, tmp_path, monkeypatch):
    import soxr
    wav = sorted((sweep.corpus / "wav").glob("*.wav"))[0]
    classes, per_segment = _independent_probabilities(sweep, wav)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("loading the model unpickled something")
    for mod in (pickle,) + tuple(m for m in (pytest.importorskip("cloudpickle"),)):
        monkeypatch.setattr(mod, "load", no_unpickling)
        monkeypatch.setattr(mod, "loads", no_unpickling)
    with tracking_uri(sweep.uri):
        registered = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")           # as in the README
        model = registered.get_raw_model()                # audio: the raw model reads every input form
        out = model.predict(str(wav))
        by_run = mlflow.pyfunc.load_model(f"runs:/{sweep.train.info.run_id}/model").get_raw_model().predict(
            [str(wav)])
    assert list(out.columns) == ["emotion", *classes, "n_segments"]
    assert len(out) == 1 and out.n_segments[0] == len(per_segment)
    np.testing.assert_allclose(out[classes].to_numpy()[0], per_segment.mean(0), atol=1e-5)
    assert out.emotion[0] == classes[int(per_segment.mean(0).argmax())]
    np.testing.assert_allclose(by_run[classes].to_numpy(), out[classes].to_numpy(), atol=1e-6)

    # any rate and channel count: the same audio as a 44.1 kHz stereo file and as an array
    y, sr = sf.read(wav, dtype="float32")
    y44 = soxr.resample(y, sr, 44100)
    sf.write(tmp_path / "stereo44k.wav", np.stack([y44, y44], 1), 44100)
    many = model.predict([str(tmp_path / "stereo44k.wav"), str(wav)])
    arr = model.predict({"audio": y44, "sample_rate": 44100})
    for res in (many.iloc[[0]], arr):
        np.testing.assert_allclose(res[classes].to_numpy()[0], out[classes].to_numpy()[0], atol=0.05)
        assert res[classes].sum(axis=1).to_numpy() == pytest.approx(1.0)
    # features (the cache's dB log-Mel): one row per segment, the same numbers
    from ser_attacks.data.audio import FrontEnd, recording_features
    X = recording_features(str(wav), FrontEnd())[0]
    feats = registered.predict(X.astype(np.float32))     # the signature's input: float32 (-1, frames, n_mels)
    np.testing.assert_allclose(feats[classes].to_numpy(), per_segment, atol=1e-5)
    np.testing.assert_allclose(model.predict(X)[classes].to_numpy(), per_segment, atol=1e-5)
    with pytest.raises(Exception, match="sample rate"):
        model.predict(np.zeros(16000, np.float32))
    with pytest.raises(Exception, match="no such audio file"):
        model.predict(str(tmp_path / "missing.wav"))


# ------------------------------------------------------------------------------------------- sweep parent
@pytest.mark.e2e
def test_sweep_parent_holds_the_summary_table_and_the_report(sweep):
    c, parent = sweep.client, sweep.parent
    arts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {SUMMARY_TABLE, "report.html", "report.md", "figures", "tables"} <= arts
    with tracking_uri(sweep.uri):            # load_table searches runs through the global tracking URI
        table = c.load_table(parent.info.experiment_id, SUMMARY_TABLE, run_ids=[parent.info.run_id])
    assert len(table) == 4
    by_id = {r.info.run_id: r for r in sweep.attacks}
    assert set(table.run_id) == set(by_id)
    for row in table.itertuples():
        r = by_id[row.run_id]
        for col in ("clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation", "attack_time_s"):
            assert getattr(row, col) == pytest.approx(r.data.metrics[col]), col
        assert row.effect == r.data.tags["attack_effect"] and row.status == "FINISHED"
        assert row.job == r.data.tags["mlflow.runName"]
    note = c.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert "report.html" in note and all(n in note for n in table.job)
    assert "Report: " in sweep.proc.stdout


@pytest.mark.e2e
def test_report_false_skips_the_report_and_a_bad_value_is_refused(sweep):
    run_cli(sweep.tmp, sweep.corpus, "-m", "attack=fgsm", "attack.eps=0.1", "attack.n_samples=4", "report=false")
    client, by_type = mlflow_runs(sweep.tmp)
    newest = max(by_type["sweep"], key=lambda r: r.info.start_time)
    arts = {a.path for a in client.list_artifacts(newest.info.run_id)}
    assert SUMMARY_TABLE in arts and "report.html" not in arts
    bad = run_cli(sweep.tmp, sweep.corpus, "-m", "attack=fgsm", "report=maybe", check=False)
    assert bad.returncode != 0 and "report='maybe'" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------------ report
@pytest.mark.e2e
def test_every_report_figure_has_ticks_and_labels_on_its_visible_axes(sweep, tmp_path, monkeypatch):
    from ser_attacks.report import build_report, figures
    made = []
    save = figures._save

    def keep(fig, path, tight=True):
        made.append((path.name, fig))
        return save(fig, path, tight)
    monkeypatch.setattr(figures, "_save", keep)
    build_report(sweep.uri, sweeps=[sweep.parent.info.run_id], out=tmp_path / "r", log_run=False)
    names = {n for n, _ in made}
    assert {"fig05_adv_accuracy.png", "fig06_perturbation.png", "robustness_curves.png", "time_per_attack.png"} <= names
    for name, fig in made:
        fig.canvas.draw()
        visible = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
        assert visible, name
        for ax in visible:
            assert [t for t in ax.get_xticklabels() if t.get_text()], f"{name}: x axis without tick labels"
            assert [t for t in ax.get_yticklabels() if t.get_text()], f"{name}: y axis without tick labels"
            assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: axis without a label"
    curves = dict(made)["robustness_curves.png"]
    assert len([ax for ax in curves.axes if ax.axison]) == 2          # fgsm and bim, both swept over eps
    bars = dict(made)["fig05_adv_accuracy.png"].axes[0]
    from matplotlib.container import BarContainer
    assert [b.get_label() for b in bars.containers if isinstance(b, BarContainer)] == ["all", "female", "male"]


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip, self.h2 = [], 0, []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "script")
        self._in_h2 = tag == "h2"
        if tag in ("p", "li", "tr", "h1", "h2", "h3", "figcaption", "div", "br"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "script")
        self._in_h2 = False

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)
            if self._in_h2:
                self.h2.append(data)


@pytest.mark.e2e
def test_report_html_is_rendered_markdown_that_opens_on_the_summary(sweep):
    from ser_attacks.browser import raw_markdown
    md = (sweep.report / "report.md").read_text()
    html = (sweep.report / "report.html").read_text()
    text = _Text()
    text.feed(html)
    assert raw_markdown("".join(text.parts)) == []
    assert raw_markdown("**bold** and ![x](y.png)\n| a | b |\n_CSV: `x`_") != []       # the check can fail
    assert text.h2[:3] == ["Summary", "Overview", "About this report"]
    summary = md.split("## Summary")[1].split("## Overview")[0]
    assert "**Takeaway.**" in summary and "| attack |" in summary and "SNR ≥" in summary
    overview = md.split("## Overview")[1].split("## About")[0]
    assert "What was attacked" in overview and "Flags:" in overview
    assert html.count('src="data:image/png;base64,') == md.count("![") > 0
    assert 'CSV: <a href="tables/' in html and htmllib.escape("_CSV") not in html


@pytest.mark.e2e
def test_report_in_headless_chromium_and_screenshots(sweep, tmp_path):
    from ser_attacks.browser import find_chromium, screenshots
    if not find_chromium():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; or set SER_ATTACKS_CHROMIUM)")
    r = screenshots(sweep.uri, tmp_path / "shots", sweep=sweep.parent.info.run_id)
    rep = r["report"]
    assert rep["images"] and not rep["broken"], rep["broken"]
    assert rep["raw_markdown"] == []
    assert rep["headings"][:2] == [f"ser-attacks sweep {sweep.parent.info.run_id[:8]}", "Summary"]
    headers = set(r["runs_table"]["headers"])
    assert {"Run Name", "Models", "adv_acc", "adv_acc_female", "adv_acc_male"} <= headers
    rows = " ".join(r["runs_table"]["rows"])
    for run in [sweep.parent, *sweep.attacks]:
        assert run.data.tags["mlflow.runName"][:12] in rows       # the parent and its children are listed
    assert any(sweep.parent.info.run_id[:8] in row or "sweep attack=" in row for row in r["fresh"]["rows"])
    for png in ("report.png", "mlflow_runs.png", "mlflow_fresh_runs.png", "mlflow_fresh_run.png"):
        data = (tmp_path / "shots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


@pytest.mark.e2e
def test_mlflow_views_work_without_help(sweep):
    """Issue 29: the sweep's parent is named by what it sweeps and carries the swept params and summary metrics;
    the training run is nested under the sweep that trained it; every run has a description; metric values are
    stored as shown (no float32 noise); no tag points to a missing file."""
    p, c = sweep.parent, sweep.client
    assert p.data.tags["mlflow.runName"].startswith("sweep attack=fgsm,bim attack.eps=0.05,0.2 attack.n_samples=8")
    assert p.data.params["attack"] == "fgsm,bim" and p.data.params["attack.eps"] == "0.05,0.2"
    m = p.data.metrics
    assert m["n_jobs"] == 4 and m["n_failed"] == 0              # the nested training run is not a job
    assert m["clean_acc"] == pytest.approx(np.mean([r.data.metrics["clean_acc"] for r in sweep.attacks]), abs=1e-4)
    for a in ("fgsm", "bim"):
        assert m[f"best_adv_acc_{a}"] == min(r.data.metrics["adv_acc"] for r in sweep.attacks
                                             if r.data.tags["attack"] == a)
    assert sweep.train.data.tags["mlflow.parentRunId"] == p.info.run_id
    assert p.data.tags["mlflow.note.content"].startswith("**Sweep summary**")
    assert sweep.train.data.tags["mlflow.note.content"].startswith("**Training of model `tiny`** on **synthetic**")
    for r in sweep.attacks:
        note = r.data.tags["mlflow.note.content"]
        assert note.startswith(f"**Attack {r.data.tags['attack']}** (eps={r.data.params['attack.eps']}")
        assert f"adversarial **{r.data.metrics['adv_acc']:.3f}**" in note
    for r in [p, sweep.train, *sweep.attacks]:
        full = c.get_run(r.info.run_id)
        noisy = {k: v for k, v in full.data.metrics.items() if v == v and float(f"{v:.7g}") != v}
        assert not noisy, f"{full.data.tags['mlflow.runName']}: unrounded metrics {noisy}"
        for k, v in full.data.tags.items():
            if k in ("fault_log", "hparams_file") or k.endswith("_file"):
                assert Path(v).exists(), f"tag {k} points to the missing file {v}"
        assert "fault_log" not in full.data.tags


@pytest.mark.e2e
def test_mlflow_runs_table_in_a_fresh_browser(sweep, tmp_path):
    """The MLflow UI opened by the link `make ui` prints, in a new browser profile (no saved UI state): the sweep's
    row reads as what it swept, and its page shows the summary, the swept params and the summary metrics."""
    from ser_attacks.browser import MlflowUI, find_chromium, mlflow_fresh_view
    if not find_chromium():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; or set SER_ATTACKS_CHROMIUM)")
    with MlflowUI(sweep.uri) as url:
        seen = mlflow_fresh_view(url, sweep.parent.info.experiment_id, sweep.parent.info.run_id, tmp_path)
    rows = " ".join(seen["rows"])
    assert "sweep attack=fgsm,bim attack.eps=0.05,0.2" in rows
    assert "train tiny" not in rows, "the training run is nested under the sweep (collapsed with it)"
    # the plain link: MLflow's default columns (no metric), the experiment's description names the saved view
    assert not {"clean_acc", "adv_acc"} & set(seen["plain"]["headers"])
    assert "Speech emotion recognition under adversarial attacks" in seen["plain"]["text"]
    # the link `make ui` prints opens the saved view: the collapsed sweep row shows its summary metrics
    # (in the view's column order, or alphabetically: MLflow applies a view's order only when it arrives before
    # the table is built)
    cols = list(dict.fromkeys(seen["headers"]))
    assert {"clean_acc", "best_adv_acc_bim", "best_adv_acc_fgsm"} <= set(cols), cols
    half = len(seen["rows"]) // 2                # the pinned rows (names), then the same rows' other cells
    i = next(k for k, r in enumerate(seen["rows"][:half]) if "sweep attack=fgsm,bim attack.eps=0.05,0.2" in r)
    numbers = re.findall(r"(?<![\w.:-])\d+(?:\.\d+)?(?![\w.:])", seen["rows"][half + i])
    assert len(numbers) >= 2, seen["rows"]      # its summary (clean_acc, best_adv_acc_bim / _fgsm) is filled in
    page = seen["run_page"]
    for text in ("Sweep summary", "best_adv_acc_fgsm", "best_adv_acc_bim", "clean_acc", "attack.eps", "0.05,0.2"):
        assert text in page, f"{text!r} not on the sweep's run page"
    for png in ("fresh_runs.png", "fresh_run.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------- logs
@pytest.mark.e2e
def test_no_progress_bars_off_a_terminal_one_line_per_stage(sweep):
    bar = re.compile(r"\d+%\|[^\n]*\||it/s\]|file/s\]")
    assert not bar.search(sweep.proc.stderr), "a progress bar was written to a non-terminal"
    logs = "".join(p.read_text() for p in (sweep.tmp / "multirun").glob("*/*/*/*.log"))
    assert len(re.findall(r"log-Mel features: \d+ files in [\d.]+ s", logs)) == 1      # extracted once, one line
    from ser_attacks.progress import bars, on_terminal

    class Terminal:
        def isatty(self):
            return True
    assert on_terminal(Terminal()) and not bars(False)


def test_a_skipped_file_is_warned_about_and_counted_once(tmp_path, corpus_root, caplog):
    from ser_attacks.data.__main__ import describe
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_root, corpus)
    (corpus / "wav" / "03a01Fz.wav").write_bytes(b"not audio")       # a valid name, unreadable
    (corpus / "wav" / "notes.wav").write_bytes(b"x")                 # an unrecognised name
    cfg = compose_config(*tiny_overrides(tmp_path, corpus))
    with caplog.at_level("WARNING"):
        text = describe(cfg)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped ")]
    assert len(warned) == 2 and len(set(warned)) == 2
    assert "(2 files skipped by the loader)" in text and "2 files skipped in total" in text


@pytest.mark.e2e
def test_training_is_deterministic(cfg_factory):
    from ser_attacks.train import compiled_model, fit
    cfg = cfg_factory("train.max_epochs=2")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 261, 128, 1)).astype(np.float32)
    y = np.arange(24) % 5
    weights = []
    for _ in range(2):
        model = compiled_model(cfg.model, cfg.train, cfg.seed, X.shape[1:], 5)
        fit(cfg.train, model, (X, y), (X[:8], y[:8]), 5)
        weights.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


# ------------------------------------------------------------------------------ the study report's first screen
STUDY = Path(__file__).resolve().parents[1] / "results" / "study"


@pytest.fixture(scope="module")
def study_report(tmp_path_factory):
    """The report rebuilt from two corpora of the committed study results (EMOVO and EmoDB: both protocols, two
    languages), as `python -m ser_attacks.report --from-results` builds it."""
    from ser_attacks.report import build_report
    out = tmp_path_factory.mktemp("study") / "report"
    build_report(results=[STUDY / "emovo", STUDY / "emodb"], out=out)
    return out


@pytest.mark.e2e
def test_study_report_opens_on_the_answers(study_report):
    """Issue 29: the takeaway (3–5 sentences from the verdicts), the attacks at one stated SNR budget, then the
    contents; the long tail below. Wording: segments as segments, no-effect runs once per configuration; no row
    of dashes for a configuration never run; every CSV link points at a file beside report.html."""
    md = (study_report / "report.md").read_text()
    html = (study_report / "report.html").read_text()
    summary = md.split("## Summary\n")[1].split("\n## ")[0]
    take = summary.split("**Takeaway.** ")[1].split("\n\n")[0]
    sentences = take.split(" \\\n")                                       # one sentence per line
    assert all(re.fullmatch(r"[A-Z].*\.", x) for x in sentences), sentences
    assert 3 <= len(sentences) <= 5, sentences
    assert "strongest attack" in take and "Gender:" in take and "Language:" in take and "Protocol:" in take
    assert "Checklist:" in take and "PASS" in take
    assert "perturbation SNR ≥ 0 dB" in summary and "| clean (no attack) |" in summary
    i_take, i_toc, i_over = html.index('id="takeaway"'), html.index('<nav class="toc">'), html.index('id="overview"')
    assert i_take < html.index("<table") < i_toc < i_over
    assert not re.search(r"\d+ of (fe)?male", md) and "attacked segments per run (median; 5 from female and" in md
    assert "speakers tested: emovo 3 F + 3 M" in md
    flags = md.split("**Flags:**")[1].split("\n\n")[1]
    configs = re.findall(r"^  - (\w+ `[^`]+`)", flags, re.M)
    assert configs and len(configs) == len(set(configs))                  # each configuration once
    for f in (study_report / "tables").glob("param_*.csv"):
        assert pd.read_csv(f).adv_acc.notna().all(), f.name               # no never-run rows
    links = re.findall(r'href="(tables/[^"]+)"', html)
    assert links and all((study_report / ln).is_file() for ln in links)
    for name in ("forest_gender.png", "forest_protocol.png", "forest_language.png"):
        assert (study_report / "figures" / name).stat().st_size > 10_000, name
    assert html.count("<details") > 20


@pytest.mark.e2e
def test_study_report_first_screen_in_chromium(study_report, tmp_path):
    """Headless Chromium, a 1400 x 1000 window: the takeaway ends within the first 1,200 px; numbers are
    right-aligned and the first column stays put when a wide table scrolls sideways."""
    from ser_attacks.browser import REPORT_SECTIONS, TAKEAWAY_WITHIN, find_chromium, report_screenshots
    if not find_chromium():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; or set SER_ATTACKS_CHROMIUM)")
    seen = report_screenshots(study_report / "report.html", tmp_path, "study", REPORT_SECTIONS)
    assert seen["takeaway"].startswith("Takeaway."), seen["takeaway"]
    assert TAKEAWAY_WITHIN == 1200
    assert seen["takeaway_bottom"] <= TAKEAWAY_WITHIN, f"the takeaway ends at {seen['takeaway_bottom']:.0f} px"
    assert seen["number_align"] == "right" and seen["first_column"] == "sticky"
    assert seen["toc_top"] > seen["takeaway_bottom"]
    assert [f.name for f in seen["files"]] == ["study_first_screen.png", "study_forest.png", "study_checklist.png"]
    for shot in seen["files"]:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
