"""Hyperparameter search with Optuna (config group ``tune``): ``python -m ser_attacks mode=tune [overrides]``, or
``python -m ser_attacks.tune [overrides]`` (the same without Hydra's output folder and sweeps).

Optuna directly (not hydra-optuna-sweeper, which pins optuna < 3 and has no pruner). One study per
``tune.study_name`` in ``tune.storage`` (sqlite by default, so an interrupted study resumes and
``optuna-dashboard sqlite:///optuna.db`` shows it live). Each trial samples ``tune.space`` into a copy of
the composed config, trains with the project's protocol (``train.fit``: Adam, EarlyStopping,
ReduceLROnPlateau) and reports the validation loss every epoch to a ``HyperbandPruner``; its objective is
the best validation loss. MLflow: one ``run_type=tune`` run per study, one child run per trial (params,
per-epoch metrics, tag ``trial_state`` COMPLETE / PRUNED / FAIL). The best values are written as a config
file (``<hparams_dir>/<study_name>.yaml``, applied with ``+hparams=<study_name>``) and logged.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .identity import run_tags
from .paths import HPARAMS_DIR, compose, resolve_uri
from .tracking import Tracking, TrackingError
from .train import accuracy, compiled_model, fit, normalized_parts, training_form

log = logging.getLogger("ser_attacks.tune")


def search_space(space) -> dict[str, dict]:
    """Flatten ``tune.space`` to {"model.lstm_units": {type, low, high, ...}, ...}."""
    out: dict[str, dict] = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict) and "type" in v:
                out[prefix + k] = v
            elif isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                raise ValueError(f"tune.space.{prefix}{k}: expected a distribution {{type: ...}}, got {v!r}")
    walk(OmegaConf.to_container(space, resolve=True), "")
    return out


def suggest(trial, name: str, d: dict):
    kind = d["type"]
    if kind == "int":
        return trial.suggest_int(name, int(d["low"]), int(d["high"]), log=bool(d.get("log", False)))
    if kind == "float":
        return trial.suggest_float(name, float(d["low"]), float(d["high"]), log=bool(d.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(name, list(d["choices"]))
    raise ValueError(f"tune.space {name}: unknown type {kind!r} (int | float | categorical)")


def apply_params(cfg: DictConfig, params: dict) -> DictConfig:
    trial_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in params.items():
        OmegaConf.update(trial_cfg, key, value, merge=False)
    return trial_cfg


def hparams_yaml(study_name: str, params: dict, value: float, number: int) -> str:
    nested: dict = {}
    for key, v in params.items():
        node = nested
        *path, leaf = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = v
    return (f"# @package _global_\n"
            f"# Best trial of Optuna study '{study_name}': trial {number}, best val_loss {value:.4f}.\n"
            f"# Written by ser_attacks.tune. Apply: python -m ser_attacks model=<same model> +hparams={study_name}\n"
            + OmegaConf.to_yaml(OmegaConf.create(nested)))


def _pruning_callback(trial, tracking, run_id):
    import keras

    class Report(keras.callbacks.Callback):
        pruned_at: int | None = None

        def on_epoch_end(self, epoch, logs=None):
            val_loss = float((logs or {})["val_loss"])
            trial.report(val_loss, epoch)
            if trial.should_prune():
                self.pruned_at = epoch
                self.model.stop_training = True
                tracking.set_tag(run_id, "pruned_at_epoch", str(epoch))
    return Report()


def _study_run(tracking, cfg, study_name: str, storage: str) -> str:
    """The MLflow run of this study: reopened when the study is resumed, else created."""
    runs = tracking.search(f"tags.run_type = 'tune' and tags.optuna_study = '{study_name}'",
                           max_results=10, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if r.data.tags.get("optuna_storage") == storage]
    if runs:
        run_id = runs[0].info.run_id
        tracking.reopen(run_id)
        return run_id
    run_id = tracking.create_run(f"tune {study_name}", run_tags("tune", cfg, optuna_study=study_name,
                                                                  optuna_storage=storage))
    tracking.log_config(run_id, cfg)
    return run_id


def _open_study(t, max_epochs: int):
    """The Optuna study of config node ``t`` (group ``tune``), created or resumed: (study, storage URI)."""
    import optuna
    storage = resolve_uri(str(t.storage))
    study = optuna.create_study(
        storage=storage, study_name=str(t.study_name), direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=int(t.sampler_seed)),
        pruner=optuna.pruners.HyperbandPruner(min_resource=int(t.pruner.min_resource),
                                              max_resource=int(max_epochs),
                                              reduction_factor=int(t.pruner.reduction_factor)))
    return study, storage


def _close_study(tracking, parent: str, study, hparams_dir) -> dict[str, float]:
    """Log the trial counts on the study's run and close it: FAILED when no trial completed, else with the best
    trial's values written as ``<hparams_dir>/<study>.yaml`` (``+hparams=<study>``) and logged."""
    import optuna
    states = {s.name: sum(tr.state == s for tr in study.trials) for s in optuna.trial.TrialState}
    tracking.log_metrics(parent, {f"n_{k.lower()}": v for k, v in states.items() if v})
    completed = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        tracking.finish(parent, "FAILED")
        raise RuntimeError(f"Optuna study {study.study_name!r}: no trial completed ({states})")
    best = study.best_trial
    out_dir = Path(hparams_dir) if hparams_dir else HPARAMS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{study.study_name}.yaml"
    path.write_text(hparams_yaml(study.study_name, best.params, best.value, best.number))
    tracking.log_artifact(parent, path, "hparams")
    tracking.log_metrics(parent, {"best_val_loss": best.value, "best_trial": best.number})
    tracking.log_params(parent, {f"best.{k}": v for k, v in best.params.items()})
    tracking.set_tag(parent, "hparams_file", str(path))
    tracking.finish(parent)
    log.info("Best trial %d: val_loss %.4f with %s. Written to %s: apply with +hparams=%s "
             "(add hydra.searchpath=[file://%s] if that folder is not conf/hparams)",
             best.number, best.value, best.params, path, study.study_name, out_dir.parent)
    return {"best_val_loss": best.value, **{k: float(v) for k, v in best.params.items()}}


def run_study(cfg: DictConfig, tracking=None) -> dict[str, float]:
    """Run (or resume) the study of ``cfg.tune``; returns the best trial's value and parameters."""
    import optuna

    from .data import prepare

    tracking = tracking or Tracking.from_cfg(cfg)
    t = cfg.tune
    space = search_space(t.space)
    study, storage = _open_study(t, cfg.train.max_epochs)
    done = [tr for tr in study.trials if tr.state in (optuna.trial.TrialState.COMPLETE,
                                                      optuna.trial.TrialState.PRUNED)]
    remaining = max(0, int(t.n_trials) - len(done))
    parent = _study_run(tracking, cfg, study.study_name, storage)
    log.info("Optuna study %r in %s: %d trials done, %d to run (MLflow run %s). "
             "Watch it: optuna-dashboard %s", study.study_name, storage, len(done), remaining, parent, storage)

    data = prepare(cfg, progress=cfg.progress)
    norm, train, val, test = normalized_parts(cfg.normalization, data)
    n_classes = len(data.classes)

    def objective(trial) -> float:
        params = {name: suggest(trial, name, d) for name, d in space.items()}
        tcfg = apply_params(cfg, params)
        run_id = tracking.create_run(f"trial {trial.number}", run_tags(
            "trial", cfg, optuna_study=study.study_name, optuna_trial=trial.number), parent)
        tracking.log_params(run_id, params)
        state = "FAIL"
        try:
            model = compiled_model(tcfg.model, tcfg.train, tcfg.seed, train[0].shape[1:], n_classes)
            pruning = _pruning_callback(trial, tracking, run_id)
            t0 = time.time()
            hist = fit(tcfg.train, training_form(tcfg, model, norm), train, val, n_classes,
                       [tracking.epoch_logger(run_id), pruning])
            best = float(min(hist.history["val_loss"]))
            tracking.log_metrics(run_id, {"best_val_loss": best, "epochs": len(hist.history["val_loss"]),
                                          "train_seconds": time.time() - t0, "n_params": model.count_params(),
                                          "val_acc": accuracy(model, *val)})
            if pruning.pruned_at is not None:
                state = "PRUNED"
                raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}")
            if not math.isfinite(best):
                raise ValueError(f"non-finite validation loss {best}")
            state = "COMPLETE"
            return best
        finally:
            tracking.set_tag(run_id, "trial_state", state)
            tracking.finish(run_id, "FAILED" if state == "FAIL" else "FINISHED")

    try:
        if remaining:
            study.optimize(objective, n_trials=remaining, timeout=t.timeout_s, catch=(ValueError,),
                           gc_after_trial=True)
    except BaseException:
        tracking.finish(parent, "KILLED")
        raise
    return _close_study(tracking, parent, study, t.hparams_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m ser_attacks.tune [hydra overrides]``."""
    from .data import DatasetError

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    cfg = compose(["mode=tune", *(sys.argv[1:] if argv is None else argv)])   # = python -m ser_attacks mode=tune
    try:
        run_study(cfg)
    except (DatasetError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
