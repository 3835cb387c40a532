"""A training killed between epochs resumes from its saved state and ends with the uninterrupted training's
weights, curves and kept epoch (``ser_attacks.training_state``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import subprocess_env

pytestmark = pytest.mark.e2e     # trainings in fresh processes, one of them killed

# The study's model form (fast CNN-LSTM: batch norm, dropout) at few filters; ReduceLROnPlateau's patience 1 and
# early stopping on validation accuracy, so the state carries a lowered learning rate and a patience count.
TRAIN = """
import json, os, sys
from pathlib import Path
import keras, numpy as np
from omegaconf import OmegaConf
from ser_attacks.train import compiled_model, fit
state_dir, kill_at = (Path(sys.argv[1]) if sys.argv[1] != "-" else None), int(sys.argv[2])
t = OmegaConf.create({"monitor": "val_accuracy", "min_epochs": 2, "max_epochs": int(sys.argv[3]),
                      "early_stopping_patience": 2, "reduce_lr_patience": 1, "reduce_lr_factor": 0.5,
                      "batch_size": 4, "verbose": 0, "lr": 3e-3})
cfg = OmegaConf.create({"_target_": "ser_attacks.models.build_cnn_lstm", "lstm_units": 6, "dropout": 0.3,
                        "conv": [{"filters": 3, "kernel": 5, "batchnorm": True, "pool": 4, "stride": 2},
                                 {"filters": 4, "kernel": 3, "pool": 2, "stride": 2},
                                 {"filters": 4, "kernel": 3, "pool": 2, "stride": 1}]})
rng = np.random.default_rng(0)
X, y = np.clip(rng.normal(size=(30, 261, 128, 1)), -3, 3).astype("float32"), rng.integers(0, 3, 30)
X[y == 1, :, :20] += 0.8
model = compiled_model(cfg, t, 7, X.shape[1:], 3)
if sys.argv[5] == "at":        # adversarial training: the trainer's own generator is part of the state
    from ser_attacks.defenses.pgd_at import PGDAdversarialTraining
    from ser_attacks.train import compile_for_training
    at = PGDAdversarialTraining(0.1, steps=1, ratio=0.5, seed=5)
    model, inner = compile_for_training(at.trainer(model, (-3.0, 3.0)), 3e-3), model

class Kill(keras.callbacks.Callback):      # the process dies as a session's end kills it: no cleanup at all
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == kill_at:
            os._exit(9)

hist = fit(t, model, (X[:18], y[:18]), (X[18:24], y[18:24]), 3, callbacks=[Kill()], test=(X[24:], y[24:]),
           state_dir=state_dir)
w = (inner if sys.argv[5] == "at" else model).get_weights()
print("RESULT", json.dumps({"kept": hist.kept_epoch, "epochs": hist.epochs, "resumed_after": hist.resumed_after,
                            "curves": hist.curves, "sum": [float(np.sum(a.astype(np.float64))) for a in w],
                            "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))}))
np.savez(sys.argv[4], *w)
"""


def _train(tmp, state_dir, kill_at: int, max_epochs: int, tag: str, expect_rc: int = 0, form: str = "plain"):
    out = tmp / f"{tag}.npz"
    proc = subprocess.run([sys.executable, "-c", TRAIN, str(state_dir) if state_dir else "-", str(kill_at),
                           str(max_epochs), str(out), form], cwd=tmp, env=subprocess_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == expect_rc, proc.stderr[-3000:]
    if expect_rc:
        return None, None
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    with np.load(out) as z:
        return json.loads(line[7:]), [z[k] for k in z.files]


@pytest.mark.parametrize("form", ["plain", "at"], ids=["model", "adversarial_training"])
def test_a_killed_training_resumes_to_the_same_weights(tmp_path, form):
    plain, w_plain = _train(tmp_path, None, -1, 6, "plain", form=form)
    state = tmp_path / ".key.training"
    _train(tmp_path, state, 3, 6, "killed", expect_rc=9, form=form)          # killed before epoch 4 began
    saved = json.loads(str(np.load(state / "state.npz")["meta"]))
    assert saved["epochs_done"] == 3 and len(saved["curves"]["epoch"]) == 3 and saved["seconds"] > 0
    assert saved["n_extra"] == (1 if form == "at" else 0)
    resumed, w_resumed = _train(tmp_path, state, -1, 6, "resumed", form=form)
    assert resumed["resumed_after"] == 3 and plain["resumed_after"] == 0
    assert plain["epochs"] >= 4, "the kill must interrupt a training that goes on"
    for k in ("kept", "epochs", "curves", "lr"):
        assert resumed[k] == plain[k], k
    assert len(w_plain) == len(w_resumed)
    for a, b in zip(w_plain, w_resumed):
        np.testing.assert_array_equal(a, b)


def test_a_training_killed_after_its_last_epoch_only_restores_the_best_weights(tmp_path):
    """Killed after the epoch that stopped the training (before the model was saved): the resume runs no epoch and
    ends as the training would have (best weights restored)."""
    plain, w_plain = _train(tmp_path, None, -1, 4, "plain")
    state = tmp_path / ".key.training"
    _train(tmp_path, state, 99, 4, "full")                                  # runs to the end, leaves its state
    resumed, w_resumed = _train(tmp_path, state, 0, 4, "again")             # a kill at epoch 0 would fire if run
    assert resumed["resumed_after"] == 4 and resumed["curves"] == plain["curves"]
    assert resumed["kept"] == plain["kept"]
    for a, b in zip(w_plain, w_resumed):
        np.testing.assert_array_equal(a, b)


def test_get_or_train_resumes_a_failed_training_and_logs_every_epoch(cfg_factory, monkeypatch):
    """Through the cache: a training that dies in epoch 3 leaves its state beside the model's place; the next
    job of the same config resumes it (meta says after which epoch), its MLflow run gets every epoch's metrics
    (the saved ones replayed), and the state goes when the model lands."""
    import keras
    from mlflow.tracking import MlflowClient

    from ser_attacks import train as train_mod
    from ser_attacks.data import prepare
    from ser_attacks.tracking import Tracking
    from ser_attacks.training_state import folder_for
    cfg = cfg_factory("split=speaker_cv", "split.n_folds=2", "split.val_utterances=0.25", "train=study",
                      "train.min_epochs=3", "train.early_stopping_patience=1", "train.max_epochs=5", "seed=3")
    data, tracking = prepare(cfg, progress=False), Tracking.from_cfg(cfg)

    class Dies(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    fit = train_mod.fit

    def dying(t, model, train, val, n_classes, callbacks=(), **kw):
        return fit(t, model, train, val, n_classes, [*callbacks, Dies()], **kw)

    monkeypatch.setattr(train_mod, "fit", dying)
    with pytest.raises(KeyboardInterrupt):
        train_mod.get_or_train(cfg, data, tracking)
    monkeypatch.setattr(train_mod, "fit", fit)
    model_dir = next(p for p in (Path(cfg.paths.cache_dir) / "models").iterdir() if p.name.endswith(".training"))
    model_dir = model_dir.parent / model_dir.name[1:-len(".training")]
    assert not model_dir.exists() and folder_for(model_dir).is_dir()
    tm = train_mod.get_or_train(cfg, data, tracking)
    assert tm.meta["resumed_after_epoch"] == 2 and tm.meta["epochs"] >= 4 and not folder_for(model_dir).exists()
    client = MlflowClient(str(cfg.tracking.uri))
    steps = [m.step for m in client.get_metric_history(tm.run_id, "test_accuracy")]
    assert steps == list(range(tm.meta["epochs"]))
    assert client.get_run(tm.run_id).data.metrics["resumed_after_epoch"] == 2      # models.csv's column reads it
    assert client.get_run(tm.run_id).data.tags["device"] == tm.meta["device"]       # and its device column this
