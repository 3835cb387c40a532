"""Per-speaker normalization (issue 26, normalization=speaker_std): each segment minus its speaker's own per-band
mean (no labels), then the global standardization and clip box fitted on the shifted training data. The attacks'
units do not change (δ in model input = δ·σ_b dB); input=waveform is refused before any work."""
from __future__ import annotations

import numpy as np
import pytest

from ser_attacks.normalization import NormalizationConfigError, Normalizer, check_units
from tests.helpers import compose_config


def _speakers(seed=0, n=(6, 5, 4), offsets=(-10.0, 0.0, 15.0), frames=7, bands=4):
    """Segments (dB) of speakers whose recordings differ by a constant gain (``offsets``)."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(-40 + o, 3, (k, frames, bands)) for k, o in zip(n, offsets)]).astype(np.float32)
    spk = np.repeat([f"s{i}" for i in range(len(n))], n)
    return X, spk


def test_speaker_mean_is_removed_and_gain_no_longer_matters():
    X, spk = _speakers()
    norm = Normalizer(per_speaker="mean").fit(X[spk != "s2"], speakers=spk[spk != "s2"])
    norm.add_speakers(X[spk == "s2"], spk[spk == "s2"])            # a test speaker: its own recordings
    assert norm.state["speakers"].tolist() == ["s0", "s1", "s2"]
    Z = norm.transform(X, spk)[..., 0]
    for s in ("s0", "s1", "s2"):
        shifted = X[spk == s] - X[spk == s].mean(axis=(0, 1))
        expect = np.clip((shifted - norm.state["mean"]) / norm.state["std"], norm.state["band_min"],
                         norm.state["band_max"])
        assert np.allclose(Z[spk == s], expect, atol=1e-5)
    # a speaker recorded 20 dB louder gets the same model inputs: the speaker's gain is gone
    louder = norm.transform(X[spk == "s1"] + 20, spk[spk == "s1"])
    twin = Normalizer(per_speaker="mean").fit(X[spk != "s2"], speakers=spk[spk != "s2"])
    twin.add_speakers(X[spk == "s1"] + 20, np.array(["s9"] * (spk == "s1").sum()))
    assert np.allclose(twin.transform(X[spk == "s1"] + 20, ["s9"] * (spk == "s1").sum()),
                       norm.transform(X[spk == "s1"], spk[spk == "s1"]), atol=1e-4)
    assert not np.allclose(louder, norm.transform(X[spk == "s1"], spk[spk == "s1"]))
    glob = Normalizer().fit(X)
    assert not np.allclose(glob.transform(X), norm.transform(X, spk))


def test_known_speakers_keep_training_statistics_and_unknown_ones_fail_or_use_the_batch():
    X, spk = _speakers()
    norm = Normalizer(per_speaker="mean").fit(X, speakers=spk, stats_from=(X[::2], spk[::2]))
    mean_s0 = norm.state["speaker_mean"][0].copy()
    assert np.allclose(mean_s0, X[::2][spk[::2] == "s0"].mean(axis=(0, 1)), atol=1e-4)
    norm.add_speakers(X[spk == "s0"] + 5, spk[spk == "s0"])            # known: unchanged
    assert np.allclose(norm.state["speaker_mean"][0], mean_s0)
    with pytest.raises(ValueError, match=r"no statistics for speaker\(s\) \['zz'\]"):
        norm.transform(X[:2], ["zz", "zz"])
    batch = X[spk == "s2"]                     # no speakers given: the batch is one speaker (a served model)
    as_new = Normalizer(**{k: getattr(norm, k) for k in ("method", "standardize", "clip", "per_speaker")},
                        state=dict(norm.state)).add_speakers(batch, ["new"] * len(batch))
    assert np.allclose(norm.transform(batch), as_new.transform(batch, ["new"] * len(batch)), atol=1e-4)
    with pytest.raises(ValueError, match="needs the speaker of every training segment"):
        Normalizer(per_speaker="mean").fit(X)


def test_units_clip_box_and_save_load(tmp_path):
    """to_db (δ·σ_b) and the clip box are those of a global normalizer of the same kind: the shift adds nothing."""
    X, spk = _speakers()
    norm = Normalizer(per_speaker="mean").fit(X, speakers=spk)
    delta = np.random.default_rng(1).normal(0, 1, X.shape).astype(np.float32)
    assert np.allclose(norm.to_db(delta, X), delta * norm.state["std"])
    Z = norm.transform(X, spk)
    lo, hi = norm.clip_values
    assert lo.shape == (1, X.shape[-1], 1) and (Z >= lo).all() and (Z <= hi).all()
    norm.save(tmp_path / "n.npz")
    back = Normalizer.load(tmp_path / "n.npz")
    assert back.per_speaker == "mean" and back.name == "speaker_original_std"
    assert np.array_equal(back.transform(X, spk), Z)
    assert Normalizer.load(tmp_path / "n.npz").state["speakers"].tolist() == ["s0", "s1", "s2"]


def test_config_option_and_refusals():
    cfg = compose_config("normalization=speaker_std")
    from hydra.utils import instantiate
    assert instantiate(cfg.normalization).per_speaker == "mean"
    assert compose_config().normalization.per_speaker is None
    check_units(cfg)
    with pytest.raises(NormalizationConfigError, match="cannot run with input=waveform"):
        check_units(compose_config("normalization=speaker_std", "input=waveform"))
    with pytest.raises(NormalizationConfigError, match="needs method=original"):
        check_units(compose_config("normalization=norm_sum_std", "+normalization.per_speaker=mean"))
    with pytest.raises(NormalizationConfigError, match="choose null or 'mean'"):
        Normalizer(per_speaker="std")


@pytest.mark.e2e
def test_waveform_refusal_comes_before_any_data(tmp_path, corpus_root):
    """The CLI refuses per-speaker normalization with input=waveform in one line, before any run or data."""
    from tests.helpers.cli import run_cli
    proc = run_cli(tmp_path, corpus_root, "normalization=speaker_std", "input=waveform", "attack=fgsm",
                   "attack.snr_db=30", check=False)
    assert proc.returncode == 2 and "error: normalization.per_speaker cannot run with input=waveform" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "cache" / "features").exists()


@pytest.mark.e2e
def test_attack_job_with_per_speaker_normalization(tmp_path, corpus_root):
    """A whole attack job (train + FGSM + resynthesis) with normalization=speaker_std: the test speakers' means
    are saved with the model and every attacked segment is shifted by its own speaker's mean."""
    from tests.helpers.cli import mlflow_runs, run_cli
    run_cli(tmp_path, corpus_root, "normalization=speaker_std", "split=speaker_cv", "split.n_folds=2",
            "split.val_utterances=0.25", "attack=fgsm", "attack.eps=0.5", "attack.n_samples=6")
    _, runs = mlflow_runs(tmp_path)
    attack = runs["attack"]
    assert len(attack) == 1 and attack[0].info.status == "FINISHED"
    m = attack[0].data.metrics
    assert 0 <= m["adv_acc"] <= 1 and "realized_adv_acc" in m
    norm = Normalizer.load(next((tmp_path / "cache" / "models").glob("*/normalizer.npz")))
    assert norm.per_speaker == "mean" and len(norm.state["speakers"]) == 4     # 2 training + 2 test speakers
