"""Which model-input cells a trained model never reads (zero gradient for every input): frames and Mel bands.

    python scripts/dead_inputs.py /work/cache/models/<key>/model.keras

Valid convolutions and pooling windows that do not tile a window leave some frames / bands out of the
receptive field; a perturbation there (and audio that only reaches those frames) changes nothing.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(path: str) -> None:
    import keras
    import numpy as np
    import tensorflow as tf
    model = keras.models.load_model(path, compile=False)
    x = tf.constant(np.random.default_rng(0).standard_normal((4, *model.input_shape[1:])).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(model(x, training=False))
    g = np.abs(tape.gradient(out, x).numpy()).sum(axis=0)[..., 0]          # (frames, n_mels)
    frames, bands = np.flatnonzero(g.sum(axis=1) == 0), np.flatnonzero(g.sum(axis=0) == 0)
    print(f"{path}: input {g.shape[0]} frames x {g.shape[1]} bands; "
          f"never read: {len(frames)} frames {frames.tolist()}, {len(bands)} bands {bands.tolist()}; "
          f"{np.mean(g == 0):.1%} of the cells")


if __name__ == "__main__":
    main(sys.argv[1])
