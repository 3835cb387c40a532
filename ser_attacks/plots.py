"""Figures logged with the runs."""
from __future__ import annotations

import numpy as np


def spectrogram_triplets(x: np.ndarray, x_adv: np.ndarray, titles: list[str]):
    """One row per sample: original | adversarial | difference (log-Mel, normalized units)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(n, 3, figsize=(12, 2.6 * n), squeeze=False, constrained_layout=True)
    vmin, vmax = float(np.min(x)), float(np.max(x))
    for i in range(n):
        a, b = x[i, ..., 0].T, x_adv[i, ..., 0].T
        d = b - a
        lim = max(float(np.max(np.abs(d))), 1e-12)
        for j, (img, kw, name) in enumerate((
                (a, dict(vmin=vmin, vmax=vmax, cmap="magma"), "original"),
                (b, dict(vmin=vmin, vmax=vmax, cmap="magma"), "adversarial"),
                (d, dict(vmin=-lim, vmax=lim, cmap="coolwarm"), f"difference (max |d| = {lim:.3g})"))):
            ax = axes[i, j]
            im = ax.imshow(img, origin="lower", aspect="auto", **kw)
            ax.set_title(f"{titles[i]} — {name}" if j == 0 else name, fontsize=9)
            ax.set_xlabel("frame")
            ax.set_ylabel("Mel band")
            fig.colorbar(im, ax=ax, fraction=0.046)
    return fig
