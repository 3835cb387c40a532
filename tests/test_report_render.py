"""The report's page as a reader meets it (issue 29), on small generated inputs: table cells marked for display
(numbers right-aligned, FLAG / PASS coloured, significant rows highlighted, sortable headers), long subsections
folded, CSV links that are links; runs without effect listed once per configuration; figures whose zero bars and
clean ticks can be seen; forest plots of the gaps."""
from __future__ import annotations

import re

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from ser_attacks.report import figures
from ser_attacks.report.render import md_to_html

MD = """# r

## Summary

**Takeaway.** One. Two. Three.

## Checks

### emodb: 1 PASS, 1 FLAG

| attack | check | verdict | p (Holm) | result |
|---|---|---|---|---|
| fgsm | budget | PASS | 0.300 | 0.120 [0.05, 0.20] |
| bim | noise | FLAG | <0.001 | −0.250 |

CSV: [tables/checklist.csv](tables/checklist.csv)
"""


def test_cells_are_marked_for_display_and_subsections_fold(tmp_path):
    html = md_to_html(MD, tmp_path, "r")
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    body = [r for r in rows if "<td" in r]
    assert len(body) == 2
    # numbers right-aligned (not the first column), verdicts coloured, the row with Holm p < 0.05 highlighted
    assert '<td class="num">0.300</td>' in body[0] and '<td class="num">−0.250</td>' in body[1]
    assert '<td class="verdict-pass">PASS</td>' in body[0] and '<td class="verdict-flag">FLAG</td>' in body[1]
    assert not body[0].startswith('<tr class="sig"') and body[1].startswith('<tr class="sig"')
    assert html.count("data-sort") >= 5 and "<script>" in html           # headers sort on a click
    # the ### subsection opens on a click; its heading stays visible; the ## headings are not folded
    assert re.search(r'<details class="fold"><summary><h3 id="emodb-1-pass-1-flag">', html)
    assert "<h2 id=\"checks\">Checks</h2>" in html
    assert '<a href="tables/checklist.csv">tables/checklist.csv</a>' in html
    assert '<p class="takeaway" id="takeaway"><strong>Takeaway.' in html
    # first column sticky, numbers right-aligned: the CSS the classes rely on
    assert "position:sticky" in html and "td.num" in html


def test_a_sentence_that_starts_with_a_number_is_not_a_number():
    from ser_attacks.report.render import is_number
    assert all(map(is_number, ["0.123", "−0.5 [−0.6, 0.1]", "<0.001", "5 / 5", "—", "1.2e-05",
                               "0.000 (eps=0.25, 9.1 dB)", "12.3 dB / 4.5 dB", "0.417 ± 0.010 [0.28, 0.55]†"]))
    assert not any(map(is_number, ["0.000 [0.00, 0.00] of the 22 correctly classified segments stay correct",
                                   "eps=0.25", "fgsm", "over budget (quietest -3.0 dB)"]))


def test_a_section_of_many_figures_is_folded_one_of_few_is_not():
    from ser_attacks.report.render import fold
    many = '<h2 id="s">S</h2>' + '<img src="x">' * 5
    few = '<h2 id="t">T</h2><img src="x">'
    assert "<details" in fold(many) and "5 figures" in fold(many)
    assert fold(few) == few


def test_no_effect_runs_are_listed_once_per_configuration_not_per_fold():
    from ser_attacks.report.summary import effect_list
    runs = pd.DataFrame({"attack": ["pixel"] * 5 + ["noise"],
                         "config": ["es=0, th=1"] * 3 + ["es=1, th=5"] * 2 + ["eps=0.25"],
                         "setting": ["emodb (split=speaker_cv)"] * 2 + ["ravdess (split=speaker_cv)"] + ["emodb"] * 3,
                         "fold": ["0", "2", "1", "", "", "3"]})
    text = effect_list(runs)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    assert lines == ["  - pixel `es=0, th=1` — emodb (split=speaker_cv): folds 0, 2; "
                     "ravdess (split=speaker_cv): fold 1",
                     "  - pixel `es=1, th=5` — emodb (2 runs)",
                     "  - noise `eps=0.25` — emodb: fold 3"]


def _best(**over) -> pd.DataFrame:
    row = {"attack": "fgsm", "setting": "emodb", "adv_acc": 0.0, "adv_acc_female": 0.0, "adv_acc_male": 0.1,
           "clean_acc": 0.5, "clean_acc_female": 0.4, "clean_acc_male": 0.6}
    row.update(over)
    return pd.DataFrame([row, {**row, "attack": "bim", "adv_acc": 0.3, "adv_acc_female": 0.2, "adv_acc_male": 0.4}])


def test_a_bar_at_zero_is_drawn_and_the_clean_ticks_differ_by_group(tmp_path, monkeypatch):
    made = {}
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: made.setdefault("fig", fig) and save(
        fig, path, tight))
    assert figures.grouped_bars(_best(), "adv_acc", "acc", tmp_path / "f.png", ci=False, clean="clean_acc")
    ax = made["fig"].axes[0]
    assert ax.get_ylim()[0] < 0                                      # a line at 0 is above the axis' bottom
    zero = [c for c in ax.collections if len(c.get_segments()) and
            all(np.allclose(s[:, 1], 0) for s in c.get_segments())]
    # fgsm: all and female at 0, each drawn as a thick line in its bar's colour
    assert {mcolors.to_hex(c.get_colors()[0]) for c in zero} == {
        mcolors.to_hex(figures.GENDER_STYLE[g]["color"]) for g in ("all", "female")}
    ticks = {(mcolors.to_hex(ln.get_color()), ln.get_marker()) for ln in ax.lines
             if ln.get_marker() not in ("None", "")}
    assert len(ticks) == 3                                           # all / female / male tell apart


def test_forest_plot_marks_the_significant_comparisons(tmp_path, monkeypatch):
    made = {}
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: made.setdefault("fig", fig) and save(
        fig, path, tight))
    rows = pd.DataFrame({"label": ["a", "b", "c"], "diff": [0.3, -0.1, 0.0], "lo": [0.1, -0.4, 0.0],
                         "hi": [0.5, 0.2, 0.0], "sig": [True, False, False], "group": ["x", "x", "y"]})
    assert figures.forest(rows, tmp_path / "forest.png", "female − male", "t").exists()
    ax = made["fig"].axes[0]
    assert any(np.allclose(ln.get_xdata(), 0) for ln in ax.lines)           # the zero line
    points = [ln for ln in ax.lines if ln.get_marker() == "o"]
    filled = [ln for ln in points if mcolors.to_hex(ln.get_markerfacecolor()) != "#ffffff"]
    assert len(points) == 3 and len(filled) == 1 and filled[0].get_xdata()[0] == pytest.approx(0.3)
    assert [t.get_text() for t in ax.texts] == ["*"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def _audio_runs(n_folds: int = 5):
    from types import SimpleNamespace
    rows = [{"run_id": f"run{k}abcdef", "attack": "fgsm", "setting": "emodb (split=speaker_cv)", "config": "eps=0.25",
             "dataset": "emodb", "group": "g", "params": {}, "n_samples": 10.0, "clean_acc": 0.5, "adv_acc": 0.1,
             "realized_adv_acc": 0.3, "audio_snr_db": 12.0} for k in range(n_folds)]
    return SimpleNamespace(df=pd.DataFrame(rows), uri="sqlite:///none.db")


def test_audio_table_counts_the_segments_its_numbers_pool():
    """Five folds of 10 attacked segments are one row: it says 50 segments in 5 runs, not n = 10."""
    from ser_attacks.report import audio
    ((_, _, _, disp, _),) = audio.tables(audio.configurations(_audio_runs()))
    assert disp.segments.tolist() == ["50 (5 runs)"] and "n" not in disp


def test_a_runs_spectrograms_appear_once_in_the_report(tmp_path, monkeypatch):
    """The demo showed one run's spectrogram figure twice (Spectrograms and Adversarial audio, identical files
    under two names): the audio section now points at the one already shown."""
    import json

    from ser_attacks.report import audio
    png = tmp_path / "spectrograms.png"
    png.write_bytes(b"not an image")          # shrink_png keeps what it cannot read: only the path matters
    index = tmp_path / "index.json"
    index.write_text(json.dumps([]))
    monkeypatch.setattr(audio, "download", lambda uri, rid, name, cache: index if name.endswith(".json") else png)
    runs = _audio_runs(1)
    out = tmp_path / "rep"
    (out / "figures").mkdir(parents=True)
    md = audio._players(runs, audio.configurations(runs), out, None, 4, {"run0abcdef": "spectrograms_fgsm_00.png"})
    assert not list((out / "figures").glob("audio_spectrograms_*")) and "![" not in "\n".join(md)
    assert any("spectrograms_fgsm_00.png" in ln for ln in md)
    md = audio._players(runs, audio.configurations(runs), out, None, 4, {})        # not shown before: shown here
    assert len(list((out / "figures").glob("audio_spectrograms_*"))) == 1


def _configs(**snr) -> pd.DataFrame:
    """Two settings; fgsm loud at eps=1 (−10 dB) and quiet at eps=0.25 (8 dB), boundary only loud, pixel quiet."""
    rows = []
    for s in ("emodb (split=speaker_cv)", "ravdess (split=speaker_cv)"):
        for attack, config, acc, db in (("fgsm", "eps=0.25", 0.1, 8.0), ("fgsm", "eps=1", 0.0, -10.0),
                                        ("boundary", "default", 0.2, -3.0), ("pixel", "th=1", 0.3, 20.0),
                                        ("noise", "eps=0.25", 0.4, 12.0)):
            rows.append({"attack": attack, "setting": s, "split": "speaker_cv", "config": config, "adv_acc": acc,
                         "clean_acc": 0.5, "snr_db": snr.get("value", db), "changed": 1.0})
    rows.append({**rows[0], "setting": "emodb (split=paper)", "split": "paper", "adv_acc": 0.9, "clean_acc": 1.0})
    return pd.DataFrame(rows)


def test_the_first_screen_compares_attacks_at_one_snr_budget():
    """FGSM's loud eps=1 reaches 0.000 but is over the 0 dB budget: its quiet eps=0.25 is what counts; Boundary
    has no configuration that quiet; the leaky setting is left out; the noise baseline is never "strongest"."""
    from types import SimpleNamespace

    from ser_attacks.report.summary import _strongest, budget, leaderboard
    t = SimpleNamespace(configs=_configs())
    data, disp = leaderboard(t, 0.0)
    assert data.attack.tolist() == ["fgsm", "pixel", "noise", "boundary"]          # strongest first
    assert disp.columns.tolist() == ["attack", "emodb (split=speaker_cv)", "ravdess (split=speaker_cv)", "mean over 2"]
    assert disp.iloc[0].tolist() == ["clean (no attack)", "0.500", "0.500", "0.500"]
    assert disp.iloc[1, 1] == "0.100 (eps=0.25, 8.0 dB)"
    assert disp.iloc[4, 1] == "over budget (quietest -3.0 dB)" and disp.iloc[4, 3] == "—"
    text = _strongest(data, 0.0, 2)
    assert "the strongest attack is FGSM (adversarial accuracy 0.100" in text and "weakest is Pixel (0.300)" in text
    assert "Boundary has no configuration that quiet" in text
    # runs that logged no SNR: no matched budget, said so
    t = SimpleNamespace(configs=_configs(value=np.nan))
    assert budget(t) == -np.inf
    data, disp = leaderboard(t, budget(t))
    assert data.attack.tolist()[0] == "fgsm" and disp.iloc[1, 1] == "0.000 (eps=1)"


def test_the_first_screen_ranks_attacks_on_success_over_the_correct_segments():
    """Issue 25 defect 3 on the first screen: DeepFool moves away from the *predicted* class, so it also turns wrong
    predictions right. Here it makes 9 of the 10 correct segments wrong (success 0.9) and 3 of the 10 wrong ones
    right (adversarial accuracy 0.20); JSMA makes 7 of 10 wrong (success 0.7) and nothing right (0.15). Ranked on
    adversarial accuracy JSMA looked strongest; on the success rate over the correct segments DeepFool is, and
    its adversarial accuracy stands beside it."""
    from types import SimpleNamespace

    from ser_attacks.report.summary import _strongest, leaderboard
    setting = "emodb (split=speaker_cv)"
    clean = np.r_[np.ones(10), np.zeros(10)]

    def segs(kept_correct: int, right_of_wrong: int) -> pd.DataFrame:
        kept = np.r_[np.arange(10) < kept_correct, np.zeros(10)].astype(float)
        adv_ok = np.r_[kept[:10], np.arange(10) < right_of_wrong].astype(float)
        return pd.DataFrame({"key": [f"s{i}" for i in range(20)], "speaker": [f"spk{i % 4}" for i in range(20)],
                             "recording_id": [f"r{i}" for i in range(20)], "clean_ok": clean, "kept": kept,
                             "adv_ok": adv_ok})
    pooled = {"df": segs(1, 3), "js": segs(3, 0)}
    cf = pd.DataFrame([{"attack": a, "setting": setting, "split": "speaker_cv", "config": "default", "config_id": cid,
                        "adv_acc": acc, "clean_acc": 0.5, "snr_db": 10.0, "changed": 1.0}
                       for a, cid, acc in (("deepfool", "df", 0.20), ("jsma", "js", 0.15))])
    data, disp = leaderboard(SimpleNamespace(configs=cf, samples=pooled), 0.0)
    assert data.attack.tolist() == ["deepfool", "jsma"]
    assert data.mean_success.tolist() == pytest.approx([0.9, 0.7]) and data.mean_adv_acc.tolist() == [0.20, 0.15]
    assert disp.columns.tolist() == ["attack", f"{setting}: success / adv acc"]     # one setting: no mean column
    assert disp.iloc[0, 1] == "— / 0.500" and disp.iloc[1, 1] == "0.900 / 0.200 (default, 10.0 dB)"
    text = _strongest(data, 0.0, 1)
    assert "the strongest attack is DeepFool (success rate 0.900 on the correctly classified segments" in text
    assert "adversarial accuracy 0.200" in text and "the weakest is JSMA (0.700)" in text
