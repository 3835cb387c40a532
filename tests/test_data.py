"""Loaders, audio front end, feature cache and bad input, on generated files (no real corpus needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_attacks.data import DatasetError, FrontEnd, prepare
from ser_attacks.data.audio import BadAudio, load_audio, segments
from ser_attacks.data.corpora import load_corpus
from ser_attacks.data.features import load_or_extract
from ser_attacks.data.synthetic import generate_corpus

FE = FrontEnd()


def test_emodb_layout_loader_on_embedded_corpus(corpus_root):
    c = load_corpus("emodb", corpus_root)
    t = c.table
    assert len(t) == 60 and c.n_skipped == 0
    assert set(t.emotion) == {"bored", "disgust", "happy", "neutral", "sad"}
    assert t.groupby("speaker").gender.nunique().max() == 1
    male = {s[-2:] for s in t[t.gender == "male"].speaker}
    assert male <= {"03", "10", "11", "12", "15"} and male
    assert set(t.columns) >= {"path", "corpus", "language", "speaker", "gender", "emotion", "sentence",
                              "duration", "sample_rate", "channels"}
    assert (t.sample_rate == 16000).all() and (t.language == "German").all()


@pytest.mark.parametrize("layout,rate,channels", [("emovo", 48000, 2), ("ravdess", 48000, 1)])
def test_emovo_and_ravdess_layout_loaders(tmp_path, layout, rate, channels):
    generate_corpus(tmp_path, layout=layout, n_speakers=2, n_sentences=2, seed=1)
    t = load_corpus(layout, tmp_path).table
    assert len(t) == 2 * 2 * 5
    assert (t.sample_rate == rate).all() and (t.channels == channels).all()
    assert sorted(t.groupby("gender").speaker.nunique().items()) == [("female", 1), ("male", 1)]
    x = load_audio(t.path[0], 16000)
    assert x.ndim == 1 and abs(len(x) / 16000 - t.duration[0]) < 0.01


def test_emotion_filter_and_unknown_emotion(corpus_root):
    assert set(load_corpus("emodb", corpus_root, ["sad", "happy"]).table.emotion) == {"sad", "happy"}
    with pytest.raises(DatasetError, match="do not exist in emodb"):
        load_corpus("emodb", corpus_root, ["surprised"])


def test_missing_or_unrecognisable_root_names_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*wav/SSTTTEV\.wav"):
        load_corpus("emodb", tmp_path / "missing")
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "hello.wav").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"No emodb recordings.*1 files skipped"):
        load_corpus("emodb", tmp_path)


def _tone(sr=16000, seconds=1.5, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.repeat(y[:, None], channels, 1) if channels > 1 else y


@pytest.mark.parametrize("subtype,channels,rate", [("PCM_U8", 1, 8000), ("PCM_24", 2, 44100),
                                                   ("FLOAT", 1, 22050), ("PCM_16", 2, 48000)])
def test_wav_formats_load_as_16k_mono(tmp_path, subtype, channels, rate):
    p = tmp_path / "x.wav"
    sf.write(p, _tone(rate, 1.5, channels), rate, subtype=subtype)
    y = load_audio(str(p), 16000)
    assert y.ndim == 1 and y.dtype == np.float32 and abs(len(y) - 24000) <= 2
    assert 0.1 < np.abs(y).max() < 1


def test_bad_files_are_skipped_and_counted(tmp_path, corpus_root):
    root = tmp_path / "c"
    (root / "wav").mkdir(parents=True)
    good = sorted((corpus_root / "wav").glob("*.wav"))[:12]
    for p in good:
        (root / "wav" / p.name).write_bytes(p.read_bytes())
    sf.write(root / "wav" / "16a01Na.wav", np.zeros(16000), 16000)               # silent
    sf.write(root / "wav" / "16a02Na.wav", np.zeros(100) + 0.2, 16000)           # shorter than a frame
    (root / "wav" / "16a04Na.wav").write_bytes(b"RIFF\x00\x00garbage")           # corrupt
    sf.write(root / "wav" / "16a05Na.wav", np.zeros(0), 16000)                    # empty
    (root / "wav" / "notes.wav").write_bytes(b"")                                 # unknown name
    c = load_corpus("emodb", root)
    reasons = dict(c.skipped)
    assert "unrecognised" in reasons[str(root / "wav" / "notes.wav")]
    assert "unreadable" in reasons[str(root / "wav" / "16a04Na.wav")]
    assert "empty" in reasons[str(root / "wav" / "16a05Na.wav")]
    feats = load_or_extract(c.table, FE, None, progress=False)
    fskip = dict(feats.skipped)
    assert "silent" in fskip[str(root / "wav" / "16a01Na.wav")]
    assert "shorter than one frame" in fskip[str(root / "wav" / "16a02Na.wav")]
    assert feats.segments.recording_id.nunique() == 12


def test_segments_loop_short_and_drop_short_tails():
    sr = FE.sample_rate
    one = segments(np.arange(int(1.2 * sr), dtype=np.float32), FE)           # short clip → looped
    assert len(one) == 1 and len(one[0]) == 3 * sr and one[0][int(1.2 * sr)] == 0
    assert len(segments(np.ones(int(6.5 * sr), np.float32), FE)) == 2           # 0.5 s tail dropped
    assert len(segments(np.ones(int(7.0 * sr), np.float32), FE)) == 3           # 1.0 s tail kept, looped
    paper = FrontEnd(min_tail_seconds=0.0)
    assert len(segments(np.ones(int(6.5 * sr), np.float32), paper)) == 3


def test_feature_shape_and_warm_cache(tmp_path, corpus_root):
    t = load_corpus("emodb", corpus_root).table.iloc[:10]
    cold = load_or_extract(t, FE, tmp_path, progress=False)
    assert cold.X.shape[1:] == (261, 128) and cold.X.dtype == np.float32 and not cold.from_cache
    assert len(cold.segments) == len(cold.X) >= 10
    warm = load_or_extract(t, FE, tmp_path, progress=False)
    assert warm.from_cache and np.array_equal(warm.X, cold.X)
    keys = ["recording_id", "segment"]
    pd.testing.assert_frame_equal(warm.segments[keys], cold.segments[keys])
    other = load_or_extract(t, FrontEnd(n_mels=64), tmp_path, progress=False)   # any parameter → new entry
    assert not other.from_cache and other.X.shape[2] == 64
    assert len(list((tmp_path / "features").iterdir())) == 4   # 2 entries + 2 lock files, no temp leftovers


def test_bad_audio_raises_for_silence():
    from ser_attacks.data.audio import trim
    with pytest.raises(BadAudio, match="silent"):
        trim(np.zeros(16000, np.float32), FE)


def test_prepare_gives_a_leak_free_split(cfg_factory):
    data = prepare(cfg_factory(), progress=False)
    seg = data.segments
    parts = {k: set(seg.recording_id.iloc[getattr(data.split, k)]) for k in ("train", "val", "test")}
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["val"])
    assert sum(data.split.sizes().values()) == len(seg)
    assert data.classes == ["bored", "disgust", "happy", "neutral", "sad"]
    assert set(data.y) == set(range(5))


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="real corpora (../shared/data) not present")
@pytest.mark.parametrize("corpus,n,by_gender,by_emotion", [
    ("emodb", 535, {"male": 233, "female": 302},
     {"angry": 127, "bored": 81, "neutral": 79, "happy": 71, "fear": 69, "sad": 62, "disgust": 46}),
    ("ravdess", 120, {"male": 60, "female": 60},
     {"neutral": 8, **{e: 16 for e in ("calm", "happy", "sad", "angry", "fear", "disgust", "surprised")}}),
    ("emovo", 70, {"male": 35, "female": 35},
     {e: 10 for e in ("disgust", "happy", "neutral", "fear", "angry", "surprised", "sad")}),
])
def test_shared_real_corpora_counts_match_file_names(corpus, n, by_gender, by_emotion):
    """Validation on the real files (skipped without ../shared/data): counts from the shared README."""
    c = load_corpus(corpus, SHARED / corpus)
    t = c.table
    assert len(t) == n and c.n_skipped == 0
    assert t.gender.value_counts().to_dict() == by_gender
    assert t.emotion.value_counts().to_dict() == by_emotion
    assert t.groupby("speaker").gender.nunique().max() == 1
    if corpus == "emodb":
        assert {s[-2:] for s in t[t.gender == "male"].speaker} == {"03", "10", "11", "12", "15"}
    else:   # 48 kHz originals, a few of a different channel count
        assert (t.sample_rate == 48000).all() and set(t.channels) == {1, 2}


@pytest.mark.parametrize("layout", ["emodb", "emovo", "ravdess"])
def test_describe_tables_on_generated_layouts(tmp_path, layout):
    from ser_attacks.data.__main__ import describe_table, markdown
    generate_corpus(tmp_path, layout=layout, n_speakers=2, n_sentences=2, seed=1)
    t = load_corpus(layout, tmp_path).table
    tables = describe_table(t)
    ct = tables["Recordings per emotion and gender"]
    assert ct.loc["total", "total"] == len(t) == 20
    assert ct.loc["total", "female"] == ct.loc["total", "male"] == 10
    assert tables["Speakers per gender"].loc["total", "speakers"] == 2
    assert tables["Duration (s) per gender"].loc["all", "count"] == 20
    md = markdown(ct)
    assert md.splitlines()[0] == "| emotion | female | male | total |" and md.count("\n") == len(ct) + 1


def test_describe_command_with_segments(cfg_factory, capsys):
    from ser_attacks.data.__main__ import describe, describe_segments
    cfg = cfg_factory("augment=paper", "augment.versions=[{kind:pitch,amount:2.0}]")
    text = describe(cfg)
    assert "Recordings vs segments" in text and "pitch+2" in text
    data = prepare(cfg, progress=False)
    seg = describe_segments(data)
    assert seg.loc["train", "augmented segments"] == seg.loc["train", "original segments"] > 0
    assert seg.loc["test", "augmented segments"] == 0 and seg.loc["val", "augmented segments"] == 0
    assert seg.loc["total", "segments"] == len(data.segments)


def test_describe_cli_names_the_layout_for_a_bad_root(tmp_path, capsys):
    from ser_attacks.data.__main__ import main
    assert main(["describe", "dataset=ravdess", f"dataset.root={tmp_path}", "--no-features"]) == 2
    assert "Actor_NN/03-01-EE-II-SS-RR-NN.wav" in capsys.readouterr().err
    generate_corpus(tmp_path, layout="ravdess", n_speakers=2, n_sentences=1, seed=0)
    out = tmp_path / "d.md"
    assert main(["describe", "dataset=ravdess", f"dataset.root={tmp_path}", "--no-features", "--out", str(out)]) == 0
    assert "| total | 5 | 5 | 10 |" in out.read_text()
