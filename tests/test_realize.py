"""Realizability of spectrogram attacks: the dB change behind a normalized change, the gain resynthesis
(round trip of an unperturbed spectrogram, smooth changes realized, phase kept) and the job's realized metrics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_attacks.data.audio import FrontEnd, log_mel, segment_audio
from ser_attacks.data.corpora import load_corpus
from ser_attacks.normalization import METHODS, Normalizer
from ser_attacks.realize import Resynth, db_change, features, realize
from ser_attacks.waveform import snr_db
from tests.helpers import compose_config, seed_cache, subprocess_env, tiny_overrides

FE = FrontEnd()


@pytest.fixture(scope="module")
def speech(corpus_root):
    table = load_corpus("emodb", corpus_root).table.iloc[::10].reset_index(drop=True)
    audio = np.stack([segment_audio(p, FE, 0) for p in table.path])
    return audio, np.stack([log_mel(a, FE) for a in audio])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("standardize", [True, False])
def test_db_change_inverts_the_normalizer(speech, method, standardize):
    _, X = speech
    norm = Normalizer(method, standardize, clip=False).fit(X)
    rng = np.random.default_rng(0)
    delta = rng.normal(0, 2, X.shape).astype(np.float32)
    if method == "norm_max_local":        # the per-spectrogram max must stay put for an exact inverse
        peak = np.abs(X).max(axis=(1, 2), keepdims=True)
        delta[(np.abs(X) >= peak - 1e-3) | (np.abs(X + delta) >= peak - 1e-3)] = 0
    got = db_change(norm, X, norm.transform(X), norm.transform(X + delta))
    resid = got - delta
    if method == "norm_sum":              # a per-spectrogram dB offset is invisible after norm_sum
        resid = resid - resid.mean(axis=(1, 2), keepdims=True)
    assert np.abs(resid).max() < 1e-3, f"{norm.name}: {np.abs(resid).max():.3g}"


def test_unperturbed_spectrogram_round_trips_to_matching_features(speech):
    """Resynthesis of a zero change returns audio whose features equal the original's."""
    audio, X = speech
    rs = Resynth(FE)
    norm = Normalizer().fit(X)
    for y, Xi in zip(audio, X):
        y_new, y_gl = rs.resynthesize(y, Xi, np.zeros_like(Xi), refine=3, griffin_lim_iter=0)
        assert y_gl is None and y_new.shape == y.shape
        assert snr_db(y[None], y_new[None])[0] > 60, "the waveform itself comes back (original phase)"
        X_new = log_mel(y_new, FE)
        assert np.abs(X_new - Xi).mean() < 1e-4 and np.abs(X_new - Xi).max() < 1e-2      # dB
        assert np.abs(norm.transform(X_new[None]) - norm.transform(Xi[None])).max() < 1e-3


def test_smooth_changes_are_realized_and_cell_patterns_only_partly(speech):
    audio, X = speech
    rs = Resynth(FE)
    y, Xi = audio[0], X[0]
    audible = Xi > Xi.max() - 80
    # a uniform gain is exact; smooth in time nearly; a slope across bands less so (the lowest Mel bands are
    # narrower than one STFT bin, so neighbouring bands share bins and cannot be set independently)
    for smooth, tol in ((np.full(Xi.shape, -4.0), 1e-3),
                        (3.0 * np.sin(np.arange(Xi.shape[0]) / 10.0)[:, None] * np.ones(Xi.shape[1]), 0.05),
                        (np.linspace(-3, 3, Xi.shape[1])[None, :] * np.ones_like(Xi), 0.1)):
        y_new, _ = rs.resynthesize(y, Xi, smooth)
        T = Xi + smooth
        err = np.abs(log_mel(y_new, FE) - np.maximum(T, T.max() - 80))     # the target, floored as librosa does
        assert err.mean() < tol, (err.mean(), tol)
    # a random +-1 dB sign per cell (what FGSM asks for) cannot be met by any signal: only partly realized
    signs = np.random.default_rng(0).choice([-1.0, 1.0], Xi.shape)
    y_s, _ = rs.resynthesize(y, Xi, signs)
    got = (log_mel(y_s, FE) - Xi)[audible]
    r = np.corrcoef(got, signs[audible])[0, 1]
    assert 0.2 < r < 0.95, r


def test_realize_keeps_unchanged_samples_bit_exact_and_griffin_lim_is_seeded(speech):
    audio, X = speech
    norm = Normalizer().fit(X)
    x = norm.transform(X[:2])
    x_adv = x.copy()
    x_adv[1] += 0.2
    r = realize(FE, norm, audio[:2], X[:2], x, x_adv, refine=1, griffin_lim_iter=4, seed=3)
    assert r.unchanged.tolist() == [True, False]
    np.testing.assert_array_equal(r.audio[0], audio[0])
    assert np.isfinite(snr_db(audio[1:2], r.audio[1:2])).all()
    r2 = realize(FE, norm, audio[:2], X[:2], x, x_adv, refine=1, griffin_lim_iter=4, seed=3)
    np.testing.assert_array_equal(r.audio_gl, r2.audio_gl)
    np.testing.assert_array_equal(r.clean_gl, r2.clean_gl)
    # a uniform +0.2 normalized units is +0.2 std dB per band: the re-extracted features move by about that
    z = features(FE, norm, r.audio[1:2])
    assert abs(float(np.median(z - x[1:2])) - 0.2) < 0.03


@pytest.fixture(scope="module")
def job_cfg(tmp_path_factory, corpus_root, tiny_cache):
    """Config factory sharing one cache (the session's tiny model, ``tiny_cache``) across this module's jobs."""
    base = tiny_overrides(seed_cache(tiny_cache, tmp_path_factory.mktemp("realize_jobs")), corpus_root)

    def make(*overrides):
        return compose_config(*base, *overrides)
    return make


@pytest.mark.e2e
def test_spectrogram_job_logs_realized_accuracy_and_audio(job_cfg, tmp_path):
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    cfg = job_cfg("attack=fgsm", "attack.eps=0.5", "attack.n_samples=6", "input.griffin_lim_iter=4")
    run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    r = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", order_by=["start_time DESC"])[0]
    m = r.data.metrics
    assert r.data.tags["input"] == "spectrogram"
    for k in ("realized_adv_acc", "realized_adv_acc_gl", "realized_clean_acc_gl", "audio_snr_db",
              "realized_feature_err"):
        for sfx in ("", "_female", "_male"):
            assert np.isfinite(m[k + sfx]), k + sfx
    z = np.load(client.download_artifacts(r.info.run_id, "audio.npz", str(tmp_path)))
    assert len(z["realized_pred"]) == 6 == len(z["snr_db"])
    assert m["realized_adv_acc"] == pytest.approx(np.mean(z["realized_pred"] == z["label"]))
    folder = Path(client.download_artifacts(r.info.run_id, "audio", str(tmp_path)))
    index = json.loads((folder / "index.json").read_text())
    assert {e["gender"] for e in index} == {"female", "male"}
    for e in index:
        y0, sr = sf.read(folder.parent / e["files"]["original"])
        y1, _ = sf.read(folder.parent / e["files"]["adversarial"])
        assert sr == 16000 and len(y0) == len(y1) == 48000 and "realized_pred" in e
        assert abs(snr_db(y0[None], y1[None])[0] - e["snr_db"]) < 0.5


@pytest.mark.e2e
def test_realize_off_logs_no_audio(job_cfg):
    from mlflow.tracking import MlflowClient

    from ser_attacks.app import run
    cfg = job_cfg("attack=fgsm", "attack.eps=0.5", "attack.n_samples=4", "input.realize=false")
    run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    r = client.search_runs([exp.experiment_id], "tags.run_type = 'attack'", order_by=["start_time DESC"])[0]
    assert "realized_adv_acc" not in r.data.metrics and "audio_snr_db" not in r.data.metrics
    assert "audio.npz" not in [a.path for a in client.list_artifacts(r.info.run_id)]


RESYNTH = """
import sys, numpy as np
from ser_attacks.data.audio import FrontEnd, ensure_librosa_kernels, log_mel, segment_audio
ensure_librosa_kernels()
if sys.argv[2] == "resynth":
    from ser_attacks.normalization import Normalizer
    from ser_attacks.realize import realize
    fe = FrontEnd()
    y = segment_audio(sys.argv[1], fe, 0)[None]
    X = np.stack([log_mel(a, fe) for a in y])
    norm = Normalizer().fit(X)
    x = norm.transform(X)
    r = realize(fe, norm, y, X, x, x + 0.1, refine=2, griffin_lim_iter=2)
    assert np.isfinite(r.audio).all() and np.isfinite(r.audio_gl).all()
print("ok")
"""


@pytest.mark.e2e
def test_resynthesis_compiles_no_kernel_the_warm_up_missed(tmp_path, corpus_root):
    """librosa's istft / Griffin-Lim use numba kernels (overlap-add, window sum-square); compiling them outside
    ensure_librosa_kernels' lock could race (see its docstring). After the warm-up alone, the whole
    resynthesis in a fresh process must compile nothing new."""
    import subprocess
    import sys

    wav = str(sorted(corpus_root.rglob("*.wav"))[0])
    env = subprocess_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))

    def files():
        return {str(p): p.stat().st_mtime_ns for p in (tmp_path / "numba").rglob("*.nb[ic]")}
    for mode in ("warm", "resynth"):
        p = subprocess.run([sys.executable, "-c", RESYNTH, wav, mode], env=env, capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]
        if mode == "warm":
            warm = files()
            assert warm
    assert files() == warm, "the resynthesis compiled kernels the warm-up missed"
