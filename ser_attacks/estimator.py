"""ART estimators for a Keras logits model (config group ``estimator``).

``stock``: ART's ``TensorFlowV2Classifier`` as shipped, except that ``predict`` is chunked by
``batch_size`` (ART's ignores it, so a PixelAttack population or a big test set goes through the
model in one piece).
``compiled``: the same class with ``predict``, ``loss_gradient`` and ``class_gradient`` as compiled
``tf.function`` graphs with fixed input signatures; a given label costs one backward pass instead
of ART's full Jacobian. Same numbers, several times faster on CPU.

The batched attacks (``ser_attacks.attacks.cw_linf``, ``jsma``, ``boundary``, ``pixel``) build their own fused graphs
on the estimator's Keras model with ``graph`` (traced once per estimator and reused by every attack and
batch) and evaluate the model with ``map_samples``: by default one sample at a time *inside* one compiled
call, because oneDNN's convolution rounds differently for different batch sizes (~1e-7 in the logits),
and attacks with per-cell normalised steps (C&W-L-inf's Adam) or arg-max choices (JSMA) turn such
differences into different outputs. Evaluated per sample, a sample's numbers do not depend on which
other samples share its batch, and equal ART's own per-sample calls bit for bit (tests/test_fast_attacks.py).
On CPU that costs nothing measurable; on a GPU, ``per_sample=False`` evaluates the batch in one piece.

``make_classifier`` is the ONE builder of the attacked model: every path gets its classifier from it, with the
``defense`` (``ser_attacks.defenses``) in front of the model, BPDA / EOT applied for the attacker, and
``clf.model`` the defended model (so the fused graphs cannot bypass it); see docs/defenses.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from art.estimators.classification import TensorFlowV2Classifier

KINDS = ("compiled", "stock")
log = logging.getLogger(__name__)


class ChunkedTFClassifier(TensorFlowV2Classifier):
    """ART's TensorFlowV2Classifier with a ``predict`` that honours ``batch_size``."""

    def __init__(self, *args, batch_size: int = 64, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_size = int(batch_size)

    def _predict_chunk(self, x: np.ndarray, training_mode: bool) -> np.ndarray:
        return super().predict(x, training_mode=training_mode)

    def predict(self, x: np.ndarray, batch_size: int | None = None, training_mode: bool = False,
                **kwargs) -> np.ndarray:
        bs = int(batch_size or self.batch_size)
        x = np.asarray(x, dtype=np.float32)
        if len(x) <= bs:
            return self._predict_chunk(x, training_mode)
        return np.concatenate([self._predict_chunk(x[i:i + bs], training_mode) for i in range(0, len(x), bs)])


class CompiledTFClassifier(ChunkedTFClassifier):
    """Predict / loss gradient / class gradient as compiled graphs (identical results to stock)."""

    def __init__(self, *args, **kwargs):
        import tensorflow as tf
        super().__init__(*args, **kwargs)
        if self.preprocessing_operations:
            raise ValueError("CompiledTFClassifier supports no ART preprocessing or defences; use estimator=stock")
        # False routes PGD/BIM to ART's NumPy loop, which calls our compiled loss_gradient, instead of
        # ART's eager TensorFlow loop, which would bypass it. (There is no preprocessing either way.)
        self.all_framework_preprocessing = False
        model, loss_object, n = self._model, self._loss_object, self.nb_classes
        x_spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        ZERO = tf.UnconnectedGradients.ZERO      # a defense that cuts the gradient (bpda=false): zeros, not None

        @tf.function(input_signature=[x_spec], reduce_retracing=True)
        def logits(x):
            return model(x, training=False)

        @tf.function(input_signature=[x_spec, tf.TensorSpec((None, n), tf.float32)])
        def loss_grad(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_object(y, model(x, training=False))
            return tape.gradient(loss, x, unconnected_gradients=ZERO)

        @tf.function(input_signature=[x_spec, tf.TensorSpec((None,), tf.int32)])
        def label_grad(x, labels):
            # samples are independent at inference, so d(sum_i z_i[label_i])/dx_i = dz_i[label_i]/dx_i
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = tf.gather(model(x, training=False), labels, axis=1, batch_dims=1)
            return tape.gradient(z, x, unconnected_gradients=ZERO)

        @tf.function(input_signature=[x_spec])
        def all_grads(x):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                z = model(x, training=False)
                parts = [z[:, i] for i in range(n)]
            return tf.stack([tape.gradient(p, x, unconnected_gradients=ZERO) for p in parts], axis=1)

        self._logits_fn, self._loss_grad_fn = logits, loss_grad
        self._label_grad_fn, self._all_grads_fn = label_grad, all_grads

    def _predict_chunk(self, x: np.ndarray, training_mode: bool) -> np.ndarray:
        if training_mode:
            return super()._predict_chunk(x, training_mode)
        return self._logits_fn(x).numpy()

    def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
        if training_mode or not isinstance(x, np.ndarray):
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        from art.utils import check_and_transform_label_format
        y = check_and_transform_label_format(y, self.nb_classes).astype(np.float32)
        return self._loss_grad_fn(x.astype(np.float32), y).numpy()

    def class_gradient(self, x, label=None, training_mode: bool = False, **kwargs):
        if training_mode:
            return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)
        x = np.asarray(x, dtype=np.float32)
        if label is None:
            return self._all_grads_fn(x).numpy()
        labels = np.broadcast_to(np.asarray(label, dtype=np.int32).reshape(-1), (len(x),)) \
            if np.ndim(label) == 0 else np.asarray(label, dtype=np.int32)
        if len(labels) != len(x):
            raise ValueError(f"label has {len(labels)} entries for {len(x)} samples")
        return self._label_grad_fn(x, labels).numpy()[:, None]


def graph(clf, key: str, build):
    """``build(model)`` (a ``tf.function``) traced once per estimator and ``key``, then reused."""
    cache = clf.__dict__.setdefault("_ser_graphs", {})
    if key not in cache:
        cache[key] = build(clf.model)
    return cache[key]


def map_samples(fn, elems, per_sample: bool, out_signature):
    """Inside a ``tf.function``: ``fn`` on a batch, either one sample at a time (``tf.map_fn`` over batches
    of one: numbers independent of the batch composition) or on the whole batch at once."""
    import tensorflow as tf
    if not per_sample:
        return fn(*elems)
    return tf.map_fn(lambda e: tuple(t[0] for t in fn(*(v[None] for v in e))), tuple(elems),
                     fn_output_signature=out_signature, parallel_iterations=2)


def check_per_sample(value) -> None:
    """The batched attacks' ``per_sample`` parameter (see ``map_samples``)."""
    if not isinstance(value, bool):
        raise ValueError(f"`per_sample` must be a boolean, got {value!r}")


def is_compiled(clf) -> bool:
    return isinstance(clf, CompiledTFClassifier)


@dataclass(frozen=True)
class DefenseSpec:
    """Built defense layers with the attacker's options (what ``make_classifier`` makes of a defense node)."""
    layers: tuple
    eot: int = 1
    bpda: bool = True


def make_classifier(model, n_classes: int, clip_values, kind: str = "compiled",
                    batch_size: int = 64, fast: bool = True, defense=None, frontend=None,
                    loss_object=None) -> TensorFlowV2Classifier:
    """THE builder of the attacked model: every attack path (spectrogram, waveform, AutoAttack, the fused graphs
    of the batched attacks on ``clf.model``) gets its classifier here, with the defense applied.

    ``clip_values``: None (no box), (min, max) floats, or (min, max) arrays broadcastable to the model
    input (e.g. per Mel band, shape (1, n_mels, 1)); arrays are expanded to the input's full shape
    (frames, n_mels, 1), so every attack sees one bound per input cell. ``fast``: a windowed CNN-(B)LSTM is
    wrapped in its fast form (``ser_attacks.fast_model``: same weights, same numbers within float rounding;
    both estimator kinds alike); False keeps the model as given (benchmarks compare the two).

    ``defense``: a ``defense`` config node (``ser_attacks.defenses``), a list of defense layers, a
    ``DefenseSpec``, or None. Its
    inference-side layers go in front of the model (``domain: spectrogram``) or in front of ``frontend``
    (``domain: waveform``); a training-side defense is already in the weights and is ignored here. A layer that
    is not ``differentiable`` is applied straight-through (BPDA: forward the transform, backward the identity)
    unless the node says ``bpda: false``; with ``eot: k`` > 1 the attacked model averages the logits of k draws
    (EOT). ``clf.model`` is then the defended Keras model, so nothing built on it can bypass the defense.
    ``clf.deployed`` is the classifier a run reports its clean and adversarial predictions with: the
    defense as deployed (ONE draw, no averaging); it is ``clf`` itself without EOT.

    ``frontend``: a Keras layer from waveforms to model inputs (``frontend_tf.frontend_layer``; its
    ``input_shape_`` the waveform's shape): the classifier then takes waveforms. ``loss_object``: the loss of
    ``loss_gradient`` (default cross-entropy on logits; AutoAttack's DLR copy)."""
    import keras

    from .defenses import DefenseConfigError, build_layers, options
    from .fast_model import maybe_fast
    if kind not in KINDS:
        raise ValueError(f"Unknown estimator {kind!r}; choose one of {KINDS}")
    if isinstance(defense, DefenseSpec):
        layers, eot, bpda = list(defense.layers), defense.eot, defense.bpda
    elif isinstance(defense, (list, tuple)):
        layers, eot, bpda = list(defense), 1, True
    else:
        layers, (eot, bpda) = build_layers(defense), options(defense)
    wave = [la for la in layers if la.domain == "waveform"]
    if wave and frontend is None:
        raise DefenseConfigError(f"defense {type(wave[0]).__name__} transforms the waveform: it needs input=waveform "
                                 "(this classifier takes spectrograms)")
    if eot > 1 and not any(la.randomized for la in layers):
        log.warning("defense.eot=%d ignored: no randomized defense to average over (attack_eot=1)", eot)
    if fast:
        model = maybe_fast(model)
    attacked = _defended(model, layers, frontend, eot, bpda)
    if clip_values is not None and np.ndim(clip_values[0]) > 0:
        shape = tuple(attacked.input_shape[1:])
        clip_values = tuple(np.broadcast_to(np.asarray(v, np.float32), shape).copy() for v in clip_values)
    cls = CompiledTFClassifier if kind == "compiled" else ChunkedTFClassifier
    loss = keras.losses.CategoricalCrossentropy(from_logits=True) if loss_object is None else loss_object
    clf = cls(model=attacked, nb_classes=n_classes, input_shape=tuple(attacked.input_shape[1:]),
              loss_object=loss, clip_values=clip_values, preprocessing=None, batch_size=batch_size)
    clf.ser_build_args = dict(model=model, n_classes=n_classes, clip_values=clip_values, kind=kind,
                              batch_size=batch_size, defense=DefenseSpec(layers, eot, bpda), frontend=frontend)
    clf.ser_defense_layers = layers
    clf.deployed = clf if eot == 1 or not any(la.randomized for la in layers) else \
        cls(model=_defended(model, layers, frontend, 1, bpda), nb_classes=n_classes,
            input_shape=tuple(attacked.input_shape[1:]), loss_object=loss, clip_values=clip_values,
            preprocessing=None, batch_size=batch_size)
    return clf


def defense_spec(node) -> DefenseSpec:
    """A ``defense`` config node built once: its inference-side layers (``defenses.build_layers``) and options."""
    from .defenses import build_layers, options
    return DefenseSpec(tuple(build_layers(node)), *options(node))


def with_loss(clf, loss_object):
    """``clf`` rebuilt by ``make_classifier`` (same model, defense layers, attacker options, box, kind, batch size)
    with another loss (AutoAttack's DLR copy). The defense layers are shared, not rebuilt."""
    a = clf.ser_build_args
    return make_classifier(a["model"], a["n_classes"], a["clip_values"], a["kind"], a["batch_size"], fast=False,
                           defense=a["defense"], frontend=a["frontend"], loss_object=loss_object)


def _defended(model, layers, frontend, eot: int, bpda: bool):
    """The attacked Keras model: [waveform defenses → front end →] spectrogram defenses → ``model``, the logits
    of ``eot`` draws averaged; ``model`` itself when there is neither a defense nor a front end."""
    if not layers and frontend is None:
        return model
    import keras
    shape = tuple(frontend.input_shape_) if frontend is not None else tuple(model.input_shape[1:])
    inp = keras.Input(shape, name="waveform" if frontend is not None else "log_mel")
    draws = []
    for _ in range(eot if any(la.randomized for la in layers) else 1):
        h = inp
        for la in [la for la in layers if la.domain == "waveform"]:
            h = _apply(la, h, bpda)
        if frontend is not None:
            h = frontend(h)
        for la in [la for la in layers if la.domain == "spectrogram"]:
            h = _apply(la, h, bpda)
        draws.append(model(h))
    z = draws[0] if len(draws) == 1 else keras.layers.Average(name="eot_mean")(draws)
    name = f"waveform_{model.name}" if frontend is not None else model.name
    return keras.Model(inp, z, name=name + ("_defended" if layers else ""))


def _straight_through():
    import keras
    import tensorflow as tf

    class StraightThrough(keras.layers.Layer):
        """BPDA (Athalye et al. 2018): the forward pass of ``inner``, the identity's gradient backward."""

        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return x + tf.stop_gradient(self.inner(x) - x)

        def compute_output_shape(self, s):
            return s

    return StraightThrough


def _apply(layer, h, bpda: bool):
    if layer.differentiable or not bpda:
        return layer(h)
    wrappers = layer.__dict__.setdefault("_ser_bpda", [])       # one wrapper per layer, shared by every draw
    if not wrappers:
        wrappers.append(_straight_through()(layer, name=f"bpda_{layer.name}"))
    return wrappers[0](h)
