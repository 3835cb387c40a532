"""A Keras model's outputs on an array without ``model.predict``'s tf.data pipeline (training's accuracies, the
pyfunc wrapper)."""
from __future__ import annotations

import weakref

import numpy as np

_FORWARD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def logits(model, X, batch_size: int = 64) -> np.ndarray:
    """``model``'s outputs on ``X`` (inference mode), batch by batch through one compiled forward call per model:
    the same per-batch computation as ``model.predict(X, batch_size)``, without predict's tf.data pipeline. Under
    ``enable_op_determinism`` (``ser_attacks.train.deterministic``) TensorFlow rewrites that pipeline's parallel
    map into a plain one and prints ``E0000 … use_unbounded_threadpool which is not in the op definition`` when
    a pipeline is built: from the per-epoch test accuracy, the accuracies after training and the pyfunc wrapper's
    input-example check."""
    import tensorflow as tf
    fn = _FORWARD.get(model)
    if fn is None:
        fn = _FORWARD[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = [np.asarray(fn(tf.convert_to_tensor(np.asarray(X[i:i + batch_size], dtype=np.float32))))
           for i in range(0, len(X), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *model.output_shape[1:]), np.float32)
