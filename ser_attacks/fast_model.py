"""The fast form of a CNN-(B)LSTM of ``ser_attacks.models``: the same layers (the same weight variables),
wired so that the windows are folded into the batch once.

The stock model (the paper's architecture, what is saved, cached and counted) cuts the input into
``n_windows`` windows and wraps every CNN layer in ``TimeDistributed``, which Keras runs as a transpose of
the whole tensor, one call of the layer per window, a stack and a transpose back, per layer, forward and
backward. ``fast_form(model)`` builds a second Keras model over the *same layer objects*:

* the input (B, frames, n_mels, 1) is reshaped once to (B * n_windows, frames / n_windows, n_mels, 1)
  (a free reshape: window t of sample b is row b * n_windows + t), every pooling layer runs once on that
  folded batch, every convolution in n_windows calls on consecutive blocks of B images (the batch size of
  TimeDistributed's calls, so oneDNN takes the same kernels; one call on all B * n_windows images is slower
  backward on 2 cores), and one reshape gives (B, n_windows, features) to the unchanged head (Dropout,
  (B)LSTM, Dense);
* BatchNormalization keeps its per-window semantics: at inference it is the same per-element affine map;
  in training the batch statistics are those of each window separately (as ``TimeDistributed`` computes them,
  one call per window) and the moving averages get the same ``n_windows`` updates in the same order.

Because the layers are shared, the two forms always hold the same weights: training the fast form trains
the stock model, which is what gets saved; a cached (stock) model is attacked through its fast form.
Inference (logits, and the forward pass in training) gives the same numbers bit for bit; gradients differ
only in the backward pass's summation order (the bound is stated and tested in ``tests/test_fast_model.py``).
Measured by ``benchmarks/model_speed.py`` (``recipes/model_speed``).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

WINDOWS_LAYER = "windows"


def window_moments(x, n_windows: int):
    """Per-window batch mean and (biased) variance, (n_windows, C) each, of a folded batch x (B * n_windows, ...,
    C): the numbers ``TimeDistributed(BatchNormalization)`` computes (``tf.nn.moments`` over each window's
    contiguous (B, ..., C) block, so the same summation order), with the gradient of the same function written
    as cheap sums over the folded batch instead of the stock model's transposes."""
    import tensorflow as tf
    T = n_windows
    inner = list(range(1, len(x.shape) - 1))

    @tf.custom_gradient
    def moments(x):
        xw = tf.reshape(x, (-1, T, *x.shape[1:]))
        xt = tf.transpose(xw, (1, 0, *range(2, len(xw.shape))))         # (T, B, ..., C), contiguous per window
        red = list(range(len(xt.shape) - 2))
        stats = [tf.nn.moments(xt[t], red) for t in range(T)]
        mean = tf.stack([s[0] for s in stats])
        var = tf.stack([s[1] for s in stats])
        n = tf.cast(tf.size(x) // (T * x.shape[-1]), x.dtype)           # values per window and channel

        def grad(g_mean, g_var):
            # d mean / dx = 1 / n; d var / dx = 2 (x - mean) / n (tf.nn.moments stops the gradient through the
            # mean inside the variance, and it is zero anyway): per folded row, the row's window parameters
            rows = tf.shape(x)[0] // T
            shape = (-1, *[1] * len(inner), x.shape[-1])
            rep = lambda a: tf.reshape(tf.tile(a[None], [rows, 1, 1]), shape)  # noqa: E731
            return rep(g_mean / n) + rep(2.0 * g_var / n) * (x - rep(mean))

        return (mean, var), grad

    return moments(x)


def _layers():
    import keras
    import tensorflow as tf
    from keras import ops

    class FoldWindows(keras.layers.Layer):
        """(B, frames, ...) -> (B * n_windows, frames / n_windows, ...)."""

        def __init__(self, n_windows: int, **kwargs):
            super().__init__(**kwargs)
            self.n_windows = int(n_windows)

        def call(self, x):
            return ops.reshape(x, (-1, x.shape[1] // self.n_windows, *x.shape[2:]))

        def compute_output_shape(self, s):
            return (None if s[0] is None else s[0] * self.n_windows, s[1] // self.n_windows, *s[2:])

    class UnfoldWindows(keras.layers.Layer):
        """(B * n_windows, ...) -> (B, n_windows, prod(...)): the stock model's TimeDistributed(Flatten)."""

        def __init__(self, n_windows: int, **kwargs):
            super().__init__(**kwargs)
            self.n_windows = int(n_windows)

        def call(self, x):
            size = 1
            for d in x.shape[1:]:
                size *= int(d)
            return ops.reshape(x, (-1, self.n_windows, size))

        def compute_output_shape(self, s):
            size = 1
            for d in s[1:]:
                size *= int(d)
            return (None if s[0] is None else s[0] // self.n_windows, self.n_windows, size)

    class ChunkedConv(keras.layers.Layer):
        """A convolution ``conv`` (shared, not copied) on the folded batch, run as ``n_windows`` calls on
        consecutive blocks of B images: each call has the batch size of one of TimeDistributed's calls (so
        oneDNN picks the same kernel: the same numbers), without TimeDistributed's transposes; one call on all
        B * n_windows images is slower backward on this CPU (its working set leaves the caches)."""

        def __init__(self, conv, n_windows: int, **kwargs):
            super().__init__(**kwargs)
            self.conv = conv
            self.n_windows = int(n_windows)

        def call(self, x):
            return tf.concat([self.conv(part) for part in tf.split(x, self.n_windows, axis=0)], axis=0)

        def compute_output_shape(self, s):
            return self.conv.compute_output_shape(s)

    class WindowBatchNorm(keras.layers.Layer):
        """A BatchNormalization layer ``bn`` (shared, not copied) on the folded batch, with TimeDistributed's
        semantics: per-window batch statistics in training, ``n_windows`` moving-average updates in order."""

        def __init__(self, bn, n_windows: int, **kwargs):
            super().__init__(**kwargs)
            self.bn = bn
            self.n_windows = int(n_windows)

        def call(self, x, training=None):
            bn = self.bn
            if not (training and bn.trainable):
                return bn.call(x, training=False)        # the same element-wise affine map as the stock model
            T = self.n_windows
            mean, var = window_moments(x, T)                              # (T, C) each
            m, v = bn.moving_mean, bn.moving_variance
            mm, mv = ops.cast(m, x.dtype), ops.cast(v, x.dtype)
            for t in range(T):                                            # as TimeDistributed's calls, in order
                mm = mm * bn.momentum + mean[t] * (1.0 - bn.momentum)
                mv = mv * bn.momentum + var[t] * (1.0 - bn.momentum)
            m.assign(mm)
            v.assign(mv)
            # tf.nn.batch_normalization's own arithmetic (x * inv + (beta - mean * inv), inv = rsqrt(var + eps)
            # * gamma) with per-window parameters repeated for each folded row: the same numbers per element,
            # and its gradients are sums over contiguous (H, W) blocks
            inv = tf.math.rsqrt(var + bn.epsilon)
            if bn.scale:
                inv = inv * ops.cast(bn.gamma, x.dtype)
            shift = (ops.cast(bn.beta, x.dtype) - mean * inv) if bn.center else -mean * inv
            rows = tf.shape(x)[0] // T
            per_row = (-1, *[1] * (len(x.shape) - 2), x.shape[-1])
            return x * tf.reshape(tf.tile(inv[None], [rows, 1, 1]), per_row) + \
                tf.reshape(tf.tile(shift[None], [rows, 1, 1]), per_row)

        def compute_output_shape(self, s):
            return s

    return FoldWindows, UnfoldWindows, WindowBatchNorm, ChunkedConv


def is_fast(model) -> bool:
    return getattr(model, "_ser_stock_form", None) is not None


def stock_form(model):
    """The stock model a fast form was made from (what is saved and counted), or ``model`` itself."""
    stock = getattr(model, "_ser_stock_form", None)
    return model if stock is None else stock


def maybe_fast(model):
    """``fast_form(model)`` where the model is a windowed CNN-(B)LSTM, else ``model`` unchanged."""
    try:
        return fast_form(model)
    except ValueError as exc:
        log.debug("%s", exc)
        return model


def fast_form(model):
    """The fast form of a stock model built by ``ser_attacks.models.build_cnn_lstm`` (sharing its layers and
    weights; made once per model and kept), or ``model`` itself if it already is one. ValueError if the model
    is not such a CNN-(B)LSTM."""
    if is_fast(model):
        return model
    cached = getattr(model, "_ser_fast_form", None)
    if cached is None:
        cached = _build_fast(model)
        # plain attributes (object.__setattr__): Keras would otherwise track the other model as a sub-layer
        object.__setattr__(cached, "_ser_stock_form", model)
        object.__setattr__(model, "_ser_fast_form", cached)
    return cached


def _build_fast(model):
    import keras
    FoldWindows, UnfoldWindows, WindowBatchNorm, ChunkedConv = _layers()
    layers = model.layers
    names = [layer.name for layer in layers]
    if WINDOWS_LAYER not in names or names.index(WINDOWS_LAYER) != 1:
        raise ValueError(f"fast form: {model.name} is not a windowed CNN-(B)LSTM (layers {names})")
    windows = layers[1]
    n_windows = int(windows.target_shape[0])
    td = [layer for layer in layers[2:] if isinstance(layer, keras.layers.TimeDistributed)]
    k = len(td)
    if not td or layers[2:2 + k] != td or not isinstance(td[-1].layer, keras.layers.Flatten):
        raise ValueError(f"fast form: {model.name} is not a windowed CNN-(B)LSTM (layers {names})")
    inp = keras.Input(tuple(model.input_shape[1:]), name="log_mel")
    x = FoldWindows(n_windows, name="fold_windows")(inp)
    for wrapper in td[:-1]:
        inner = wrapper.layer
        if isinstance(inner, keras.layers.BatchNormalization):
            if inner.axis not in (-1, len(x.shape) - 1) or inner.renorm:
                raise ValueError(f"fast form: {wrapper.name}: only channels-last BatchNormalization without renorm")
            x = WindowBatchNorm(inner, n_windows, name=f"{wrapper.name}_windows")(x)
        elif isinstance(inner, keras.layers.Conv2D):
            x = ChunkedConv(inner, n_windows, name=f"{wrapper.name}_windows")(x)
        elif isinstance(inner, keras.layers.MaxPooling2D):
            x = inner(x)
        else:
            raise ValueError(f"fast form: no folded form for {type(inner).__name__} ({wrapper.name})")
    x = UnfoldWindows(n_windows, name="unfold_windows")(x)
    for layer in layers[2 + k:]:
        x = layer(x)
    return keras.Model(inp, x, name=model.name)
