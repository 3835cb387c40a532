"""Adversarial training (defense stage ``training``): the loop shared by ``pgd_at``, ``fast_at``, ``fgsm_at`` and
``trades`` (one module each, as ART has one per defence).

Every training batch is attacked on the model being trained, inside Keras' compiled training step (one
``tf.function``; the attack is a ``tf.while_loop`` of gradients of the loss w.r.t. the input), then the weights
are updated on the result:

* ``AdversarialTraining`` (PGD, fast FGSM, FGSM): a share ``ratio`` of the batch's rows (chosen at random per
  batch, ART's ``AdversarialTrainer`` rule: ``ceil(ratio · B)`` rows) is replaced by its adversarial example,
  and the model is trained on the mixed batch with the usual cross-entropy;
* ``trades.TRADES`` overrides the attack's objective (KL from the clean prediction) and the training loss
  (cross-entropy on the clean batch + β · KL(clean ‖ adversarial)).

Units. Budgets are in the attacks' units: the model input, i.e. the normalized log-Mel spectrogram (σ units
for the ``_std`` normalizations: ε = 1 moves a cell by one training-set standard deviation of its Mel band).
No image defaults (ART's ε = 8 on 0–255) anywhere. Every iterate is projected on the L∞ ball of radius ε
around the clean input and on the normalizer's clip box (``Normalizer.clip_values``: per band, as the attacks
use it), so training sees exactly the inputs an attack with that budget could produce. The budget is also
stated in SNR dB of the Mel magnitudes (``eps_snr_db``: ε at every cell with random signs, the corner of the
L∞ ball that sign-gradient steps reach, clipped to the box; ``ser_attacks.metrics.db_units``), logged with the
training run.

The attack runs on the model in inference mode (dropout off, BatchNormalization on its moving statistics), as
ART's trainers and TRADES' reference code do; the update then runs in training mode. Every random draw
(random start, which rows are attacked) comes from one ``tf.random.Generator`` seeded by ``seed`` (``${seed}``
in the configs). Cost: each step adds ``steps`` forward+backward passes w.r.t. the input to the one
forward+backward pass of the update (``benchmarks/adversarial_training.py``, recipes/defenses).
"""
from __future__ import annotations

import math

from . import DefenseConfigError

STAGE = "training"
RANDOM_STARTS = ("none", "uniform", "normal")
NORMAL_START_STD = 1e-3          # TRADES' reference code: x + 0.001 · N(0, 1)


class AdversarialTraining:
    """PGD-family adversarial training: ``steps`` signed-gradient steps of size ``eps_step`` from a random
    start, projected on the ε ball (L∞) and the clip box, on a share ``ratio`` of every batch.

    ``eps``: L∞ budget (model-input units, σ); ``steps``: attack steps per batch (k); ``eps_step``: step size
    (None: the method's rule, ``default_step``); ``random_start``: none | uniform (U[-ε, ε] per cell) | normal
    (N(0, 0.001²)); ``ratio``: share of each batch replaced by adversarial examples (0 < ratio ≤ 1); ``seed``:
    every draw. ``name`` and ``stage`` are the config node's (stage must be ``training``)."""

    method = "pgd"
    needs_clean_logits = False   # the attack loss compares with the clean prediction (TRADES)

    def __init__(self, eps: float, steps: int = 1, eps_step: float | None = None, random_start: str = "uniform",
                 ratio: float = 1.0, seed: int = 0, norm: str = "inf", name: str | None = None,
                 stage: str = STAGE):
        self.name = name or self.method
        self.stage = stage
        self.eps = eps
        self.steps = steps
        self.eps_step = eps_step
        self.random_start = random_start
        self.ratio = ratio
        self.seed = seed
        self.norm = norm
        self._check_params()
        self.eps, self.steps, self.ratio, self.seed = float(eps), int(steps), float(ratio), int(seed)

    # ------------------------------------------------------------------------------------------ parameters
    def default_step(self) -> float:
        """Madry et al.'s rule of thumb: 2.5 · ε / k (the iterates can cross the ball and come back)."""
        return 2.5 * float(self.eps) / int(self.steps)

    @property
    def step(self) -> float:
        return float(self.eps_step) if self.eps_step is not None else self.default_step()

    def _check_params(self) -> None:
        """A clear ValueError for a parameter that cannot run, before any data is read or model built."""
        p = f"defense={self.name}"
        if self.stage != STAGE:
            raise ValueError(f"{p}: defense.stage={self.stage!r}: adversarial training acts at training "
                             f"(stage: {STAGE})")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not (
                math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"{p}: defense.eps={self.eps}: must be a number > 0 (L∞ budget in the model's input "
                             f"units, σ)")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"{p}: defense.steps={self.steps}: must be an integer >= 1 (attack steps per batch)")
        if self.eps_step is not None and (isinstance(self.eps_step, bool) or not isinstance(
                self.eps_step, (int, float)) or not (math.isfinite(self.eps_step) and self.eps_step > 0)):
            raise ValueError(f"{p}: defense.eps_step={self.eps_step}: must be a number > 0, or null (the method's "
                             f"rule)")
        if self.random_start not in RANDOM_STARTS:
            raise ValueError(f"{p}: defense.random_start={self.random_start!r}: choose one of {RANDOM_STARTS}")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio <= 1:
            raise ValueError(f"{p}: defense.ratio={self.ratio}: must lie in (0, 1] (share of each batch replaced "
                             f"by adversarial examples)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"{p}: defense.seed={self.seed}: must be an integer >= 0")
        if str(self.norm) != "inf":
            raise ValueError(f"{p}: defense.norm={self.norm!r}: only 'inf' (L∞, the paper's FGSM/BIM norm)")

    def describe(self) -> dict:
        """The parameters as run (the derived step size included): logged and kept in the model's meta.json."""
        return {"method": self.method, "eps": self.eps, "steps": self.steps, "eps_step": self.step,
                "random_start": self.random_start, "ratio": self.ratio, "seed": self.seed}

    # ------------------------------------------------------------------------------------ the attack (TF)
    def generator(self):
        import tensorflow as tf
        return tf.random.Generator.from_seed(self.seed)

    def attack_loss(self, logits, y, clean_logits):
        """The per-batch objective the attack ascends: summed cross-entropy w.r.t. the true labels ``y``
        (one-hot; sum, not mean: the sign step does not care, the gradient per row stays unscaled)."""
        import tensorflow as tf
        return tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(y, logits.dtype),
                                                                     logits=logits))

    def perturb(self, model, x, y, box, gen):
        """Adversarial examples of the rows ``x`` (labels ``y``, one-hot) against ``model`` (inference mode):
        random start, ``steps`` signed-gradient ascent steps of the attack loss, each projected on
        [x − ε, x + ε] and on ``box`` ((lo, hi) broadcastable to x, or None). Graph-traceable (a tf.while_loop);
        no gradient flows back through the result."""
        import tensorflow as tf
        x = tf.convert_to_tensor(x)
        eps = tf.constant(self.eps, x.dtype)
        step = tf.constant(self.step, x.dtype)
        lo_eps, hi_eps = x - eps, x + eps
        if box is not None:
            lo_eps, hi_eps = tf.maximum(lo_eps, box[0]), tf.minimum(hi_eps, box[1])

        def project(z):
            return tf.clip_by_value(z, lo_eps, hi_eps)

        if self.random_start == "uniform":
            start = project(x + gen.uniform(tf.shape(x), -self.eps, self.eps, dtype=x.dtype))
        elif self.random_start == "normal":
            start = project(x + NORMAL_START_STD * gen.normal(tf.shape(x), dtype=x.dtype))
        else:
            start = x
        clean_logits = tf.stop_gradient(model(x, training=False)) if self.needs_clean_logits else None

        def body(i, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = self.attack_loss(model(z, training=False), y, clean_logits)
            g = tape.gradient(loss, z)
            return i + 1, project(z + step * tf.sign(g))

        _, x_adv = tf.while_loop(lambda i, z: i < self.steps, body, (tf.constant(0), start),
                                 maximum_iterations=self.steps)
        return tf.stop_gradient(x_adv)

    def training_inputs(self, model, x, y, box, gen):
        """(the batch to train on, what ``extra_loss`` needs): ``x`` with ``ceil(ratio · B)`` rows (drawn per
        batch) replaced by their adversarial examples (all rows when ratio = 1), and None."""
        import tensorflow as tf
        if self.ratio >= 1.0:
            return self.perturb(model, x, y, box, gen), None
        b = tf.shape(x)[0]
        n_adv = tf.cast(tf.math.ceil(self.ratio * tf.cast(b, tf.float32)), tf.int32)
        rows = tf.argsort(gen.uniform([b]))[:n_adv]          # a random subset, without replacement
        adv = self.perturb(model, tf.gather(x, rows), tf.gather(y, rows), box, gen)
        return tf.tensor_scatter_nd_update(x, rows[:, None], adv), None

    def train_step(self, trainer, data):
        """One compiled training step of ``trainer`` (the ``AdversarialModel`` wrapping the model): Keras'
        TensorFlow ``train_step`` on the batch ``training_inputs`` gives, plus ``extra_loss``."""
        import keras
        import tensorflow as tf
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x_train, aux = self.training_inputs(trainer.inner, x, y, trainer.box, trainer.gen)   # before the tape
        with tf.GradientTape() as tape:
            y_pred = trainer(x_train, training=True)
            loss = trainer.compute_loss(x=x_train, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            if aux is not None:
                loss = loss + self.extra_loss(trainer, y_pred, aux)
            trainer._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            scaled = trainer.optimizer.scale_loss(loss)
        weights = trainer.trainable_weights
        trainer.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return trainer.compute_metrics(x_train, y, y_pred, sample_weight=sample_weight)

    def extra_loss(self, trainer, y_pred, aux):
        """A term added to the training loss from ``aux`` (TRADES' KL term); none here."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- the trainer
    def trainer(self, model, clip_values):
        """A Keras model that trains ``model`` (the same weights: what is saved stays ``model``) with this
        defense, to be compiled as undefended training compiles (``train.compile_for_training``).
        ``clip_values``: the normalizer's clip box (``Normalizer.clip_values``) or None."""
        return adversarial_model(model, self, clip_values)


def box_tensors(clip_values):
    """(lo, hi) float32 tensors broadcastable to a (B, frames, n_mels, 1) batch, or None."""
    if clip_values is None:
        return None
    import numpy as np
    import tensorflow as tf
    return tuple(tf.constant(np.asarray(v, np.float32)) for v in clip_values)


def adversarial_model(model, defense: AdversarialTraining, clip_values):
    """A Keras model over ``model`` (shared layers and weights) whose ``train_step`` is ``defense.train_step``;
    prediction and evaluation (validation, the learning curves) are ``model``'s, on clean inputs."""
    import keras

    class AdversarialModel(keras.Model):
        def __init__(self, inner, **kwargs):
            super().__init__(name=f"{inner.name}_{defense.name}", **kwargs)
            self.inner = inner
            # not tracked by Keras (plain attributes): constants and the defense's random generator
            object.__setattr__(self, "box", box_tensors(clip_values))
            object.__setattr__(self, "gen", defense.generator())
            object.__setattr__(self, "defense", defense)

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def training_state_variables(self):
            """What a resumed training restores beside Keras' variables (``ser_attacks.training_state``): the
            generator's state, so the resumed epochs attack the rows and starts the uninterrupted ones would."""
            return [self.gen.state]

        def train_step(self, data):
            return defense.train_step(self, data)

    trainer = AdversarialModel(model)
    trainer.build(model.input_shape)
    return trainer


def eps_snr_db(normalizer, X, Z, eps: float, seed: int, chunk: int = 256) -> float:
    """Mean SNR (dB, ``ser_attacks.metrics.db_units``) of the budget ε over the raw log-Mel spectrograms ``X``
    (n, frames, n_mels) whose model inputs are ``Z`` (n, frames, n_mels, 1): every cell moved by ±ε model-input
    units (random signs, seeded), clipped to the normalizer's box, converted to dB of log-Mel
    (``Normalizer.to_db``). Segments the move leaves unchanged (none, in practice) are left out."""
    import numpy as np

    from ..metrics import db_units
    rng = np.random.default_rng(seed)
    box = normalizer.clip_values
    snrs = []
    for i in range(0, len(X), chunk):
        raw, z = np.asarray(X[i:i + chunk], np.float32), np.asarray(Z[i:i + chunk], np.float32)
        moved = z + np.float32(eps) * rng.choice(np.array([-1.0, 1.0], np.float32), size=z.shape)
        if box is not None:
            moved = np.clip(moved, *(np.asarray(v, np.float32) for v in box))
        snr = db_units(normalizer.to_db(moved - z, raw), raw)["snr_db"]
        snrs.append(snr[np.isfinite(snr)])
    snrs = np.concatenate(snrs) if snrs else np.zeros(0)
    return float(np.mean(snrs)) if len(snrs) else float("nan")


def from_config(cfg):
    """The training-side defense of a composed job config (``cfg.defense`` with stage ``training``,
    instantiated: its parameters checked), or None. DefenseConfigError (one line) for a bad or unknown key."""
    node = cfg.get("defense")
    if node is None or node.get("stage") != STAGE:
        return None
    from hydra.utils import instantiate

    from . import _plain
    params = {k: v for k, v in _plain(node).items() if k not in ("eot", "bpda")}   # the attacker's options
    try:
        return instantiate(params, _convert_="all")
    except Exception as exc:   # noqa: BLE001 - Hydra wraps the class's ValueError / TypeError (unknown key)
        cause = exc.__cause__ or exc
        msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if isinstance(cause, TypeError) and "unexpected keyword argument" in msg:
            key = msg.rsplit("'", 2)[-2] if msg.count("'") >= 2 else msg
            msg = f"defense={node.get('name')}: defense.{key}: not a parameter of {node.get('_target_')}"
        raise DefenseConfigError(msg) from None
