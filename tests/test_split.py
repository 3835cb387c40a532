"""The three split modes; `recording` and `speaker` must never leak, `paper` does (by design)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_attacks.split import assert_no_leakage, make_split


def fake_segments(n_speakers=10, n_rec=20, seg_per_rec=3, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    emotions = ["bored", "disgust", "happy", "neutral", "sad"]
    for s in range(n_speakers):
        for r in range(n_rec):
            for k in range(rng.integers(1, seg_per_rec + 1)):
                rows.append(dict(recording_id=f"s{s}/r{r}", speaker=f"s{s}", gender="male" if s % 2 else "female",
                                 emotion=emotions[r % 5], segment=k))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recording_split_has_no_leakage_and_right_sizes(seed):
    seg = fake_segments(seed=seed)
    sp = make_split(seg, "recording", 0.16, 0.2, seed)
    assert_no_leakage(seg, sp, "recording_id")
    n_rec = seg.recording_id.nunique()
    test_recs = seg.recording_id.iloc[sp.test].nunique()
    assert abs(test_recs - 0.2 * n_rec) <= 1
    assert abs(seg.recording_id.iloc[sp.val].nunique() - 0.16 * n_rec) <= 2
    # stratified by emotion x gender: every stratum is in the test split
    strata = seg.iloc[sp.test].groupby(["emotion", "gender"]).size()
    assert len(strata) == 10
    assert sorted(np.concatenate([sp.train, sp.val, sp.test]).tolist()) == list(range(len(seg)))


def test_speaker_split_is_speaker_independent():
    seg = fake_segments(n_speakers=10)
    sp = make_split(seg, "speaker", 0.16, 0.2, 0)
    assert_no_leakage(seg, sp, "speaker")
    assert_no_leakage(seg, sp, "recording_id")


def test_paper_split_leaks_recordings():
    seg = fake_segments(seg_per_rec=4)
    sp = make_split(seg, "paper", 0.16, 0.2, 0)
    with pytest.raises(AssertionError, match="in both train and (val|test)"):
        assert_no_leakage(seg, sp, "recording_id")


def test_split_is_deterministic_and_seed_dependent():
    seg = fake_segments()
    a, b, c = (make_split(seg, "recording", 0.16, 0.2, s) for s in (0, 0, 1))
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_bad_split_arguments():
    seg = fake_segments()
    with pytest.raises(ValueError, match="Unknown split mode"):
        make_split(seg, "random")
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        make_split(seg, "recording", 0.5, 0.6)


# ------------------------------------------------------------------ utterances and speaker folds, per layout
LAYOUTS = {"emodb": dict(n_speakers=6, n_sentences=3, emotions=["happy", "sad", "neutral"]),
           "emovo": dict(n_speakers=6, n_sentences=3, emotions=["happy", "disgust", "neutral"]),
           "ravdess": dict(n_speakers=6, n_sentences=4, emotions=["happy", "sad"])}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Segment tables (2 segments per recording) of generated corpora in every layout. The EmoDB
    generator writes version `a` only, so a second take (version `b`) of a third of its utterances is
    added as a copy, as in the real corpus (e.g. 03a02Wb.wav, 03a02Wc.wav)."""
    import shutil

    from ser_attacks.data.corpora import load_corpus
    from ser_attacks.data.synthetic import generate_corpus
    out = {}
    for layout, kw in LAYOUTS.items():
        root = tmp_path_factory.mktemp(layout)
        paths = generate_corpus(root, layout=layout, seed=0, **kw)
        if layout == "emodb":
            for p in paths[::3]:
                shutil.copy(p, p.with_name(p.name[:-5] + "b.wav"))
        table = load_corpus(layout, root).table
        out[layout] = pd.concat([table.assign(segment=k) for k in (0, 1)], ignore_index=True)
    return out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_takes_of_one_utterance_never_cross_parts(layouts, layout):
    """Repeated takes (EmoDB version letters, RAVDESS r01/r02) are one utterance; the recording split keeps
    them together (grouping by file alone put twin takes in train and test)."""
    seg = layouts[layout]
    per_utt = seg.drop_duplicates("recording_id").groupby("utterance").size()
    if layout != "emovo":             # EMOVO has one take per speaker, text and emotion
        assert (per_utt == 2).sum() >= 10, "the corpus must hold repeated takes for this test to bite"
    assert seg.groupby("utterance")[["speaker", "emotion"]].nunique().max().max() == 1
    crossed_by_file = 0
    for seed in range(5):
        sp = make_split(seg, "recording", 0.16, 0.2, seed)
        assert_no_leakage(seg, sp, "utterance")
        assert_no_leakage(seg, sp, "recording_id")
        old = make_split(seg.drop(columns="utterance"), "recording", 0.16, 0.2, seed)   # grouped by file
        try:
            assert_no_leakage(seg, old, "utterance")
        except AssertionError:
            crossed_by_file += 1
    if layout != "emovo":
        assert crossed_by_file >= 4, "grouping by file lets twin takes cross parts"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_speaker_cv_tests_every_speaker_once_with_balanced_folds(layouts, layout):
    from ser_attacks.split import speaker_folds
    seg = layouts[layout]
    folds = speaker_folds(seg)
    assert len(folds) == 3                         # 3 speakers per gender: 3 folds of 1 female + 1 male
    gender = seg.drop_duplicates("speaker").set_index("speaker").gender
    tested = []
    for f in range(len(folds)):
        sp = make_split(seg, "speaker_cv", fold=f)
        assert_no_leakage(seg, sp, "speaker")
        test_spk = sorted(seg.speaker.iloc[sp.test].unique())
        val_spk = sorted(seg.speaker.iloc[sp.val].unique())
        assert test_spk == folds[f] and val_spk == folds[(f + 1) % 3]
        assert sorted(gender[test_spk]) == ["female", "male"] and sorted(gender[val_spk]) == ["female", "male"]
        assert len(sp.train) + len(sp.val) + len(sp.test) == len(seg)
        tested += test_spk
    assert sorted(tested) == sorted(seg.speaker.unique())       # every speaker tested exactly once
    assert make_split(seg, "speaker_cv", fold=1).test.tolist() == make_split(seg, "speaker_cv", fold=1).test.tolist()


def test_speaker_cv_fold_sizes_follow_the_corpus():
    """EmoDB (5 + 5 speakers): 5 folds of 1 + 1; RAVDESS (12 + 12): 6 folds of 2 + 2; EMOVO (3 + 3): 3 of 1 + 1."""
    from ser_attacks.split import SplitError, speaker_folds
    for corpus, n_per_gender, k, per_fold in (("emodb", 5, 5, 2), ("ravdess", 12, 6, 4), ("emovo", 3, 3, 2)):
        seg = pd.DataFrame([dict(speaker=f"{g}{i:02d}", gender=g, corpus=corpus, recording_id=f"{g}{i}", segment=0,
                                 emotion="happy") for g in ("female", "male") for i in range(n_per_gender)])
        folds = speaker_folds(seg)
        assert len(folds) == k and all(len(f) == per_fold for f in folds)
        assert all(sum(s.startswith("female") for s in f) == per_fold // 2 for f in folds)
    two = pd.DataFrame([dict(speaker=s, gender=g, corpus="ravdess") for s, g in (("a", "female"), ("b", "male"))])
    with pytest.raises(SplitError, match="at least 3 folds"):
        speaker_folds(two)
    seg = fake_segments(n_speakers=10)
    with pytest.raises(SplitError, match="split.fold=7 is out of range"):
        make_split(seg, "speaker_cv", fold=7)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_speaker_cv_validation_on_training_speakers_utterances(layouts, layout):
    """split.val_utterances: test = the fold's unseen speakers as before; validation = a stratified share of
    the other speakers' utterances (all takes and segments of an utterance on one side), so training keeps
    k - 1 folds of speakers instead of k - 2."""
    from ser_attacks.split import SplitError, speaker_folds
    seg = layouts[layout]
    folds = speaker_folds(seg)
    for f in range(len(folds)):
        sp = make_split(seg, "speaker_cv", fold=f, val_utterances=0.25)
        ref = make_split(seg, "speaker_cv", fold=f)
        assert sp.test.tolist() == ref.test.tolist()
        test_spk = set(seg.speaker.iloc[sp.test])
        train_spk, val_spk = set(seg.speaker.iloc[sp.train]), set(seg.speaker.iloc[sp.val])
        assert not test_spk & (train_spk | val_spk)
        assert train_spk == set(seg.speaker) - test_spk and val_spk <= train_spk    # 2 folds of speakers, not 1
        assert_no_leakage(seg, sp, "utterance")
        n_utt = seg.iloc[np.concatenate([sp.train, sp.val])].utterance.nunique()
        assert abs(seg.iloc[sp.val].utterance.nunique() - 0.25 * n_utt) <= 1
        assert sorted(np.concatenate([sp.train, sp.val, sp.test]).tolist()) == list(range(len(seg)))
        assert len(sp.train) > len(ref.train)
    again = make_split(seg, "speaker_cv", fold=0, val_utterances=0.25)
    assert again.val.tolist() == make_split(seg, "speaker_cv", fold=0, val_utterances=0.25).val.tolist()
    for bad in (0, 1, 1.5):
        with pytest.raises(SplitError, match="val_utterances"):
            make_split(seg, "speaker_cv", fold=0, val_utterances=bad)


def test_speaker_cv_with_validation_utterances_needs_only_two_folds():
    from ser_attacks.split import SplitError
    seg = fake_segments(n_speakers=4)                           # 2 female + 2 male: 2 folds
    sp = make_split(seg, "speaker_cv", fold=1, n_folds=2, val_utterances=0.25)
    # 4 recordings per speaker x emotion cell: stratified by speaker x emotion, every training speaker validates
    assert set(seg.speaker.iloc[sp.train]) == set(seg.speaker.iloc[sp.val])
    assert (seg.iloc[sp.val].groupby(["speaker", "emotion"]).recording_id.nunique() == 1).all()
    assert not set(seg.speaker.iloc[sp.test]) & set(seg.speaker.iloc[sp.train])
    with pytest.raises(SplitError, match=r"at least 3 folds \(test, validation, training\)"):
        make_split(seg, "speaker_cv", fold=1, n_folds=2)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_leave_one_speaker_out_with_validation_utterances(layouts, layout):
    """split.n_folds = the number of speakers (EMOVO in experiment=study): one speaker per fold, genders
    alternating, every speaker tested once, and with split.val_utterances all 5 other speakers train."""
    from ser_attacks.split import SplitError, speaker_folds
    seg = layouts[layout]
    n = seg.speaker.nunique()
    folds = speaker_folds(seg, n_folds=n, min_folds=2)
    assert len(folds) == n and all(len(f) == 1 for f in folds)
    gender = seg.drop_duplicates("speaker").set_index("speaker").gender
    assert [gender[f[0]] for f in folds] == ["female", "male"] * (n // 2)
    tested = []
    for f in range(n):
        sp = make_split(seg, "speaker_cv", fold=f, n_folds=n, val_utterances=0.16)
        assert_no_leakage(seg, sp, "utterance")
        test_spk = set(seg.speaker.iloc[sp.test])
        assert test_spk == set(folds[f]) and set(seg.speaker.iloc[sp.train]) == set(seg.speaker) - test_spk
        assert set(seg.speaker.iloc[sp.val]) <= set(seg.speaker.iloc[sp.train])
        tested += sorted(test_spk)
    assert sorted(tested) == sorted(seg.speaker.unique())
    sp = make_split(seg, "speaker_cv", fold=0, n_folds=n)        # a validation fold of one speaker: n - 2 train
    assert seg.speaker.iloc[sp.val].nunique() == 1 and seg.speaker.iloc[sp.train].nunique() == n - 2
    with pytest.raises(SplitError, match=rf"split.n_folds={n} \(leave one speaker out\)"):
        make_split(seg, "speaker_cv", fold=0, n_folds=n - 1)


def test_study_folds_make_emovo_leave_one_speaker_out():
    from ser_attacks.split import DEFAULT_FOLDS, STUDY_FOLDS
    assert STUDY_FOLDS == {**DEFAULT_FOLDS, "emovo": 6}
