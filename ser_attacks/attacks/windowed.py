"""Predict images that differ from one original in a few cells, recomputing only the windows they change.

The CNN-(B)LSTM models of ``ser_attacks.models`` cut the spectrogram into ``n_windows`` windows along
time and run the same CNN on each (``TimeDistributed``, which Keras runs as one call per window), then
an (B)LSTM over the windows' features. A pixel-attack candidate changes ``th`` cells, i.e. at most ``th``
of the 9 windows: the CNN features of every other window are the original's. ``WindowedPredictor``
computes the CNN only for the changed (candidate, window) pairs and the LSTM head for every candidate.

Same numbers as the full model: a float32 convolution's result for an image depends on the batch SIZE
(oneDNN picks its kernel by shape) but not on the other images in the batch, so every CNN call here has
exactly the size of the chunk the full ``predict`` would have used for that candidate (padded with the
original window), the original's features are computed in batches of that size too, and the head runs
on the same chunks as ``predict``. ``WindowedPredictor.build`` checks all of this on the estimator's
model (bit-identical logits, and a CNN row unchanged by its batch neighbours) and returns None (callers
then use ``predict``) if the model is not such a CNN-(B)LSTM or any check fails.

The estimator's model is usually the fast form (``ser_attacks.fast_model``): the same layers, and each of its
convolutions runs in calls of the same batch size as the stock model's per-window calls, so the per-window
CNN here (the stock layers) gives the same numbers; the checks include a batch of one.

Work saved: the CNN is ~60 % of the final model's forward pass on this CPU; candidates of a 1-cell
attack need 1 window of 9, of a 10-cell attack about 6.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


class WindowedPredictor:
    def __init__(self, model, windows_layer, cnn_layers, head_layers):
        import tensorflow as tf
        self.n_windows, self.frames = (int(v) for v in windows_layer.target_shape[:2])
        frame_shape = tuple(int(v) for v in windows_layer.target_shape[1:])

        def cnn(x):
            for td in cnn_layers:                  # as TimeDistributed calls its layer on one window
                kwargs = {"training": False} if td.layer._call_has_training_arg else {}
                x = td.layer.call(x, **kwargs)
            return x

        def head(feats):
            for layer in head_layers:
                feats = layer(feats, training=False)
            return feats

        self._cnn = tf.function(cnn, input_signature=[tf.TensorSpec((None, *frame_shape), tf.float32)])
        self._head = tf.function(head, input_signature=[
            tf.TensorSpec((None, self.n_windows, *cnn_layers[-1].output.shape[2:]), tf.float32)])
        self.n_cnn_images = 0                     # window images run through the CNN (for tests / logs)

    # --- construction and checks ---------------------------------------------------------------------------
    @classmethod
    def build(cls, clf, check: np.ndarray | None = None) -> "WindowedPredictor | None":
        from ..estimator import graph, is_compiled
        if not is_compiled(clf):
            return None
        return graph(clf, "windowed_predictor", lambda model: cls._make(clf, model, check))

    @classmethod
    def _make(cls, clf, model, check) -> "WindowedPredictor | None":
        import keras

        from ..fast_model import stock_form
        layers = stock_form(model).layers
        names = [type(layer).__name__ for layer in layers]
        try:
            w = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Reshape))
            td = [i for i in range(w + 1, len(layers)) if isinstance(layers[i], keras.layers.TimeDistributed)]
            if not td or td != list(range(w + 1, td[-1] + 1)) or w != 1 or len(layers[w].target_shape) < 3:
                raise StopIteration
            self = cls(model, layers[w], [layers[i] for i in td], layers[td[-1] + 1:])
        except (StopIteration, AttributeError, TypeError):
            log.info("Windowed prediction not used: the model is not a windowed CNN-(B)LSTM (%s)", names)
            return None
        if self.n_windows * self.frames != clf.input_shape[0] or clf.channels_first:
            return None
        lo, hi = (np.broadcast_to(np.asarray(v, np.float32), clf.input_shape) for v in
                  (clf.clip_values if clf.clip_values is not None else (-1.0, 1.0)))
        x = check if check is not None else \
            np.random.default_rng(0).uniform(lo, hi, size=(6, *clf.input_shape)).astype(np.float32)
        full = clf.predict(x, batch_size=len(x))
        feats = np.stack([self.cnn(x[:, t * self.frames:(t + 1) * self.frames]) for t in range(self.n_windows)], 1)
        neighbours = np.concatenate([x[:1], x[1:][::-1]])        # the same first image, other batch neighbours
        alone = self.cnn(neighbours[:, :self.frames])[0]
        one = self.head(np.stack([self.cnn(x[:1, t * self.frames:(t + 1) * self.frames])
                                  for t in range(self.n_windows)], 1))
        self.n_cnn_images = 0
        if not (np.array_equal(self.head(feats), full) and np.array_equal(alone, feats[0, 0])
                and np.array_equal(one, clf.predict(x[:1], batch_size=1))):
            log.warning("Windowed prediction not used: it does not reproduce this model's logits bit for bit")
            return None
        return self

    def cnn(self, x):
        self.n_cnn_images += len(x)
        return self._cnn(np.ascontiguousarray(x, np.float32)).numpy()

    def head(self, feats):
        return self._head(np.ascontiguousarray(feats, np.float32)).numpy()

    # --- prediction ----------------------------------------------------------------------------------------
    def predict_changed(self, original: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                        chunk: int, base_cache: dict):
        """Logits of the candidates that set cells ``(rows[i, j], cols[i, j])`` of ``original`` to ``vals[i, j]``
        (where a cell is set twice, the later j wins, as in NumPy's fancy assignment), as ``predict`` in chunks
        of ``chunk`` would give them. ``base_cache``: per chunk size, the original's window features."""
        n = len(rows)
        sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
        size_of = np.repeat(sizes, sizes)                    # the predict chunk size of each candidate
        touched = np.zeros((n, self.n_windows), bool)
        touched[np.arange(n)[:, None], rows // self.frames] = True
        feats = None
        for size in sorted(set(sizes)):
            members = np.flatnonzero(size_of == size)
            if size not in base_cache:
                base_cache[size] = np.stack([self.cnn(np.repeat(original[None, t * self.frames:(t + 1) * self.frames],
                                                                size, axis=0))[0] for t in range(self.n_windows)])
            base = base_cache[size]
            if feats is None:
                feats = np.empty((n, *base.shape), np.float32)
            feats[members] = base
            for t in range(self.n_windows):
                who = members[touched[members, t]]
                for s in range(0, len(who), size):
                    part = who[s:s + size]
                    # the window of each candidate, padded to the chunk size with the original window
                    win = np.repeat(original[None, t * self.frames:(t + 1) * self.frames], size, axis=0)
                    i, j = np.nonzero(rows[part] // self.frames == t)          # row-major: NumPy's order
                    win[i, rows[part][i, j] - t * self.frames, cols[part][i, j]] = vals[part][i, j]
                    feats[part, t] = self.cnn(win)[:len(part)]
        return np.concatenate([self.head(feats[s:s + size]) for s, size in zip(np.cumsum([0] + sizes[:-1]), sizes)])

    def worth_it(self, rows: np.ndarray, chunk: int) -> bool:
        """Whether fewer window images go through the CNN than with ``predict`` (padding included)."""
        n = len(rows)
        touched = np.zeros((n, self.n_windows), bool)
        touched[np.arange(n)[:, None], rows // self.frames] = True
        sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
        size_of = np.repeat(sizes, sizes)
        cost = 0
        for size in set(sizes):
            counts = touched[size_of == size].sum(0)
            cost += int((np.ceil(counts / size) * size).sum())
        return cost < 0.75 * n * self.n_windows      # (the head and the bookkeeping cost too)
