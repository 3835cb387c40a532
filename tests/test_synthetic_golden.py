"""The embedded corpus is pinned byte for byte, and every file it names is one the loader reads back.

The digests below were computed from the single-module generator (``data/synthetic.py`` before it was split
into a package, commit 4bc087a): a refactoring of the generator must leave them unchanged. A deliberate change
of the rendered signal must bump ``GENERATOR_VERSION`` (cached corpora are keyed by it) and update them.

Each layout pins one digest per class of CPU numpy runs on: numpy's float64 ``exp``/``log``/``cos`` take
AVX-512 kernels where the CPU has AVX-512 (numpy's dispatch target X86_V4: the Intel machines the digests were
first computed on) and libm's elsewhere (X86_V3, AVX2 only: an AMD EPYC, 2026-12-07); they differ in the last
bits, enough for the EMOVO and RAVDESS layouts' files to differ (EmoDB's agree). The cause by elimination: the same
code and pinned libraries gave other bytes when only the CPU changed.
The test requires, exactly, the digest of the class of the CPU it runs on: a change of the generator breaks both.
"""
from __future__ import annotations

import hashlib

import pytest

from ser_attacks.data.corpora import EMODB_EMOTIONS, EMOVO_EMOTIONS, RAVDESS_EMOTIONS, SPECS
from ser_attacks.data.synthetic import DEFAULT_EMOTIONS, LAYOUTS, generate_corpus
from ser_attacks.data.synthetic.layouts import plan_corpus

GOLDEN = {
    # layout: (generate_corpus arguments, number of files incl. the manifest,
    #          sha256 of "path\tsha256\n" lines: (with AVX-512, without))
    "emodb": (dict(n_speakers=2, n_sentences=1, emotions=("happy", "sad"), seed=3), 5,
              ("8cf0216156db204f0dfeb9ed1679341d9baf4d8fc0b0bdb968bf52e0e604227d",) * 2),
    "emovo": (dict(n_speakers=2, n_sentences=1, emotions=("fear", "surprised"), seed=1), 5,
              ("75aa7019be05db5488b25b93b5c1e753770e53e38040231aecbfc1d123d46302",
               "d059f3af7768075ddb8a845221c41e515f8670224233df91712d43d831ea1b82")),
    # n_sentences=5 reaches intensity 02 (no strong neutral: 4 + 5 files per actor)
    "ravdess": (dict(n_speakers=2, n_sentences=5, emotions=("neutral", "calm"), seed=2), 19,
                ("45211e16338caefd81dbea33c61a4845ef9411d0c280e42a065bd61728f68269",
                 "cf76562b6c5673aa6991d31b33729f1ba72d5c44608e3436d3ba4d73c7ab884c")),
}


def _has_avx512() -> bool:
    """Whether numpy dispatches its AVX-512 kernels on this CPU."""
    from numpy._core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))          # the features of numpy's X86_V4 target


def _listing(root) -> str:
    return "".join(f"{p.relative_to(root).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                   for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corpus_bytes_pinned(tmp_path, layout):
    kwargs, n_files, (with_avx512, without) = GOLDEN[layout]
    digest = with_avx512 if _has_avx512() else without
    generate_corpus(tmp_path, layout=layout, **kwargs)
    listing = _listing(tmp_path)
    assert len(listing.splitlines()) == n_files, listing
    assert hashlib.sha256(listing.encode()).hexdigest() == digest, (
        f"the {layout} corpus is no longer byte-identical to the pinned one; if the signal changed on purpose, "
        f"bump GENERATOR_VERSION and update GOLDEN. Files:\n{listing}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_planned_file_parses_back(layout):
    """At the largest size and with every emotion of the corpus, the loader reads each file name as the
    emotion and gender the generator rendered, and the speakers are half male, half female."""
    spec = SPECS[layout]
    codes = {"emodb": EMODB_EMOTIONS, "emovo": EMOVO_EMOTIONS, "ravdess": RAVDESS_EMOTIONS}[layout]
    emotions = sorted(set(codes.values()))
    for n_speakers in (2, 6):
        jobs, params = plan_corpus(layout, n_speakers, 1, emotions, seed=0)
        assert params["emotions"] == emotions
        genders = {}
        for job in jobs:
            m = spec.regex.match(job.relpath.rsplit("/", 1)[-1])
            assert m is not None, job.relpath
            parsed = spec.parse(m)
            assert (parsed["emotion"], parsed["gender"][0]) == (job.emotion, job.gender), job.relpath
            genders[parsed["speaker"]] = job.gender
        assert sorted(genders.values()) == ["f"] * (n_speakers // 2) + ["m"] * (n_speakers // 2)
    assert set(DEFAULT_EMOTIONS[layout]) <= set(emotions)
