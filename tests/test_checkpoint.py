"""The checkpoint rule (issue 26): the kept epoch is chosen on validation among epochs >= train.min_epochs, so an
almost untrained model (epoch 1) cannot be kept; the learning curves (train / validation / test accuracy per
epoch) and the test speakers' counts are recorded with the model."""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import compose_config


class ScriptedModel:
    """A stand-in for keras.Model.fit that plays a scripted validation curve through the real callbacks."""

    def __init__(self, val_acc, val_loss=None):
        self.val_acc, self.stop_training, self.weights = list(val_acc), False, [np.zeros(1)]
        self.val_loss = list(val_loss) if val_loss is not None else [1 - a for a in val_acc]
        self.optimizer = types.SimpleNamespace(learning_rate=1e-3)
        self.epochs_run = 0

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [np.asarray(x).copy() for x in w]

    def __call__(self, x, training=False):          # every input → class 0 (traceable: ser_attacks.train.logits)
        import tensorflow as tf
        return tf.one_hot(tf.zeros(tf.shape(x)[0], tf.int32), 2)

    def fit(self, *a, callbacks=(), epochs=1, **kw):
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin()
        for e in range(min(epochs, len(self.val_acc))):
            self.weights = [np.full(1, e + 1.0)]          # "the weights of epoch e+1"
            logs = {"loss": 1.0, "accuracy": 0.5, "val_loss": self.val_loss[e], "val_accuracy": self.val_acc[e]}
            for cb in callbacks:
                cb.on_epoch_end(e, logs)
            self.epochs_run = e + 1
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return types.SimpleNamespace(history={})


DATA = ((np.zeros((4, 2)), np.array([0, 1, 0, 1])), (np.zeros((2, 2)), np.array([0, 1])))
# Validation accuracy peaks at epoch 1 (an untrained model on unseen speakers), then a later, lower plateau.
CURVE = [0.60, 0.30, 0.35, 0.40, 0.45, 0.50, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43, 0.42, 0.41]


def _train(*overrides, curve=CURVE, test=None):
    t = compose_config("mode=train", "train.reduce_lr_patience=100", *overrides).train
    model = ScriptedModel(curve)
    from ser_attacks.train import fit
    hist = fit(t, model, *DATA, 2, test=test)
    return hist, model


def test_v1_rule_keeps_epoch_one_and_the_study_rule_cannot():
    """train=default (study v1): any epoch may be kept, here epoch 1; train=study: the best validation accuracy
    among epochs >= min_epochs, restored, and no stop before min_epochs + patience."""
    hist, model = _train("train.monitor=val_accuracy", "train.early_stopping_patience=3")
    assert hist.kept_epoch == 1 and model.weights[0][0] == 1.0 and model.epochs_run == 4
    hist, model = _train("train.monitor=val_accuracy", "train.early_stopping_patience=3", "train.min_epochs=3")
    assert hist.kept_epoch == 6 and model.weights[0][0] == 6.0       # best of epochs 3.. = 0.50 at epoch 6
    assert model.epochs_run == 9                                      # 3 epochs without improvement after 6
    hist, model = _train("train.monitor=val_accuracy", "train.early_stopping_patience=2", "train.min_epochs=12")
    assert hist.kept_epoch == 12 and model.epochs_run == 14           # nothing before epoch 12 is a candidate


def test_study_rule_is_the_study_default_and_v1_stays_reachable():
    new = compose_config("experiment=study", "dataset=emodb", "+hparams=emodb_paper")
    old = compose_config("experiment=study_v1", "dataset=emodb", "+hparams=emodb_paper")
    models = compose_config("experiment=study_models", "dataset=emodb", "+hparams=emodb_paper")
    assert (new.train.monitor, new.train.min_epochs, new.split.val_utterances) == ("val_accuracy", 10, 0.16)
    assert (old.train.monitor, old.train.min_epochs, old.split.val_utterances) == ("val_loss", 0, None)
    assert old.train.early_stopping_patience == 10 and old.tracking.experiment == "study"
    assert models.mode == "train"
    for group in ("dataset", "features", "augment", "split", "normalization", "model", "train"):
        assert models[group] == new[group], group       # the same models: study_models trains what study attacks
    leaky = compose_config("experiment=study_leaky", "dataset=emodb", "+hparams=emodb_paper")
    # v2 drops the Griffin-Lim comparison (no planned measure reads it); v1 reproduces with its 32 iterations
    assert (new.input.griffin_lim_iter, leaky.input.griffin_lim_iter, old.input.griffin_lim_iter) == (0, 0, 32)


def test_bad_min_epochs_is_an_error():
    from ser_attacks.train import TrainConfigError, check_train
    with pytest.raises(TrainConfigError, match="train.min_epochs=60"):
        check_train(compose_config("train.min_epochs=60").train)


def test_curves_record_test_accuracy_without_choosing_on_it():
    X = np.zeros((4, 2))
    hist, _ = _train("train.monitor=val_accuracy", "train.early_stopping_patience=3", test=(X, np.array([0, 0, 0, 1])))
    c = hist.curves
    assert c["epoch"] == [1, 2, 3, 4] and c["val_accuracy"] == CURVE[:4] and c["test_accuracy"] == [0.75] * 4
    assert set(c) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy"}


@pytest.mark.e2e
def test_training_records_kept_epoch_curves_and_speakers(cfg_factory):
    """A real (tiny) training under the study rule: kept epoch >= min_epochs, curves in meta.json and in the
    training run (per-epoch test_accuracy metric, curves.json), test counts per speaker; the figure draws."""
    import json

    from mlflow.tracking import MlflowClient

    from ser_attacks.data import prepare
    from ser_attacks.tracking import Tracking
    from ser_attacks.train import get_or_train
    cfg = cfg_factory("split=speaker_cv", "split.n_folds=2", "split.val_utterances=0.25", "train=study",
                      "train.min_epochs=3", "train.early_stopping_patience=1", "train.max_epochs=5", "seed=3")
    data = prepare(cfg, progress=False)
    tracking = Tracking.from_cfg(cfg)
    tm = get_or_train(cfg, data, tracking)
    meta = tm.meta
    assert 3 <= meta["epoch_kept"] <= meta["epochs"] and meta["fold"] == 0 and meta["seed"] == 3
    c = meta["curves"]
    assert c["epoch"] == list(range(1, meta["epochs"] + 1)) and len(c["test_accuracy"]) == meta["epochs"]
    counts = meta["test_by_speaker"]
    assert sum(n for _, n in counts.values()) == data.split.sizes()["test"]
    assert np.isclose(sum(k for k, _ in counts.values()) / data.split.sizes()["test"], meta["test_acc"])
    client = MlflowClient(str(cfg.tracking.uri))
    hist = client.get_metric_history(tm.run_id, "test_accuracy")
    assert len(hist) == meta["epochs"]
    assert client.get_run(tm.run_id).data.metrics["epoch_kept"] == meta["epoch_kept"]
    path = client.download_artifacts(tm.run_id, "curves.json")
    assert json.loads(open(path).read())["curves"] == json.loads(json.dumps(c))
    # the recipe's table and figure from that run
    out = cfg.paths.cache_dir + "/recipe"
    _script().main(["--experiment", "ser-attacks", "--dataset", "synthetic", "--out", out,
                    "--tracking-uri", str(cfg.tracking.uri)])
    import pandas as pd
    row = pd.read_csv(f"{out}/models.csv").iloc[0]
    assert (row.fold, row.seed, row.epoch_kept) == (0, 3, meta["epoch_kept"])
    assert (Path(out) / "curves.png").stat().st_size > 10_000
    # the files alone (the MLflow store gone) give the same table and curves
    again = cfg.paths.cache_dir + "/recipe_again"
    _script().main(["--from", out, "--dataset", "synthetic", "--out", again])
    for name in ("models.csv", "speakers.csv", "summary.csv", "curves.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(f"{again}/{name}"), pd.read_csv(f"{out}/{name}"), obj=name)


def _script():
    from tests.helpers import load_script
    return load_script("scripts/speaker_independent.py", "speaker_independent")


def test_recipe_table_pools_folds_and_seeds_with_a_speaker_and_seed_interval():
    import pandas as pd
    si = _script()
    # 2 folds x 2 seeds, 2 speakers per fold; seed 2 is worse on fold 1
    counts = {("a", 1): (8, 10), ("b", 1): (6, 10), ("c", 1): (5, 10), ("d", 1): (7, 10),
              ("a", 2): (8, 10), ("b", 2): (6, 10), ("c", 2): (2, 10), ("d", 2): (4, 10)}
    rows, extra = [], {}
    for fold, spk in ((0, "ab"), (1, "cd")):
        for seed in (1, 2):
            c = {s: list(counts[(s, seed)]) for s in spk}
            rid = f"r{fold}{seed}"
            extra[rid] = {"test_by_speaker": c}
            rows.append({"rule": "R", "fold": fold, "seed": seed, "epoch_kept": 10 + seed, "run_id": rid,
                         "test_acc": sum(k for k, _ in c.values()) / 20})
    s = si.summarize(pd.DataFrame(rows), extra).iloc[0]
    assert s.models == 4 and s.test_speakers == 4 and s.segments == 80
    assert s.pooled_test_acc == round(46 / 80, 3)
    assert s.sd_across_seeds == round(np.mean([0.0, np.std([0.6, 0.3], ddof=1)]), 3)
    lo, hi = map(float, s.ci95.strip("[]").split(","))
    assert lo < 46 / 80 < hi and s.epoch_kept == "11-12"
    assert si.interval({("a", 1): (1, 2), ("b", 1): (2, 2)}) is None            # 2 speakers: no interval
    assert si.interval(counts) == si.interval(counts)                          # seeded
    spk = si.speakers(pd.DataFrame(rows).assign(rule="R"), extra)                # the per-speaker seed spread
    assert len(spk) == 8 and spk.n.sum() == 80 and spk.n_correct.sum() == 46
    assert spk[(spk.speaker == "c") & (spk.seed == 2)].n_correct.item() == 2


def test_recipe_keeps_protocols_apart_and_compares_them_on_common_folds_and_seeds():
    """Two normalizations are two rules (never pooled), and ``--common-folds`` keeps only the (fold, seed) pairs
    both have: the EMOVO protocol comparison (default vs speaker_std, seed 42, the folds both finished)."""
    import pandas as pd
    si = _script()
    base = {"train.monitor": "val_accuracy", "train.min_epochs": "10", "train.early_stopping_patience": "10",
            "split.val_utterances": "0.16"}
    default, spk = si.rule_of({**base, "normalization.name": "original_std"}), si.rule_of(
        {**base, "normalization.name": "speaker_std"})
    assert default != spk and spk.endswith("normalization speaker_std") and "normalization" not in default
    assert si.rule_of(base) == default                       # runs from before the option: the default
    rows = [{"rule": default, "fold": f, "seed": k} for f in (0, 1, 2, 3) for k in (42, 43)]
    rows += [{"rule": spk, "fold": f, "seed": 42} for f in (0, 1, 2)]
    got = si.select(pd.DataFrame(rows), [42], True)
    assert sorted(map(tuple, got[["fold", "seed"]].drop_duplicates().to_numpy())) == [(0, 42), (1, 42), (2, 42)]
    assert len(got) == 6 and set(got.rule) == {default, spk}
    assert len(si.select(pd.DataFrame(rows), None, False)) == 11
    acc = got.assign(test_speakers="s", n_test=10, test_acc=[0.5, 0.1, 0.4, 0.6, 0.3, 0.5])
    pairs = si.paired(acc)
    assert list(pairs.fold) == [0, 1, 2] and pairs.rule_a.iloc[0] == default
    assert np.allclose(pairs.difference_b_minus_a, [0.1, 0.2, 0.1])
    assert si.paired(acc[acc.rule == spk]) is None
    with pytest.raises(SystemExit, match="no model left"):
        si.select(pd.DataFrame(rows), [7], False)


def test_seed_labels_at_curve_ends_never_overlap():
    """RAVDESS fold 0: seeds 42 and 44 end their validation curves at 0.586 (epochs 23, 22); their labels collided."""
    si = _script()
    ys = [0.5859, 0.6250, 0.5859]
    out = si.spread(ys, si.LABEL_GAP)
    assert min(abs(a - b) for i, a in enumerate(out) for b in out[i + 1:]) >= si.LABEL_GAP - 1e-12
    assert np.mean(out) == pytest.approx(np.mean(ys)) and out[1] > out[0] and out[1] > out[2]
    assert si.spread([0.3, 0.6], si.LABEL_GAP) == [0.3, 0.6]         # apart already: at their points
    assert si.spread([], si.LABEL_GAP) == []


def test_recipe_files_read_back_and_a_model_trained_again_replaces_its_row(tmp_path):
    """``--from``: models.csv, speakers.csv and curves.csv read back into what MLflow gave; a model of the same
    (rule, fold, seed) from MLflow replaces the file's row, and a different test accuracy is reported; a model of
    files without curves.csv is drawn without a curve."""
    import pandas as pd
    si = _script()
    curves = {"epoch": [1, 2], "accuracy": [0.5, 0.75], "val_accuracy": [0.25, 0.5], "test_accuracy": [0.2, 0.4]}
    rows = [{"experiment": "e", "dataset": "emovo", "rule": "R", "fold": f, "seed": 42, "test_speakers": s,
             "n_test": 10, "epochs": 2, "epoch_kept": 2, "val_acc": 0.5, "test_acc": 0.4, "train_seconds": 1.0,
             "run_id": f"r{f}"} for f, s in ((0, "f1"), (1, "m1"))]
    models = pd.DataFrame(rows)
    extra = {f"r{f}": {"test_by_speaker": {s: (4, 10)}, "curves": curves} for f, s in ((0, "f1"), (1, "m1"))}
    models.to_csv(tmp_path / "models.csv", index=False)
    si.speakers(models, extra).to_csv(tmp_path / "speakers.csv", index=False)
    si.curves_table(models, extra).to_csv(tmp_path / "curves.csv", index=False)
    got, got_extra = si.from_files(tmp_path, "emovo")
    pd.testing.assert_frame_equal(got, models)
    assert got_extra == {k: {**v, "test_by_speaker": {s: (4, 10) for s in v["test_by_speaker"]}}
                         for k, v in extra.items()}
    assert si.from_files(tmp_path, "emodb")[0].empty
    again = models.iloc[[1]].assign(run_id="new", test_acc=0.5)
    merged, _, changed = si.combine([(got, got_extra), (again, {"new": extra["r1"]})])
    assert list(merged.run_id) == ["r0", "new"]
    assert changed == ["fold 1 seed 42 (R): test accuracy 0.4000 then 0.5000 (trained again: not the same weights)"]
    # trained again with the same outcome: the file's row stays and takes the curves it lacked
    bare = {"r1": {**got_extra["r1"], "curves": None}}
    same, same_extra, changed = si.combine([(got.iloc[[1]], bare), (models.iloc[[1]].assign(run_id="x"),
                                                                     {"x": extra["r1"]})])
    assert list(same.run_id) == ["r1"] and changed == [] and same_extra["r1"]["curves"] == curves
    (tmp_path / "curves.csv").unlink()                                         # files from before curves.csv
    old, old_extra = si.from_files(tmp_path, "emovo")
    assert old_extra["r0"]["curves"] is None and si.curves_table(old, old_extra).empty
    si.plot_curves(old, old_extra, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").exists()
    with pytest.raises(SystemExit, match="needs models.csv"):
        si.from_files(tmp_path / "nothing", "emovo")


TINY_FIT = """
import numpy as np, keras
from omegaconf import OmegaConf
from ser_attacks.train import deterministic, fit
deterministic(0)
t = OmegaConf.create({"monitor": "val_loss", "min_epochs": 0, "max_epochs": 3, "early_stopping_patience": 5,
                      "reduce_lr_patience": 2, "reduce_lr_factor": 0.5, "batch_size": 8, "verbose": 0})
rng = np.random.default_rng(0)
X, y = rng.normal(size=(70, 12, 6, 1)).astype("float32"), rng.integers(0, 3, 70)
m = keras.Sequential([keras.Input(X.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(3)])
m.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
hist = fit(t, m, (X[:40], y[:40]), (X[40:50], y[40:50]), 3, test=(X[50:], y[50:]))
print("CURVES", hist.curves["test_accuracy"], hist.curves["val_loss"])
"""


@pytest.mark.e2e
def test_training_log_has_no_tf_data_error_lines(tmp_path):
    """Issue 29: a deterministic training printed TensorFlow's ``E0000 … use_unbounded_threadpool …`` line from
    every per-epoch test accuracy (model.predict's tf.data pipeline under op determinism) and after training. The
    accuracy now comes from a compiled forward call over batches and validation from a plain batched dataset. (Keras'
    own training pipeline still prints it once per training when the last training batch is partial; 40 / 8 here.)"""
    import subprocess
    import sys

    from tests.helpers import subprocess_env
    proc = subprocess.run([sys.executable, "-c", TINY_FIT], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CURVES" in proc.stdout
    bad = [ln for ln in proc.stderr.splitlines() if "use_unbounded_threadpool" in ln or ln.startswith("E0000")]
    assert not bad, f"{len(bad)} TensorFlow error line(s) in the training log, e.g. {bad[0][:200]}"


def test_logits_are_what_predict_gives():
    """``train.logits`` (the accuracies' forward pass) gives model.predict's numbers, batch by batch, with a
    partial last batch; validation batches are the arrays' batches in order."""
    import keras

    from ser_attacks.train import _batches, logits  # logits: ser_attacks.forward
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((5, 4, 1)), keras.layers.Conv2D(3, 2), keras.layers.Flatten(),
                          keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    X = np.random.default_rng(0).normal(size=(70, 5, 4, 1)).astype("float32")
    assert np.array_equal(logits(m, X), m.predict(X, batch_size=64, verbose=0))
    assert logits(m, X[:0]).shape == (0, 3)
    got = [b[0].numpy() for b in _batches(X, np.eye(3)[np.arange(70) % 3], 32)]
    assert [len(b) for b in got] == [32, 32, 6] and np.array_equal(np.concatenate(got), X)
