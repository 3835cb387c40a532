"""CNN-(B)LSTM models on log-Mel spectrograms (config group ``model``), all from one builder.

Input (frames, n_mels, 1) is cut into ``n_windows`` equal windows along time; a small CNN runs on
every window (TimeDistributed), an (B)LSTM reads the window sequence and a Dense layer gives
LOGITS. Softmax is applied outside the model (metrics, probabilities), never inside: gradient
attacks need logits (with softmax, ART's C&W-L2 is a silent no-op and DeepFool overshoots).
"""
from __future__ import annotations

from typing import Sequence


def build_cnn_lstm(input_shape: Sequence[int] = (261, 128, 1), n_classes: int = 5, n_windows: int = 9,
                   conv: Sequence[dict] = (), dropout: float = 0.0, lstm_units: int = 256,
                   lstm_dropout: float = 0.0, bidirectional: bool = True, name: str = "cnn_lstm"):
    """Build the model. ``conv`` is a list of blocks ``{filters, kernel, pool, stride, batchnorm}``
    (valid padding, ReLU), as in the paper's supplementary tables."""
    import keras
    from keras import layers as L

    frames, n_mels, channels = input_shape
    if frames % n_windows:
        raise ValueError(f"{frames} frames cannot be cut into {n_windows} equal windows")
    inp = keras.Input(tuple(input_shape), name="log_mel")
    x = L.Reshape((n_windows, frames // n_windows, n_mels, channels), name="windows")(inp)
    for i, block in enumerate(conv):
        unknown = set(block) - {"filters", "kernel", "pool", "stride", "batchnorm"}
        if unknown:
            raise ValueError(f"conv block {i}: unknown keys {sorted(unknown)}")
        x = L.TimeDistributed(L.Conv2D(block["filters"], block["kernel"], activation="relu"), name=f"conv{i}")(x)
        if block.get("batchnorm", False):
            x = L.TimeDistributed(L.BatchNormalization(), name=f"bn{i}")(x)
        if block.get("pool"):
            x = L.TimeDistributed(L.MaxPooling2D(block["pool"], block.get("stride") or block["pool"]),
                                  name=f"pool{i}")(x)
    x = L.TimeDistributed(L.Flatten(), name="flatten")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    rnn = L.LSTM(lstm_units, dropout=lstm_dropout, name="lstm")
    x = (L.Bidirectional(rnn, name="blstm") if bidirectional else rnn)(x)
    out = L.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out, name=name)
