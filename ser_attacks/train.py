"""Training (config group ``train``) and the trained-model cache.

A model is trained once per training configuration and reused by every attack job: the cache key
hashes the features, dataset, split, normalization, model and train configs and the seed. A file
lock makes parallel jobs wait for the one that trains. Each training is its own MLflow run
(``run_type=train``) that logs per-epoch loss/accuracy/lr and the model (``.keras``, no pickle)
with its normalization state; attack runs reference that run instead of copying the model.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from . import training_state
from .cache import atomic_dir, locked, valid_entry
from .forward import logits
from .identity import model_key, run_tags
from .machine import device_name
from .normalization import Normalizer
from .tracking import MODEL_CONFIG

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    model: object                 # keras.Model producing logits
    normalizer: Normalizer
    classes: list[str]
    key: str
    path: Path
    meta: dict
    trained_now: bool

    @property
    def run_id(self) -> str | None:
        return self.meta.get("train_run_id")


def build_model(model_cfg, input_shape, n_classes):
    return instantiate(model_cfg, input_shape=list(input_shape), n_classes=n_classes, _convert_="all")


def _originals(X, segs):
    """(X, speakers) of the original (not augmented) segments of a part: a speaker's own recordings."""
    keep = (segs.augment == "none").to_numpy() if "augment" in segs else np.ones(len(segs), bool)
    return np.asarray(X[np.flatnonzero(keep)]), segs.speaker.astype(str).to_numpy()[keep]


def normalized_parts(normalization, data):
    """The normalizer of config node ``normalization``, fitted on the training split, and the normalized (X, y)
    of train / val / test.

    With ``normalization.per_speaker`` the per-speaker statistics come from each speaker's own ORIGINAL
    recordings (no labels, no augmented copies): training speakers from the training part only (so validation
    utterances of a training speaker are held out of them too), a speaker first seen in validation or test
    from all of that speaker's segments in that part (the test speakers' own recordings: legitimate at test
    time). All of them are saved with the normalizer, so an attack on a test segment uses the same shift."""
    (Xtr, ytr, str_), (Xva, yva, sva), (Xte, yte, ste) = (data.part(p) for p in ("train", "val", "test"))
    norm = instantiate(normalization)
    if not getattr(norm, "per_speaker", None):
        norm.fit(Xtr)
        return norm, (norm.transform(Xtr), ytr), (norm.transform(Xva), yva), (norm.transform(Xte), yte)
    norm.fit(Xtr, speakers=str_.speaker.astype(str).to_numpy(), stats_from=_originals(Xtr, str_))
    norm.add_speakers(*_originals(Xva, sva))
    norm.add_speakers(*_originals(Xte, ste))
    spk = {p: s.speaker.astype(str).to_numpy() for p, s in (("train", str_), ("val", sva), ("test", ste))}
    return (norm, (norm.transform(Xtr, spk["train"]), ytr), (norm.transform(Xva, spk["val"]), yva),
            (norm.transform(Xte, spk["test"]), yte))


def deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic, so the same config trains the
    same weights (on the same machine and library versions). Cost measured by ``benchmarks/determinism.py``."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def compiled_model(model_cfg, train_cfg, seed: int, input_shape, n_classes, fast: bool = True):
    """The model of config node ``model_cfg``, compiled with Adam(``train_cfg.lr``) and cross-entropy on logits;
    seeded and deterministic. A windowed CNN-(B)LSTM is returned in its fast form (``ser_attacks.fast_model``:
    the same layers and weights, the same numbers within float rounding); ``stock_form`` gives the model to save.
    ``fast=False`` trains the stock form itself (``benchmarks/model_speed.py --fold-epochs`` compares the two)."""
    from .fast_model import maybe_fast
    deterministic(int(seed))
    model = build_model(model_cfg, input_shape, n_classes)
    return compile_for_training(maybe_fast(model) if fast else model, train_cfg.lr)


def compile_for_training(model, lr: float):
    """``model`` compiled as training uses it: Adam(``lr``), cross-entropy on logits, accuracy."""
    import keras
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(lr)),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def training_form(cfg, model, normalizer, defense=None):
    """The model ``fit`` trains: ``model`` itself, or, with a training-side defense (``cfg.defense``, stage
    training: adversarial training, ``ser_attacks.defenses``), a compiled trainer over the same weights whose
    training step attacks every batch (the clip box: ``normalizer.clip_values``). ``defense``: the instantiated
    defense if the caller has it."""
    from .defenses.adversarial_training import from_config
    defense = defense if defense is not None else from_config(cfg)
    if defense is None:
        return model
    return compile_for_training(defense.trainer(model, normalizer.clip_values), float(cfg.train.lr))


def log_training_defense(defense, normalizer, X, Z, seed: int) -> dict:
    """What a training run records about its adversarial training: the parameters as run (step size
    derived), the budget in σ and in SNR dB on the training set (``eps_snr_db``)."""
    from .defenses.adversarial_training import eps_snr_db
    out = {"defense": defense.name, **{f"defense_{k}": v for k, v in defense.describe().items()}}
    out["defense_eps_snr_db"] = eps_snr_db(normalizer, X, Z, defense.eps, int(seed))
    return out


MONITORS = ("val_loss", "val_accuracy")


class TrainConfigError(ValueError):
    """A training option the protocol does not know (the user's input: reported without a traceback)."""


def check_train(t) -> str:
    """The ``train`` node's ``monitor`` (default val_loss), or TrainConfigError before any data or model."""
    monitor = t.get("monitor", "val_loss")
    if monitor not in MONITORS:
        raise TrainConfigError(f"train.monitor={monitor!r}: choose one of {MONITORS}")
    min_epochs = int(t.get("min_epochs", 0))
    if not 0 <= min_epochs <= int(t.max_epochs):
        raise TrainConfigError(f"train.min_epochs={min_epochs}: must lie in 0 .. train.max_epochs ({t.max_epochs})")
    return monitor


CURVE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy")


def curve_recorder(test=None):
    """A Keras callback that records the learning curves per epoch (``.curves``: epoch, training loss and accuracy
    (running, dropout on), validation loss and accuracy, and with ``test`` = (X, y) the test accuracy). The test
    accuracy is added to the epoch's logs, so callbacks after this one (the MLflow logger) log it; it is only
    recorded, never used to choose anything."""
    import keras

    class CurveRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curves: dict[str, list[float]] = {"epoch": [], **{k: [] for k in CURVE_KEYS}}

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if test is not None and len(test[1]):
                logs["test_accuracy"] = accuracy(self.model, *test)
            self.curves["epoch"].append(epoch + 1)
            for k in CURVE_KEYS:
                self.curves[k].append(float(logs[k]) if k in logs else float("nan"))

    return CurveRecorder()


def _batches(X, Y, batch_size: int):
    """(X, Y) as a plain batched ``tf.data.Dataset``: the batches Keras would cut from the arrays, in the same
    order, without its parallel-map pipeline (which prints ``E0000 … use_unbounded_threadpool`` under op
    determinism; see ``logits``)."""
    import tensorflow as tf
    return tf.data.Dataset.from_tensor_slices((np.asarray(X, np.float32), np.asarray(Y, np.float32))).batch(
        int(batch_size))


def fit(t, model, train, val, n_classes: int, callbacks=(), test=None, state_dir: Path | None = None):
    """The training protocol of config node ``t`` (group ``train``): EarlyStopping(restore best) +
    ReduceLROnPlateau on ``t.monitor`` (val_loss, or val_accuracy), plus ``callbacks`` (MLflow per-epoch
    logger, Optuna pruning). The checkpoint rule: the kept (restored) epoch is the best epoch by ``t.monitor``
    among epochs ``>= t.min_epochs`` (1-based; 0 = any epoch: study v1), and training stops ``patience`` epochs
    after the last improvement, never before ``min_epochs + patience`` (Keras ``start_from_epoch``).
    ``test`` = (X, y): its accuracy per epoch is recorded (``curve_recorder``), never used to choose.
    ``state_dir``: the whole training state is saved there after every epoch, and a state found there is
    resumed (``ser_attacks.training_state``: the same weights as an uninterrupted training).
    Returns the Keras history with ``history.kept_epoch`` (1-based), ``history.curves`` (every epoch, resumed
    ones included) and ``history.epochs`` (epochs run in all)."""
    import keras
    monitor = check_train(t)
    mode = "min" if monitor == "val_loss" else "max"
    min_epochs = int(t.get("min_epochs", 0))
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience,
                                         restore_best_weights=True, start_from_epoch=max(min_epochs - 1, 0))
    plateau = keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, patience=t.reduce_lr_patience,
                                                factor=t.reduce_lr_factor)
    curves = curve_recorder(test)
    cbs = [curves, stop, plateau, *callbacks]
    state = training_state.read(state_dir)
    if state_dir is not None:       # last: restores the callbacks above after they reset, saves after they ran
        cbs.append(training_state.epoch_state(state_dir, state, stop, plateau, curves, replay=callbacks))
    (Xtr, ytr), (Xva, yva) = train, val
    hist = model.fit(Xtr, keras.utils.to_categorical(ytr, n_classes), batch_size=t.batch_size,
                     epochs=t.max_epochs, validation_data=_batches(Xva, keras.utils.to_categorical(yva, n_classes),
                                                                   t.batch_size),
                     callbacks=cbs, verbose=t.verbose, shuffle=True,
                     initial_epoch=training_state.start_epoch(state, t.max_epochs))
    hist.kept_epoch = int(getattr(stop, "best_epoch", 0)) + 1      # set by on_train_begin
    hist.curves = curves.curves
    hist.epochs = len(curves.curves["epoch"])
    hist.resumed_after = int(state[0]["epochs_done"]) if state else 0     # 0: not resumed
    hist.seconds_before = float(state[0]["seconds"]) if state else 0.0
    return hist


def accuracy(model, X, y) -> float:
    return float(np.mean(np.argmax(logits(model, X), 1) == y))


def by_speaker(model, X, y, speakers) -> dict[str, list[int]]:
    """{speaker: [correct, segments]} on (X, y): what a speaker-level interval resamples."""
    hit = np.argmax(logits(model, X), 1) == y if len(y) else np.zeros(0, bool)
    return {str(s): [int(hit[speakers == s].sum()), int((speakers == s).sum())] for s in np.unique(speakers)}


def _fit(cfg, data, tracking, key: str, out: Path, parent_run_id: str | None = None) -> dict:
    from .data import front_end  # the data stage (pandas) only when a model is trained
    from .defenses.adversarial_training import from_config
    from .fast_model import stock_form
    defense = from_config(cfg)                  # adversarial training (stage: training), parameters checked
    norm, (Xtr, ytr), (Xva, yva), (Xte, yte) = normalized_parts(cfg.normalization, data)
    n_classes = len(data.classes)
    model = compiled_model(cfg.model, cfg.train, cfg.seed, Xtr.shape[1:], n_classes)
    trainer = training_form(cfg, model, norm, defense)
    run_id = tracking.start_train_run(cfg, key, n_params=model.count_params(), sizes=data.split.sizes(),
                                      parent_run_id=parent_run_id) if tracking else None
    defended = log_training_defense(defense, norm, data.part("train")[0], Xtr, cfg.seed) if defense else {}
    if defense is not None:
        log.info("Adversarial training %s: eps %.4g σ (mean SNR %.1f dB on the training set), %d step(s) of "
                 "%.4g σ, ratio %.2f", defense.name, defense.eps, defended["defense_eps_snr_db"], defense.steps,
                 defense.step, defense.ratio)
        if run_id:
            for tag, value in (("defense", defense.name), ("defense_stage", defense.stage)):
                tracking.set_tag(run_id, tag, value)
            tracking.log_metrics(run_id, {k: v for k, v in defended.items() if isinstance(v, (int, float))})
    callbacks = [tracking.epoch_logger(run_id)] if run_id else []
    log.info("Training %s (%d params) on %d segments, validating on %d", cfg.model.name,
             model.count_params(), len(Xtr), len(Xva))
    t0 = time.time()
    try:
        hist = fit(cfg.train, trainer, (Xtr, ytr), (Xva, yva), n_classes, callbacks, test=(Xte, yte),
                   state_dir=training_state.folder_for(out))
        seconds = time.time() - t0 + hist.seconds_before       # a resumed training: both processes' time

        meta = {"key": key, "classes": data.classes, "train_run_id": run_id, "n_params": model.count_params(),
                "epochs": hist.epochs, "train_seconds": seconds, "device": device_name(),
                "val_acc": accuracy(model, Xva, yva), "test_acc": accuracy(model, Xte, yte),
                "n_segments_val": len(yva), "n_segments_test": len(yte),
                "input_shape": list(Xtr.shape[1:]),
                "value_range": list(norm.value_range), "tracking_uri": tracking.uri if tracking else None,
                "dataset": cfg.dataset.name, "model": cfg.model.name, "seed": int(cfg.seed),
                "epoch_kept": hist.kept_epoch, "split": str(cfg.split.mode), "fold": _fold(cfg.split),
                "sizes": data.split.sizes(), "monitor": str(cfg.train.get("monitor", "val_loss")),
                "min_epochs": int(cfg.train.get("min_epochs", 0)), "curves": hist.curves, **defended}
        if hist.resumed_after:
            meta["resumed_after_epoch"] = hist.resumed_after

        meta["test_by_speaker"] = by_speaker(model, Xte, yte, data.part("test")[2].speaker.astype(str).to_numpy())
        if run_id:      # the kept epoch, the curves and the test speakers' counts (recipes/speaker_independent)
            tracking.log_metrics(run_id, {"epoch_kept": meta["epoch_kept"]})
            tracking.log_dict(run_id, {k: meta[k] for k in ("epoch_kept", "fold", "seed", "curves",
                                                                   "test_by_speaker")}, "curves.json")

        def build(tmp: Path) -> None:
            stock_form(model).save(tmp / "model.keras")          # the paper's architecture, not the fast form
            norm.save(tmp / "normalizer.npz")
            write_model_config(tmp, front_end(cfg.features), meta)
            if run_id:      # MLflow Models (Keras flavour + pyfunc wrapper), registered; facts kept in meta.json
                meta.update(tracking.finish_train_run(run_id, meta, tmp, stock_form(model), Xtr[:1]))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

        atomic_dir(out, build)
        shutil.rmtree(training_state.folder_for(out), ignore_errors=True)     # the model landed: state done
    except BaseException as exc:
        if run_id:
            tracking.end_on_exception(run_id, exc)
        raise
    log.info("Trained in %.0f s (%d epochs, kept epoch %d): val acc %.3f, test acc %.3f", seconds, meta["epochs"],
             meta["epoch_kept"], meta["val_acc"], meta["test_acc"])
    return meta


def _fold(split) -> int | None:
    return int(split.fold) if split.get("mode") == "speaker_cv" and split.get("fold") is not None else None


def write_model_config(folder: Path, fe, meta: dict) -> None:
    """``ser_model.json``: what the pyfunc wrapper needs besides the weights and the normalizer (classes, the
    audio front end ``fe`` of training, the model's identity)."""
    (folder / MODEL_CONFIG).write_text(json.dumps(
        {"classes": list(meta["classes"]), "front_end": asdict(fe), "input_shape": meta["input_shape"],
         "model_key": meta["key"], "dataset": meta["dataset"], "model": meta["model"], "seed": meta["seed"]},
        indent=2))


def load_trained(path: Path, key: str, trained_now: bool = False) -> TrainedModel:
    import keras
    meta = json.loads((path / "meta.json").read_text())
    model = keras.models.load_model(path / "model.keras", compile=False)
    return TrainedModel(model, Normalizer.load(path / "normalizer.npz"), meta["classes"], key, path, meta,
                        trained_now)


MODEL_FILES = ("model.keras", "normalizer.npz", "meta.json")


def _check_legacy(path: Path) -> None:
    """A model cached before checksums: it must load."""
    load_trained(path, path.name)


def get_or_train(cfg, data, tracking=None, parent_run_id: str | None = None) -> TrainedModel:
    """The trained model for this configuration: from the cache, or trained now (once, under a lock).
    ``parent_run_id`` makes a new training run a child of that run (train-only sweeps)."""
    key = model_key(cfg, data)
    path = Path(cfg.paths.cache_dir) / "models" / key
    with locked(path, f"model {key}"):
        trained_now = not valid_entry(path, MODEL_FILES, _check_legacy)   # checksums; a damaged one is retrained
        if trained_now:
            _fit(cfg, data, tracking, key, path, parent_run_id)
        else:
            log.info("Reusing trained model %s", path)
            shutil.rmtree(training_state.folder_for(path), ignore_errors=True)  # a kill between landing and cleanup
        tm = load_trained(path, key, trained_now)
        if tracking is not None and not trained_now:    # a store that does not know the cached model logs it
            tm.meta = {**tm.meta, **tracking.adopt_cached_model(
                cfg, tm, lambda: tm.normalizer.transform(np.asarray(data.part("train")[0][:1])),
                data.split.sizes(), parent_run_id)}
    return tm


def train_job(cfg, tracking, parent_run_id: str | None = None) -> dict[str, float]:
    """``mode=train``: prepare the data and train (or reuse) the model; the training run is the result.

    In a sweep the training run is a child of the sweep's run. If this exact model is already cached,
    nothing is retrained: a ``run_type=train_reused`` child run records the cached model's metrics and
    points at its training run (tag ``model_run_id``), so every job of a study still has its run.
    """
    from .data import prepare
    data = prepare(cfg, progress=cfg.progress)
    tm = get_or_train(cfg, data, tracking, parent_run_id)
    metrics = {k: float(tm.meta[k]) for k in ("val_acc", "test_acc", "epochs", "n_params", "epoch_kept")
               if k in tm.meta}
    if not tm.trained_now and parent_run_id:
        run_id = tracking.create_run(
            f"train {cfg.model.name} {cfg.dataset.name} seed={cfg.seed} (cached)",
            run_tags("train_reused", cfg, model_key=tm.key, model_run_id=tm.run_id or "", sweep_id=parent_run_id),
            parent_run_id)
        tracking.log_config(run_id, cfg)
        tracking.log_metrics(run_id, metrics)
        tracking.finish(run_id)
    return metrics
