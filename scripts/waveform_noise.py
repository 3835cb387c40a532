"""Random-noise baseline for waveform attacks: white Gaussian noise at an exact SNR on the same attacked
segments as the attack runs (same config → same model, same ``select_samples``), classified through the
waveform estimator. An attack at SNR s should leave a LOWER accuracy than noise at SNR s (Carlini et al.).

    python scripts/waveform_noise.py --snr 20 30 40 --out recipes/audio_emodb/noise_baseline.csv -- \
        dataset=emodb dataset.root=/work/shared/data/emodb train.max_epochs=12 seed=0 attack.n_samples=40
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snr", type=float, nargs="+", default=[20, 30, 40])
    p.add_argument("--repeats", type=int, default=5, help="noise draws per SNR (seeded 0..repeats-1)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    import numpy as np
    import pandas as pd
    from hydra import compose, initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    from ser_attacks.attacks import select_samples
    from ser_attacks.data import front_end, prepare
    from ser_attacks.inputs import segment_waveforms
    from ser_attacks.train import get_or_train
    from ser_attacks.waveform import snr_db, waveform_classifier
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["progress=false", *a.overrides])
    data = prepare(cfg, progress=False)
    tm = get_or_train(cfg, data, None)
    X, y, segs = data.part("test")
    idx = select_samples(segs.gender.to_numpy(), cfg.attack.n_samples, cfg.seed)
    y, segs = y[idx], segs.iloc[idx].reset_index(drop=True)
    g = segs.gender.to_numpy()
    fe = front_end(cfg.features)
    audio = segment_waveforms(segs, fe)
    clf = waveform_classifier(tm, fe, cfg.estimator.kind, cfg.estimator.batch_size)
    rows = [{"snr_db": np.inf, "repeat": 0, **_acc(clf.predict(audio).argmax(1), y, g), "measured_snr_db": np.inf}]
    for s in a.snr:
        for r in range(a.repeats):
            noise = np.random.default_rng(r).standard_normal(audio.shape)
            scale = np.sqrt(np.sum(audio.astype(np.float64) ** 2, 1) / np.sum(noise ** 2, 1) * 10 ** (-s / 10))
            noisy = (audio + noise * scale[:, None]).astype(np.float32)
            rows.append({"snr_db": s, "repeat": r, **_acc(clf.predict(noisy).argmax(1), y, g),
                         "measured_snr_db": float(np.mean(snr_db(audio, noisy)))})
    df = pd.DataFrame(rows)
    summary = df.groupby("snr_db", sort=False)[["acc", "acc_female", "acc_male", "measured_snr_db"]].mean()
    print(f"{len(y)} segments ({(g == 'female').sum()} female, {(g == 'male').sum()} male); "
          f"mean over {a.repeats} noise draws:")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False)


def _acc(pred, y, g) -> dict:
    return {"acc": float((pred == y).mean()), "acc_female": float((pred == y)[g == "female"].mean()),
            "acc_male": float((pred == y)[g == "male"].mean())}


if __name__ == "__main__":
    main()
