"""Training that survives being killed: the whole training state after every epoch, and a resume that
continues as if nothing had happened.

A model of the study takes 10-40 minutes on a 2-core CPU, and a session or a SLURM allocation can end in the
middle. ``EpochState`` writes, after every epoch and atomically (one ``.npz``, replaced in one rename):

- every model variable (weights, batch-norm statistics, the dropout layers' seed-generator states),
- every optimizer variable (iteration count, learning rate as ReduceLROnPlateau left it, Adam's moments),
- what the trained model names in ``training_state_variables()`` beside those (an adversarial-training trainer:
  its attack's random generator),
- the checkpoint rule's state: EarlyStopping's best value, best epoch, best weights and patience counter,
  ReduceLROnPlateau's best value, patience and cooldown counters,
- the learning curves and each epoch's logs (so the MLflow run of the resumed training gets them too), and the
  training seconds so far.

The next training of the same model key (``train.get_or_train``: same config, same data) finds the state,
restores it in ``on_train_begin`` and continues at the next epoch (``fit(initial_epoch=…)``). Batch order needs
nothing: under ``train.deterministic`` Keras' shuffle gives the same permutation in every epoch of a training
(TensorFlow's seeded shuffle restarts with each new iterator), so epoch k+1 of a resumed training sees the batches
it would have seen. The result is the uninterrupted training's, weight for weight
(``tests/test_training_state.py`` kills a training after two epochs and compares).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

STATE_FILE = "state.npz"
EARLY_STOPPING_KEYS = ("wait", "stopped_epoch", "best", "best_epoch")
PLATEAU_KEYS = ("wait", "best", "cooldown_counter")


def folder_for(model_dir: Path) -> Path:
    """Where the training state of the model that will land at ``model_dir`` lives: a hidden sibling
    (``.<key>.training``), which cache listings skip and which goes when the model lands."""
    return model_dir.parent / f".{model_dir.name}.training"


def read(folder: Path | None) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(meta, arrays) of the state in ``folder``, or None if there is none (or it cannot be read: then the
    training starts from the beginning, which is always correct)."""
    path = folder / STATE_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return json.loads(str(arrays.pop("meta"))), arrays
    except Exception as exc:  # noqa: BLE001 - a damaged state: start over
        log.warning("Ignoring an unreadable training state %s (%s): training from the first epoch", path, exc)
        return None


def start_epoch(state, max_epochs: int) -> int:
    """The epoch ``fit`` starts at (0-based ``initial_epoch``): after the saved ones, or ``max_epochs`` if the
    saved training had already stopped (then only the end of training runs: best weights restored)."""
    if state is None:
        return 0
    meta = state[0]
    return int(max_epochs) if meta["stopped"] else int(meta["epochs_done"])


def _number(x):
    return None if x is None else float(x)


def epoch_state(folder: Path, state, stop, plateau, curves, replay=()):
    """The Keras callback that saves the training state into ``folder`` after every epoch and, given ``state``
    (``read``), restores it when training begins. It must come after ``stop`` (EarlyStopping), ``plateau``
    (ReduceLROnPlateau) and ``curves`` (``train.curve_recorder``) in the callback list, so that it restores them
    after they reset themselves and saves them after they have seen the epoch. ``replay``: callbacks that are
    given the saved epochs' logs again on resume (the MLflow epoch logger of the new run)."""
    import keras

    def extra(model):
        return list(model.training_state_variables()) if hasattr(model, "training_state_variables") else []

    def values(variables):
        return [keras.ops.convert_to_numpy(v) for v in variables]

    def assign(variables, arrays, what):
        if len(variables) != len(arrays):
            raise RuntimeError(f"training state {folder}: {len(arrays)} {what} variables saved, the model has "
                               f"{len(variables)}; delete the folder to train from the beginning")
        for v, a in zip(variables, arrays):
            v.assign(a)

    class EpochState(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_logs: list[dict] = []
            self.seconds_before = float(state[0]["seconds"]) if state is not None else 0.0

        def on_train_begin(self, logs=None):
            self.t0 = time.time()
            if state is None:
                return
            meta, arrays = state
            model, opt = self.model, self.model.optimizer
            if len(opt.variables) != meta["n_optimizer"]:
                opt.build(model.trainable_variables)
            assign(model.variables, [arrays[f"model_{i}"] for i in range(meta["n_model"])], "model")
            assign(opt.variables, [arrays[f"optimizer_{i}"] for i in range(meta["n_optimizer"])], "optimizer")
            assign(extra(model), [arrays[f"extra_{i}"] for i in range(meta.get("n_extra", 0))], "other")
            for k in EARLY_STOPPING_KEYS:
                setattr(stop, k, meta["early_stopping"][k])
            stop.best_weights = ([arrays[f"best_{i}"] for i in range(meta["n_best"])] if meta["n_best"] else None)
            for k in PLATEAU_KEYS:
                setattr(plateau, k, meta["plateau"][k])
            curves.curves = {k: list(v) for k, v in meta["curves"].items()}
            self.epoch_logs = [dict(x) for x in meta["epoch_logs"]]
            for epoch, epoch_logs in enumerate(self.epoch_logs):
                for cb in replay:
                    cb.on_epoch_end(epoch, dict(epoch_logs))
            log.info("Resumed the training from its state after epoch %d (%s)", meta["epochs_done"], folder)

        def on_epoch_end(self, epoch, logs=None):
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.epoch_logs.append({**{k: float(v) for k, v in (logs or {}).items()}, "lr": lr})
            model_vars, opt_vars = values(self.model.variables), values(self.model.optimizer.variables)
            extra_vars = values(extra(self.model))
            best = list(stop.best_weights) if stop.best_weights is not None else []
            meta = {"epochs_done": epoch + 1, "stopped": bool(self.model.stop_training),
                    "seconds": self.seconds_before + time.time() - self.t0,
                    "n_model": len(model_vars), "n_optimizer": len(opt_vars), "n_best": len(best),
                    "n_extra": len(extra_vars),
                    "early_stopping": {k: _number(getattr(stop, k)) if k == "best" else int(getattr(stop, k))
                                       for k in EARLY_STOPPING_KEYS},
                    "plateau": {k: _number(getattr(plateau, k)) if k == "best" else int(getattr(plateau, k))
                                for k in PLATEAU_KEYS},
                    "curves": curves.curves, "epoch_logs": self.epoch_logs}
            arrays = {**{f"model_{i}": a for i, a in enumerate(model_vars)},
                      **{f"optimizer_{i}": a for i, a in enumerate(opt_vars)},
                      **{f"extra_{i}": a for i, a in enumerate(extra_vars)},
                      **{f"best_{i}": np.asarray(a) for i, a in enumerate(best)}}
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{STATE_FILE}.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, folder / STATE_FILE)

    return EpochState()
