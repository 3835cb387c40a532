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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .cache import atomic_dir, locked, stable_hash
from .normalization import Normalizer

log = logging.getLogger(__name__)
NOT_IN_KEY = {"verbose"}


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


def _cfg(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def model_key(cfg, data) -> str:
    train = {k: v for k, v in _cfg(cfg.train).items() if k not in NOT_IN_KEY}
    ds = {k: v for k, v in _cfg(cfg.dataset).items() if k != "root"}
    return stable_hash({"features": data.features.cache_path.name if data.features.cache_path else None,
                        "dataset": ds, "split": _cfg(cfg.split), "augment": _cfg(cfg.get("augment")),
                        "normalization": _cfg(cfg.normalization),
                        "model": _cfg(cfg.model), "train": train, "seed": cfg.seed, "classes": data.classes})


def build_model(model_cfg, input_shape, n_classes):
    from hydra.utils import instantiate
    return instantiate(model_cfg, input_shape=list(input_shape), n_classes=n_classes, _convert_="all")


class _MlflowEpochLogger:
    """Keras callback that logs loss/accuracy/lr per epoch to a given MLflow run."""

    def __new__(cls, client, run_id):
        import keras
        from mlflow.entities import Metric

        class Logger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in logs.items()])

        return Logger()


def _fit(cfg, data, tracking, key: str, out: Path) -> dict:
    import keras

    keras.utils.set_random_seed(int(cfg.seed))
    Xtr, ytr, _ = data.part("train")
    Xva, yva, _ = data.part("val")
    Xte, yte, _ = data.part("test")
    norm = Normalizer.from_cfg(cfg.normalization).fit(Xtr)
    Xtr, Xva, Xte = norm.transform(Xtr), norm.transform(Xva), norm.transform(Xte)
    n_classes = len(data.classes)
    model = build_model(cfg.model, Xtr.shape[1:], n_classes)
    t = cfg.train
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=t.lr),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    run_id = tracking.start_train_run(cfg, key, n_params=model.count_params(),
                                      sizes=data.split.sizes()) if tracking else None
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=t.reduce_lr_patience,
                                          factor=t.reduce_lr_factor),
    ]
    if run_id:
        callbacks.append(_MlflowEpochLogger(tracking.client, run_id))
    log.info("Training %s (%d params) on %d segments, validating on %d", cfg.model.name,
             model.count_params(), len(Xtr), len(Xva))
    t0 = time.time()
    try:
        hist = model.fit(Xtr, keras.utils.to_categorical(ytr, n_classes), batch_size=t.batch_size,
                         epochs=t.max_epochs, validation_data=(Xva, keras.utils.to_categorical(yva, n_classes)),
                         callbacks=callbacks, verbose=t.verbose, shuffle=True)
        seconds = time.time() - t0

        def acc(X, y):
            return float(np.mean(np.argmax(model.predict(X, batch_size=64, verbose=0), 1) == y))

        meta = {"key": key, "classes": data.classes, "train_run_id": run_id, "n_params": model.count_params(),
                "epochs": len(hist.history["loss"]), "train_seconds": seconds,
                "val_acc": acc(Xva, yva), "test_acc": acc(Xte, yte), "input_shape": list(Xtr.shape[1:]),
                "clip_values": list(norm.clip_values), "tracking_uri": tracking.uri if tracking else None}

        def build(tmp: Path) -> None:
            model.save(tmp / "model.keras")
            norm.save(tmp / "normalizer.npz")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            if run_id:
                tracking.finish_train_run(run_id, meta, tmp)

        atomic_dir(out, build)
    except BaseException:
        if run_id:
            tracking.fail_run(run_id)
        raise
    log.info("Trained in %.0f s (%d epochs): val acc %.3f, test acc %.3f", seconds, meta["epochs"],
             meta["val_acc"], meta["test_acc"])
    return meta


def load_trained(path: Path, key: str, trained_now: bool = False) -> TrainedModel:
    import keras
    meta = json.loads((path / "meta.json").read_text())
    model = keras.models.load_model(path / "model.keras", compile=False)
    return TrainedModel(model, Normalizer.load(path / "normalizer.npz"), meta["classes"], key, path, meta,
                        trained_now)


def get_or_train(cfg, data, tracking=None) -> TrainedModel:
    """The trained model for this configuration: from the cache, or trained now (once, under a lock)."""
    key = model_key(cfg, data)
    path = Path(cfg.paths.cache_dir) / "models" / key
    with locked(path, f"model {key}"):
        trained_now = not (path / "meta.json").exists()
        if trained_now:
            _fit(cfg, data, tracking, key, path)
        else:
            log.info("Reusing trained model %s", path)
    return load_trained(path, key, trained_now)
