"""Writing a corpus: render every file of a layout, atomically, with a manifest written last.

The manifest (``synthetic.json``: parameters + file list) makes generation idempotent: a complete corpus
with the same parameters is left alone, a partial one is completed, and one with other parameters is
replaced only on request (and then only the files it listed are deleted).
"""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import soundfile as sf

from .dsp import to_stereo
from .layouts import LAYOUT_CHANNELS, LAYOUT_SAMPLE_RATES, Job, check_int, plan_corpus
from .seeds import stable_int
from .voice import GENERATOR_VERSION, synthesize_utterance

MANIFEST_NAME = "synthetic.json"


def _atomic_write_bytes(path: pathlib.Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _render_and_write(job: Job, root: str) -> float:
    x = synthesize_utterance(job.emotion, job.gender, job.speaker_seed, job.utterance_seed,
                             job.sample_rate, sentence=job.sentence, intensity=job.intensity)
    if job.channels == 2:
        x = to_stereo(x, stable_int(job.stereo_seed, job.relpath))
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    path = pathlib.Path(root) / job.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(
        path, lambda tmp: sf.write(str(tmp), pcm, job.sample_rate, subtype="PCM_16", format="WAV")
    )
    return len(pcm) / job.sample_rate


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The ``synthetic.json`` manifest under ``root``, or None if absent/unreadable."""
    path = pathlib.Path(root) / MANIFEST_NAME
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) \
            or not isinstance(data.get("files"), list):
        return None
    return data


def _remove_listed(root: pathlib.Path, manifest: dict) -> None:
    """Delete the files of an older synthetic corpus (only those it listed)."""
    root_res = root.resolve()
    dirs = set()
    for rel in manifest.get("files", []):
        p = (root / str(rel)).resolve()
        if root_res not in p.parents or p.suffix.lower() != ".wav":
            continue  # never touch anything outside root / not a wav
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        dirs.add(p.parent)
    for d in sorted(dirs, key=lambda q: len(q.parts), reverse=True):
        if d != root_res:
            try:
                d.rmdir()  # only succeeds when empty
            except OSError:
                pass
    try:
        (root / MANIFEST_NAME).unlink()
    except FileNotFoundError:
        pass


def _pending(root: pathlib.Path, jobs: list[Job], params: dict, overwrite: bool) -> list[Job]:
    """The jobs still to render given what ``root`` holds; clears an older corpus when ``overwrite``."""
    old = read_manifest(root)
    if old is not None:
        if old["params"] == params:
            if sorted(old["files"]) == [j.relpath for j in jobs]:
                return [j for j in jobs if not (root / j.relpath).is_file()]
        elif not overwrite:
            raise ValueError(
                f"{root} already holds a synthetic corpus generated with different parameters "
                f"(existing: {json.dumps(old['params'], sort_keys=True)}; "
                f"requested: {json.dumps(params, sort_keys=True)}); "
                f"pass overwrite=True (--overwrite) or use another root"
            )
        else:
            _remove_listed(root, old)
    elif (root / MANIFEST_NAME).exists() and not overwrite:
        raise ValueError(f"{root / MANIFEST_NAME} exists but is not a valid manifest; "
                         f"pass overwrite=True (--overwrite) or remove it")
    return jobs


def _write_manifest(root: pathlib.Path, params: dict, expected: list[str]) -> None:
    total = 0.0
    for rel in expected:
        info = sf.info(str(root / rel))
        total += info.frames / info.samplerate
    layout = params["layout"]
    manifest = {
        "generator": "ser_attacks.data.synthetic",
        "params": params,
        "sample_rate": LAYOUT_SAMPLE_RATES[layout],
        "channels": LAYOUT_CHANNELS[layout],
        "n_files": len(expected),
        "total_duration_s": round(total, 3),
        "files": expected,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _atomic_write_bytes(root / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def generate_corpus(root: str | os.PathLike, layout: str = "emodb", n_speakers: int = 10,
                    n_sentences: int = 5, emotions: Sequence[str] | str | None = None,
                    seed: int = 0, overwrite: bool = False, n_jobs: int = 1) -> list[pathlib.Path]:
    """Write a synthetic corpus under ``root`` in the given ``layout``.

    Half the speakers are male, half female (``n_speakers`` must be even and
    >= 2). ``emotions=None`` uses :data:`DEFAULT_EMOTIONS[layout]`. Each WAV is
    written atomically; a ``synthetic.json`` manifest (parameters + file list)
    is written last, atomically. If ``root`` already holds a complete corpus
    generated with the same parameters nothing is rewritten; if it holds one
    with different parameters, ``overwrite=False`` raises ``ValueError`` and
    ``overwrite=True`` deletes the old corpus' files and regenerates.

    RAVDESS note: neutral has no intensity-02 recordings, so with
    ``n_sentences > 4`` neutral gets fewer files than the other emotions.

    Returns the sorted list of written (or already present) WAV paths.
    """
    root = pathlib.Path(root)
    jobs, params = plan_corpus(layout, n_speakers, n_sentences, emotions, seed)
    params = {"generator_version": GENERATOR_VERSION, **params}
    n_jobs = check_int("n_jobs", n_jobs)
    if n_jobs == -1 or n_jobs == 0:
        n_jobs = os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all cores); got {n_jobs}")
    expected = [j.relpath for j in jobs]
    paths = sorted(root / r for r in expected)

    todo = _pending(root, jobs, params, overwrite)
    if not todo:
        return paths
    root.mkdir(parents=True, exist_ok=True)
    if n_jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo))) as ex:
            list(ex.map(_render_and_write, todo, [str(root)] * len(todo),
                        chunksize=max(1, len(todo) // (4 * n_jobs))))
    else:
        for job in todo:
            _render_and_write(job, str(root))
    _write_manifest(root, params, expected)
    return paths
