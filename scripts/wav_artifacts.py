"""Check an attack run's WAV artifacts numerically and plot their spectrograms (there is no listening here).

    python scripts/wav_artifacts.py RUN_ID [RUN_ID ...] --out recipes/audio_emodb/wav_artifacts.png

Per logged segment: sample rate, length, peak, the SNR of adversarial vs original recomputed from the 16-bit
files next to the SNR the run logged, and that perturbation_x10 is 10 x (adversarial - original); then one
figure row per segment: log-power spectrograms (dB, STFT 512/128) of original, adversarial, perturbation x10.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_ids", nargs="+")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    import librosa
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    from mlflow.tracking import MlflowClient

    from ser_attacks.data.audio import ensure_librosa_kernels
    ensure_librosa_kernels()
    client = MlflowClient(a.tracking_uri)
    rows = []
    for rid in a.run_ids:
        run = client.get_run(rid)
        folder = Path(client.download_artifacts(rid, "audio", tempfile.mkdtemp()))
        for e in json.loads((folder / "index.json").read_text()):
            sig = {}
            for kind in ("original", "adversarial", "perturbation_x10"):
                y, sr = sf.read(folder.parent / e["files"][kind])
                sig[kind] = y
                print(f"{rid[:8]} {e['gender']:6s} {kind:17s} sr {sr} Hz, {len(y)} samples ({len(y) / sr:.2f} s), "
                      f"peak {np.abs(y).max():.3f}")
            d = sig["adversarial"] - sig["original"]
            with np.errstate(divide="ignore"):
                snr = 10 * np.log10(np.sum(sig["original"] ** 2) / np.sum(d ** 2))
            err = np.abs(sig["perturbation_x10"] - np.clip(10 * d, -1, 1)).max()
            logged = "∞ (unchanged)" if e["snr_db"] is None else f"{e['snr_db']:.2f} dB"
            print(f"{rid[:8]} {e['gender']:6s} SNR from the files {snr:.2f} dB, logged {logged}; "
                  f"max |pert_x10 - 10 (adv - orig)| = {err:.1e}")
            name = run.data.tags.get("mlflow.runName", rid[:8]).replace(" n_samples=40", "")
            pred = e.get("realized_pred", e["adv_pred"])
            title = f"{name} ({run.data.tags.get('input', '?')}): " \
                    f"{e['gender']} {e['speaker']} {e['label']}→{pred}, SNR {snr:.1f} dB"
            rows.append((title, sig, sr))
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 2.6 * len(rows)), squeeze=False, constrained_layout=True)
    for i, (title, sig, sr) in enumerate(rows):
        ref = np.max(np.abs(librosa.stft(sig["original"].astype(np.float32), n_fft=512, hop_length=128)) ** 2)
        for j, kind in enumerate(("original", "adversarial", "perturbation_x10")):
            S = np.abs(librosa.stft(sig[kind].astype(np.float32), n_fft=512, hop_length=128)) ** 2
            db = librosa.power_to_db(S, ref=ref, top_db=None)
            im = axes[i, j].imshow(db, origin="lower", aspect="auto", vmin=-90, vmax=0, cmap="magma",
                                   extent=[0, len(sig[kind]) / sr, 0, sr / 2000])
            axes[i, j].set_title((title + "\n" if j == 1 else "") + kind.replace("_x10", " ×10"), fontsize=8)
            axes[i, j].set_xlabel("s")
            axes[i, j].set_ylabel("kHz")
        fig.colorbar(im, ax=axes[i, 2], label="dB re original max")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=64)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
