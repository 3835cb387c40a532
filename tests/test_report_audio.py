"""The report's adversarial-audio section: tables equal the runs' metrics, the accuracy-vs-SNR figure, and
<audio> players embedded in the HTML (checked in headless Chromium when it is installed)."""
from __future__ import annotations

import base64
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_attacks.metrics import exact_fractions
from ser_attacks.report.audio import _config, _setting, embed_players
from tests.helpers import compose_config, seed_cache, tiny_overrides

pytestmark = pytest.mark.e2e   # whole attack jobs, then the report; `make test-fast` leaves them out


@pytest.fixture(scope="module")
def report(tmp_path_factory, corpus_root, tiny_cache):
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    from ser_attacks.report import build_report
    tmp = seed_cache(tiny_cache, tmp_path_factory.mktemp("report_audio"))      # the session's tiny model
    base = tiny_overrides(tmp, corpus_root) + ["attack.n_samples=6", "input.griffin_lim_iter=2"]
    for extra in (["attack=fgsm", "attack.eps=0.3"], ["input=waveform", "attack=fgsm", "attack.snr_db=20"],
                  ["input=waveform", "attack=fgsm", "attack.snr_db=35"]):
        cfg = compose_config(*base, *extra)
        run(cfg)
    uri = cfg.tracking.uri
    out = tmp / "rep"
    rep = build_report(uri, out=out, log_run=False, cache=tmp / "artifacts")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ser-attacks")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'")
    return rep, out, {r.info.run_id: r for r in runs}


def test_tables_equal_the_runs_metrics(report):
    _, out, runs = report
    wav = pd.read_csv(out / "tables" / "audio_waveform.csv")
    spec = pd.read_csv(out / "tables" / "audio_realized.csv")
    assert sorted(wav.snr_budget_db) == [20, 35] and len(spec) == 1
    for t in (wav, spec):
        for _, row in t.iterrows():
            m = exact_fractions(runs[row.run_ids].data.metrics)     # shares: k / n, not the 4 decimals shown
            for k in ("adv_acc", "audio_snr_db", "audio_snr_db_female", "realized_adv_acc_male"):
                if k in m:
                    assert row[k] == pytest.approx(m[k]), k
    assert (wav.audio_snr_db_min >= wav.snr_budget_db - 0.1).all()
    md = (out / "report.md").read_text()
    assert "## Adversarial audio" in md and "Spectrogram attacks as sound" in md and "Waveform attacks" in md
    assert "snr_db=20" in md and "snr_db=None" not in md.split("## Adversarial audio")[1]


def test_figure_and_players(report):
    _, out, runs = report
    assert (out / "figures" / "accuracy_vs_snr.png").stat().st_size > 10_000
    flacs = sorted((out / "audio").glob("*.flac"))
    # 2 players' rows (female, male) x 3 files, for the waveform fgsm (best of 2 budgets) and the spectrogram fgsm
    assert len(flacs) == 2 * 2 * 3
    for f in flacs:
        y, sr = sf.read(f)
        assert sr == 16000 and len(y) == 48000
    page = (out / "report.html").read_text()
    players = re.findall(r'<audio controls[^>]*src="data:audio/flac;base64,([^"]+)"', page)
    assert len(players) == len(flacs)
    y, sr = sf.read(io.BytesIO(base64.b64decode(players[0])))
    assert sr == 16000 and len(y) == 48000
    assert "(audio/" not in page, "every audio link became a player"


def test_embed_players_handles_links_and_literal_markdown(tmp_path):
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.flac", np.zeros(1600, np.int16), 16000, format="FLAC")
    page = ('<p><a href="audio/a.flac">original</a></p><td>[adversarial](audio/a.flac)</td>'
            '<a href="audio/missing.flac">gone</a>')
    got = embed_players(page, tmp_path)
    assert got.count("<audio controls") == 2 and 'href="audio/missing.flac"' in got
    assert _config("eps=0.25, snr_db=30") == "snr_db=30" and _config("eps=0.1, snr_db=None") == "eps=0.1"
    assert _setting("emodb (input=waveform)") == "emodb" and _setting("emodb (split=paper, input=x)") == \
        "emodb (split=paper)" and _setting("emodb (input.step_ratio=0.1)") == "emodb"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed")
def test_players_decode_in_headless_chromium(report, tmp_path):
    from ser_attacks.report.audio_check import browser_check
    _, out, _ = report
    res = browser_check(out / "report.html", screenshot=tmp_path / "shot.png")
    assert len(res) == 12 and all(r["ok"] and abs(r["duration"] - 3.0) < 0.01 for r in res), res
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_accuracy_vs_snr_draws_many_settings(tmp_path):
    """Six settings (three corpora x two protocols, the study's report) in one figure: each its own colour
    (the figure once faded settings by alpha, which went below 0 from the fourth setting on and crashed)."""
    import matplotlib.image as mpimg

    from ser_attacks.report.audio import accuracy_vs_snr
    rng = np.random.default_rng(0)
    rows = [{"attack": a, "input": "spectrogram", "setting": f"{d} (split={s})", "audio_snr_db": snr,
             **{f"{k}_{g}": v for g in ("female", "male")
                for k, v in (("audio_snr_db", snr + rng.normal()), ("realized_adv_acc", rng.uniform()),
                             ("clean_acc", 0.8))}}
            for a in ("fgsm", "bim") for d in ("emodb", "emovo", "ravdess") for s in ("speaker_cv", "paper")
            for snr in (0.0, 10.0)]
    path = accuracy_vs_snr(pd.DataFrame(rows), tmp_path / "snr.png")
    img = mpimg.imread(path)[..., :3]
    colours = {tuple(np.round(c, 1)) for c in img.reshape(-1, 3)[::7]}
    assert len(colours) > 6, "settings drawn in distinct colours"
