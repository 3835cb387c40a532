"""Deterministic synthetic emotional speech: the project's embedded corpus.

Real SER corpora (EmoDB, EMOVO, RAVDESS) cannot be downloaded here, so this package renders
*synthetic* utterances and writes them with exactly the folder layout and file naming of those
corpora, so that the real loaders parse them.

Modules, in the order an utterance flows through them:

* ``layouts``   - which files a corpus has: speaker ids, sentences, file names (emotion codes and
  genders from the loaders' specs in ``data/corpora.py``), and their seeds;
* ``prosody``   - the speaker's voice and the emotion's prosody and voice quality;
* ``phonetics`` - the sentence's segmental content and its timing;
* ``voice``     - the source-filter synthesiser (``synthesize_utterance``), built on ``dsp``;
* ``corpus``    - writing the files atomically with a manifest (``generate_corpus``);
* ``cli``       - the command line.

Emotions are rendered only through prosody and voice quality; the segmental content depends only on
the sentence, so the same sentence has the same content across emotions and speakers. Everything is
seeded from ``(seed, layout, speaker, emotion, sentence)`` (``seeds``): the same arguments give
byte-identical WAV files.

CLI::

    python -m ser_attacks.data.synthetic --root DIR [--layout emodb]
        [--n-speakers 10] [--n-sentences 5] [--seed 0] [--emotions a,b,c]
        [--overwrite] [--n-jobs 1]
"""
from __future__ import annotations

from .cli import main
from .corpus import MANIFEST_NAME, generate_corpus, read_manifest
from .layouts import DEFAULT_EMOTIONS, LAYOUT_CHANNELS, LAYOUT_SAMPLE_RATES, LAYOUTS
from .prosody import EMOTIONS
from .voice import GENERATOR_VERSION, synthesize_utterance

__all__ = [
    "EMOTIONS",
    "LAYOUTS",
    "DEFAULT_EMOTIONS",
    "LAYOUT_SAMPLE_RATES",
    "LAYOUT_CHANNELS",
    "MANIFEST_NAME",
    "GENERATOR_VERSION",
    "synthesize_utterance",
    "generate_corpus",
    "read_manifest",
    "main",
]
