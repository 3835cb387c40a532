"""Tests for the synthetic emotional-speech corpus generator."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from ser_attacks.data import synthetic as syn
from ser_attacks.data.synthetic import (
    DEFAULT_EMOTIONS,
    EMOTIONS,
    LAYOUTS,
    MANIFEST_NAME,
    generate_corpus,
    synthesize_utterance,
)
from ser_attacks.data.synthetic.phonetics import sentence_content

EMODB_RE = re.compile(r"^(\d\d)(a01|a02|a04|a05|a07|b01|b02|b03|b09|b10)([WLEAFTN])a\.wav$")
EMOVO_RE = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm][123])-(b[123]|l[1-4]|n[1-5]|d[12])\.wav$")
RAVDESS_RE = re.compile(r"^03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)\.wav$")


def _rel(paths, root):
    return sorted(p.relative_to(root).as_posix() for p in paths)


def _f0_median(x: np.ndarray, sr: int) -> float:
    import librosa

    from ser_attacks.data.audio import ensure_librosa_kernels
    ensure_librosa_kernels()          # never compile librosa's kernels unguarded (tests/test_lifecycle.py)

    frame = 1024 if sr <= 16000 else 2048  # >= 2 periods of fmin
    f0 = librosa.yin(x, fmin=60, fmax=500, sr=sr, frame_length=frame, hop_length=frame // 4)
    rms = librosa.feature.rms(y=x, frame_length=frame, hop_length=frame // 4)[0]
    n = min(len(f0), len(rms))
    voiced = rms[:n] > 0.2 * rms.max()
    return float(np.median(f0[:n][voiced]))


def _active_rms(x: np.ndarray) -> float:
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    e = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    return float(e[e > 0.1 * e.max()].mean())


# ---------------------------------------------------------------------------
# constants / API
# ---------------------------------------------------------------------------


def test_public_constants():
    assert EMOTIONS == ("neutral", "happy", "sad", "bored", "disgust", "angry", "fear",
                        "surprised", "calm")
    assert LAYOUTS == ("emodb", "emovo", "ravdess")
    assert DEFAULT_EMOTIONS == {
        "emodb": ("bored", "disgust", "happy", "neutral", "sad"),
        "emovo": ("disgust", "fear", "happy", "neutral", "surprised"),
        "ravdess": ("disgust", "fear", "happy", "sad", "surprised"),
    }


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def test_synthesize_utterance_deterministic():
    a = synthesize_utterance("happy", "f", 11, 22)
    b = synthesize_utterance("happy", "f", 11, 22)
    c = synthesize_utterance("happy", "f", 11, 23)
    assert a.dtype == np.float32 and a.ndim == 1
    assert np.array_equal(a, b)
    assert not (len(a) == len(c) and np.array_equal(a, c))


def test_corpus_deterministic_bytes(tmp_path):
    kw = dict(layout="emodb", n_speakers=2, n_sentences=1, emotions=("happy", "sad"))
    p1 = generate_corpus(tmp_path / "a", seed=3, **kw)
    p2 = generate_corpus(tmp_path / "b", seed=3, **kw)
    p3 = generate_corpus(tmp_path / "c", seed=4, **kw)
    assert len(p1) == 4
    assert _rel(p1, tmp_path / "a") == _rel(p2, tmp_path / "b") == _rel(p3, tmp_path / "c")
    for x, y, z in zip(p1, p2, p3):
        assert x.read_bytes() == y.read_bytes()
        assert x.read_bytes() != z.read_bytes()
    m1 = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    m2 = json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())
    assert m1 == m2


def test_parallel_generation_matches_serial(tmp_path):
    kw = dict(layout="emodb", n_speakers=2, n_sentences=2, emotions=("angry", "neutral"), seed=5)
    serial = generate_corpus(tmp_path / "s", n_jobs=1, **kw)
    parallel = generate_corpus(tmp_path / "p", n_jobs=2, **kw)
    assert _rel(serial, tmp_path / "s") == _rel(parallel, tmp_path / "p")
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(serial, parallel))


# ---------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------


def test_emodb_layout(tmp_path):
    paths = generate_corpus(tmp_path, "emodb", n_speakers=4, n_sentences=2)
    assert len(paths) == 4 * 2 * 5
    assert paths == sorted(paths)
    speakers, sentences, letters = set(), set(), set()
    for p in paths:
        assert p.parent == tmp_path / "wav"
        m = EMODB_RE.match(p.name)
        assert m, p.name
        speakers.add(m.group(1))
        sentences.add(m.group(2))
        letters.add(m.group(3))
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert speakers == {"03", "08", "10", "09"}
    assert sentences == {"a01", "a02"}
    # bored, disgust, happy, neutral, sad
    assert letters == {"L", "E", "F", "N", "T"}


def test_emodb_all_speakers_and_genders(tmp_path):
    paths = generate_corpus(tmp_path, "emodb", n_speakers=10, n_sentences=1, emotions=["neutral"])
    ids = [p.name[:2] for p in paths]
    assert sorted(ids) == sorted(["03", "08", "10", "09", "11", "13", "12", "14", "15", "16"])
    # genders: EmoDB males are 03, 10, 11, 12, 15 -> their synthetic f0 must be low
    f0 = {p.name[:2]: _f0_median(sf.read(str(p), dtype="float32")[0], 16000) for p in paths}
    males = {"03", "10", "11", "12", "15"}
    assert max(f0[s] for s in males) < min(f0[s] for s in set(f0) - males)
    assert all(80 < f0[s] < 170 for s in males)


def test_emovo_layout(tmp_path):
    paths = generate_corpus(tmp_path, "emovo", n_speakers=2, n_sentences=1)
    assert len(paths) == 2 * 1 * 5
    codes = set()
    for p in paths:
        m = EMOVO_RE.match(p.name)
        assert m, p.name
        assert p.parent.name == m.group(2) and p.parent.parent == tmp_path
        codes.add(m.group(1))
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "PCM_16")
    assert {p.parent.name for p in paths} == {"f1", "m1"}
    assert codes == {"dis", "pau", "gio", "neu", "sor"}
    x, _ = sf.read(str(paths[0]))
    left, right = x[:, 0], x[:, 1]
    assert not np.array_equal(left, right)  # channels differ ...
    lag = max(range(0, 60), key=lambda d: float(np.dot(left[: len(left) - d], right[d:])))
    corr = np.corrcoef(left[: len(left) - lag], right[lag:])[0, 1]
    assert 0 < lag < 60 and corr > 0.95  # ... but are a delayed copy of the same speech


def test_ravdess_layout(tmp_path):
    paths = generate_corpus(tmp_path, "ravdess", n_speakers=2, n_sentences=6,
                            emotions=("neutral", "happy", "calm"))
    names = [p.name for p in paths]
    # neutral has no intensity-02 recordings: 4 of the 6 combinations remain
    assert len(paths) == 2 * (6 + 6 + 4)
    seen = set()
    for p in paths:
        m = RAVDESS_RE.match(p.name)
        assert m, p.name
        emo, inten, stmt, rep, actor = m.groups()
        assert p.parent.name == f"Actor_{actor}" and p.parent.parent == tmp_path
        assert emo in ("01", "02", "03")
        if emo == "01":
            assert inten == "01"
        seen.add((stmt, rep, inten))
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
    # first 6 combinations of the fixed order: all intensity-01 ones + 2 strong ones
    assert seen == {("01", "01", "01"), ("02", "01", "01"), ("01", "02", "01"),
                    ("02", "02", "01"), ("01", "01", "02"), ("02", "01", "02")}
    assert {p.parent.name for p in paths} == {"Actor_01", "Actor_02"}
    assert len(set(names)) == len(names)
    # odd actor = male, even = female
    f01 = _f0_median(sf.read(str(tmp_path / "Actor_01" / "03-01-03-01-01-01-01.wav"),
                             dtype="float32")[0], 48000)
    f02 = _f0_median(sf.read(str(tmp_path / "Actor_02" / "03-01-03-01-01-01-02.wav"),
                             dtype="float32")[0], 48000)
    assert f01 < f02


# ---------------------------------------------------------------------------
# manifest / idempotency
# ---------------------------------------------------------------------------


def test_manifest_idempotent_and_mismatch(tmp_path):
    kw = dict(layout="emodb", n_speakers=2, n_sentences=2, emotions=("happy", "sad"))
    paths = generate_corpus(tmp_path, seed=0, **kw)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["params"]["seed"] == 0 and manifest["params"]["layout"] == "emodb"
    assert manifest["files"] == _rel(paths, tmp_path)
    assert manifest["n_files"] == 8 and manifest["total_duration_s"] > 8 * 1.5
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    m_stamp = (tmp_path / MANIFEST_NAME).stat().st_mtime_ns

    # same parameters (emotion order irrelevant) -> nothing is rewritten
    again = generate_corpus(tmp_path, seed=0, **{**kw, "emotions": ("sad", "happy")})
    assert again == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    assert (tmp_path / MANIFEST_NAME).stat().st_mtime_ns == m_stamp

    # a missing file is regenerated (identically), the rest untouched
    victim = paths[1]
    old_bytes = victim.read_bytes()
    victim.unlink()
    generate_corpus(tmp_path, seed=0, **kw)
    assert victim.read_bytes() == old_bytes
    assert paths[0].stat().st_mtime_ns == stamps[paths[0]]

    # different parameters without overwrite -> error naming both
    with pytest.raises(ValueError) as exc:
        generate_corpus(tmp_path, seed=1, **kw)
    msg = str(exc.value)
    assert '"seed": 0' in msg and '"seed": 1' in msg and "overwrite" in msg
    assert all(p.read_bytes() for p in paths)  # nothing deleted

    # overwrite -> old corpus replaced; stale files removed
    new = generate_corpus(tmp_path, seed=1, overwrite=True,
                          **{**kw, "n_sentences": 1})
    assert len(new) == 4
    assert sorted(p.name for p in (tmp_path / "wav").glob("*.wav")) == sorted(p.name for p in new)
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["params"]["seed"] == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_other_layout_in_same_root_is_a_mismatch(tmp_path):
    generate_corpus(tmp_path, "emodb", n_speakers=2, n_sentences=1, emotions=["sad"])
    with pytest.raises(ValueError, match="different parameters"):
        generate_corpus(tmp_path, "ravdess", n_speakers=2, n_sentences=1, emotions=["sad"])


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n_speakers=3), r"even number >= 2 .*got 3"),
        (dict(n_speakers=0), r"even number >= 2"),
        (dict(n_speakers=12), r"at most 10 speakers"),
        (dict(layout="emovo", n_speakers=8), r"at most 6 speakers"),
        (dict(layout="emovo"), r"at most 6 speakers.*got n_speakers=10"),
        (dict(n_sentences=11), r"between 1 and 10"),
        (dict(layout="ravdess", n_sentences=9), r"between 1 and 8"),
        (dict(emotions=["surprised"]), r"'surprised' does not exist in the emodb layout"),
        (dict(layout="emovo", n_speakers=6, emotions=["calm"]), r"'calm' does not exist in the emovo layout"),
        (dict(layout="ravdess", emotions=["bored"]), r"'bored' does not exist in the ravdess"),
        (dict(emotions=["joy"]), r"unknown emotion 'joy'"),
        (dict(emotions=["sad", "sad"]), r"duplicate emotions: sad"),
        (dict(layout="iemocap"), r"unknown layout 'iemocap'.*emodb, emovo, ravdess"),
        (dict(seed=-1), r"seed must be >= 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        generate_corpus(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()  # validated before touching the disk


def test_bad_utterance_arguments():
    with pytest.raises(ValueError, match="unknown emotion"):
        synthesize_utterance("joy", "m", 0, 0)
    with pytest.raises(ValueError, match="gender"):
        synthesize_utterance("sad", "x", 0, 0)
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize_utterance("sad", "m", 0, 0, sample_rate=100)


# ---------------------------------------------------------------------------
# the signal
# ---------------------------------------------------------------------------


def test_signal_is_speech_like():
    sr = 16000
    for i, emo in enumerate(EMOTIONS):
        for g in "mf":
            x = synthesize_utterance(emo, g, 100 + i, 200 + i, sr, sentence="emodb:a01")
            dur = len(x) / sr
            assert 1.5 <= dur <= 4.5
            assert np.abs(x).max() < 0.99  # not clipped
            assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3  # not silent
            # leading/trailing near-silence (noise floor), well below the speech
            edge = np.concatenate([x[: int(0.05 * sr)], x[-int(0.05 * sr):]])
            assert np.sqrt(np.mean(edge.astype(np.float64) ** 2)) < 0.1 * _active_rms(x)
            # not a pure tone: broadband spectrum with energy spread over formants
            spec = np.abs(np.fft.rfft(x)) ** 2
            freqs = np.fft.rfftfreq(len(x), 1 / sr)
            share = spec[(freqs > 1000) & (freqs < 4000)].sum() / spec.sum()
            assert 0.01 < share < 0.9


def test_emotions_differ_prosodically():
    sr = 16000
    stats = {}
    for emo in ("sad", "happy", "angry"):
        f0s, levels, durs = [], [], []
        for k in range(3):
            for g in "mf":
                x = synthesize_utterance(emo, g, 7 + k, 1000 + k, sr, sentence="emodb:a04")
                f0s.append(np.log(_f0_median(x, sr)))
                levels.append(_active_rms(x))
                durs.append(len(x) / sr)
        stats[emo] = (np.mean(f0s), np.mean(levels), np.mean(durs))
    assert stats["sad"][0] < stats["happy"][0]  # lower pitch
    assert stats["sad"][1] < stats["happy"][1]  # softer
    assert stats["sad"][1] < stats["angry"][1]
    assert stats["sad"][2] > stats["happy"][2]  # slower


def test_sentence_content_drives_length():
    # a05 has more syllables than a01 -> longer across emotions and speakers
    sr = 16000
    short = [len(synthesize_utterance(e, "m", 3, i, sr, sentence="emodb:a01"))
             for i, e in enumerate(("neutral", "happy", "sad"))]
    long_ = [len(synthesize_utterance(e, "m", 3, i, sr, sentence="emodb:a05"))
             for i, e in enumerate(("neutral", "happy", "sad"))]
    assert np.mean(long_) > 1.2 * np.mean(short)
    c1, c2 = sentence_content("emodb:a01"), sentence_content("emodb:a01")
    assert np.array_equal(c1.vowels, c2.vowels) and len(c1.vowels) == 9


def test_cli(tmp_path, capsys):
    rc = syn.main(["--root", str(tmp_path), "--layout", "emodb", "--n-speakers", "2",
                   "--n-sentences", "1", "--emotions", "happy,sad", "--seed", "2"])
    out = capsys.readouterr().out.strip()
    assert rc == 0
    assert len(out.splitlines()) == 1
    assert re.match(r"^4 files, 2 speakers \(1 male, 1 female\), \d+\.\d s total", out), out
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 4
    rc = syn.main(["--root", str(tmp_path), "--n-speakers", "3"])
    assert rc == 2
    assert "even number" in capsys.readouterr().err
