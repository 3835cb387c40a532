"""``python -m ser_attacks``: one attack job (or a sweep of them with ``-m``).

audio → segments → features (cached) → split → model (trained once, cached) → attack → metrics →
MLflow. Each job is one MLflow run, a child of the sweep's parent run in multirun mode.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import lifecycle, schema
from .attacks import (
    AttackConfigError,
    attack_labels,
    build_attack,
    clip_values_for,
    select_samples,
    validate,
)
from .checks import EXIT_CONFIG, ConfigError, check_config
from .defenses import DefenseConfigError
from .defenses import check_job as check_defense
from .identity import config_hash, run_tags
from .inputs import InputStage
from .inputs import check as check_input
from .machine import device_name
from .metrics import attack_metrics, db_units, robust_note
from .normalization import NormalizationConfigError
from .paths import CONF_DIR  # noqa: F401 - also the location tests and scripts import from here
from .plots import spectrogram_triplets
from .progress import bars
from .tracking import Tracking, TrackingError, parent_run_id
from .tracking.notes import attack_note
from .train import TrainConfigError, get_or_train, train_job
from .tune import run_study

log = logging.getLogger("ser_attacks")
logging.getLogger("art").setLevel(logging.WARNING)   # ART's own "success rate" lines use other definitions
schema.register()


def _job_context() -> tuple[bool, str | None, list[str], Path]:
    """(multirun?, the sweep's parent run id, the job's overrides, the job's output folder)."""
    if not HydraConfig.initialized():
        return False, None, [], Path(tempfile.gettempdir())
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return (multirun, (parent_run_id(hc.sweep.dir) if multirun else None), list(hc.overrides.task),
            Path(hc.runtime.output_dir))


def attack_effect(x: np.ndarray, x_adv: np.ndarray, metrics: dict) -> tuple[str, str]:
    """(``attack_effect`` tag, reason): ``none`` when the adversarial examples equal the inputs or no
    correctly classified sample was flipped; ``undefined`` when no attacked sample was classified correctly
    (success rate NaN: the run says nothing about the attack); else ``ok``."""
    if np.array_equal(x_adv, x):
        return "none", "the adversarial examples equal the inputs"
    if metrics["success_rate"] != metrics["success_rate"]:
        return "undefined", "no attacked sample was classified correctly, so no success can be measured"
    if metrics["success_rate"] == 0:
        return "none", "no correctly classified sample changed its prediction"
    return "ok", ""


def _data_and_model(cfg: DictConfig, tracking: Tracking, run_id: str, parent: str | None = None):
    """The data (logged: sizes, skipped files) and the trained model (tagged on the attack run; a model trained
    now gets its training run nested under the sweep's run ``parent``)."""
    from .data import prepare

    data = prepare(cfg, progress=cfg.progress)
    tracking.log_metrics(run_id, {"n_recordings": len(data.corpus.table), "n_skipped_files": len(data.skipped),
                                  **{f"n_segments_{k}": v for k, v in data.split.sizes().items()}})
    if data.skipped:
        tracking.log_text(run_id, "\n".join(f"{p}\t{r}" for p, r in data.skipped), "skipped_files.tsv")
    tm = get_or_train(cfg, data, tracking, parent)
    tracking.set_tag(run_id, "model_key", tm.key)
    if tm.run_id:
        tracking.set_tag(run_id, "model_run_id", tm.run_id)
    tracking.link_model(run_id, cfg.dataset.name, cfg.model.name, tm.key, tm.run_id)   # param model_uri=models:/…
    return data, tm


def _tag_effect(tracking: Tracking, run_id: str, name: str, x, x_adv, metrics: dict) -> tuple[str, str]:
    effect, reason = attack_effect(x, x_adv, metrics)
    tracking.set_tag(run_id, "attack_effect", effect)
    if reason:
        tracking.set_tag(run_id, "attack_effect_reason", reason)
    if effect != "ok":
        log.warning("Attack %s had %s (%s); tagged attack_effect=%s", name,
                    "NO effect" if effect == "none" else "an UNDEFINED effect", reason, effect)
    return effect, reason


def _log_triplets(tracking: Tracking, run_id: str, n_per_gender: int, x, x_adv, segs, y, adv_logits,
                  classes) -> None:
    """``spectrograms.png``: clean / adversarial / difference for ``n_per_gender`` segments per gender."""
    genders = segs.gender.to_numpy()
    picks = [i for g in ("female", "male") for i in np.flatnonzero(genders == g)[:n_per_gender]]
    if picks:
        names = [f"{genders[i]} {segs.speaker.iloc[i]} {classes[y[i]]}→"
                 f"{classes[adv_logits[i].argmax()]}" for i in picks]
        fig = spectrogram_triplets(x[picks], x_adv[picks], names)
        tracking.log_figure(run_id, fig, "spectrograms.png")
        import matplotlib.pyplot as plt
        plt.close(fig)


def minimal_perturbation(cfg, tracking: Tracking, run_id: str, segs, y, clean_logits, adv_logits, x, x_adv,
                         audio_snr) -> dict[str, np.ndarray]:
    """Per-segment norms and, for minimum-norm attacks, the minimal perturbation (``ser_attacks.min_norm``);
    logs the run's summaries as metrics and its robustness curve (CSV + PNG) as artifacts."""
    from .min_norm import norm_of, plot_run_curve, run_summary, segment_columns
    name, norm = cfg.attack.name, cfg.attack.get("norm")
    cols = segment_columns(x, x_adv, y, clean_logits.argmax(1), adv_logits.argmax(1),
                           norm_of(name, norm) is not None, audio_snr)
    metrics, table = run_summary(name, norm, segs, y, clean_logits.argmax(1), cols, seed=int(cfg.seed))
    if table is not None:
        tracking.log_metrics(run_id, metrics)
        tracking.log_curve(run_id, table, plot_run_curve(table, f"{name} ({table.norm.iloc[0]}): accuracy vs the "
                                                           "minimal perturbation, speaker-level, 95% bootstrap over "
                                                           "speakers"), "robustness_curve")
    return cols


def attack_job(cfg: DictConfig, tracking: Tracking, run_id: str, parent: str | None = None) -> dict[str, float]:
    data, tm = _data_and_model(cfg, tracking, run_id, parent)
    X, y, segs = data.part("test")
    by_speaker = cfg.attack.get("sample_strata") == "speaker"
    idx = select_samples(segs.gender.to_numpy(), cfg.attack.n_samples, cfg.attack.sample_seed,
                         segs.emotion.to_numpy(), segs.speaker.to_numpy() if by_speaker else None)
    Xs, segs = np.asarray(X[idx]), segs.iloc[idx].reset_index(drop=True)
    x, y, genders = tm.normalizer.transform(Xs, segs.speaker.astype(str).to_numpy()), y[idx], segs.gender.to_numpy()
    clip, box = clip_values_for(cfg.attack, tm.normalizer)
    tracking.set_tag(run_id, "clip_box", box)
    from .attacks.transfer import attach_surrogate
    from .estimator import defense_spec
    defense = defense_spec(cfg.get("defense"))                             # conf/defense: built once per job
    stage = InputStage(cfg, tm, Xs, segs, tracking, run_id, defense)   # conf/input: spectrogram | waveform
    clf = None if stage.waveform else \
        instantiate(cfg.estimator, _partial_=True)(tm.model, len(tm.classes), clip, defense=defense)  # conf/estimator
    x, clf = stage.model_input(x, clf)
    attach_surrogate(cfg, data, tm, clf, tracking, run_id, parent)   # attack=transfer: the undefended model
    attack = stage.budgeted(build_attack(OmegaConf.merge(cfg.attack, {"verbose": bars(cfg.attack.verbose)}), clf))
    deployed = getattr(clf, "deployed", clf)     # the defense as deployed (one draw); the attacker sees clf
    clean_logits = deployed.predict(x)
    labels, label_kind = attack_labels(attack, y, len(tm.classes), cfg.seed)
    if not cfg.attack_true_labels and label_kind == "true":
        labels, label_kind = None, "predicted"
    tracking.set_tag(run_id, "attack_labels", label_kind)
    log.info("Attacking %d test segments with %s", len(x), type(attack).__name__)
    np.random.seed(cfg.seed)   # ART draws from NumPy's global generator (random targets, random init): seeded
    t0 = time.perf_counter()
    x_adv = np.asarray(attack.generate(x=x, y=labels), dtype=np.float32)   # numpy result: device synced
    seconds = time.perf_counter() - t0
    queries = getattr(attack, "queries", None)     # black-box attacks (square): model evaluations made
    adv_logits = deployed.predict(x_adv)
    x, x_adv, audio_metrics = stage.finish(x, x_adv, y, clean_logits, adv_logits)   # model inputs from here on

    delta_db = tm.normalizer.to_db(x_adv - x, Xs)
    metrics = attack_metrics(y, clean_logits, adv_logits, x, x_adv, genders, delta_db, Xs)
    metrics.update(audio_metrics, attack_time_s=seconds, time_per_sample_s=seconds / len(x),
                   model_val_acc=tm.meta["val_acc"], model_test_acc=tm.meta["test_acc"],
                   load_avg_1m=os.getloadavg()[0])     # the host's load right after the attack: judges its time
    if queries is not None:
        metrics["queries_per_segment"] = queries / max(len(x), 1)
    tracking.log_metrics(run_id, metrics)
    tracking.log_param(run_id, "n_samples_attacked", len(x))
    tracking.set_tag(run_id, "device", device_name())
    fold = int(cfg.split.fold) if cfg.split.mode == "speaker_cv" else -1
    per_sample = {k: v.astype(np.float32) for k, v in db_units(delta_db, Xs).items()}
    per_sample.update(minimal_perturbation(cfg, tracking, run_id, segs, y, clean_logits, adv_logits, x, x_adv,
                                           stage.audio_snr))
    if (cfg.get("defense") or {}).get("name") == "smoothing":   # certified radii of the smoothed base model
        from .defenses.smoothing import base_logits, log_certification
        per_sample.update(log_certification(tracking, run_id, base_logits(tm.model), x, y, segs, cfg.defense,
                                            len(tm.classes), tm.normalizer, Xs, seed=cfg.seed, progress=cfg.progress))
    keep = {"x_adv": x_adv} if (cfg.get("tracking") or {}).get("save_x_adv", True) else {}
    with tempfile.TemporaryDirectory() as tmp:     # reusable without recomputing: np.load(...)
        # one row per attacked segment, with what the report's speaker-level statistics need
        np.savez_compressed(Path(tmp) / "adversarial.npz", **keep, test_index=idx,
                            **{c: segs[c].to_numpy().astype(str) for c in
                               ("recording_id", "speaker", "utterance", "augment", "emotion")},
                            segment=segs.segment.to_numpy(), fold=np.full(len(x), fold), label=y,
                            gender=genders.astype(str), classes=np.asarray(tm.classes, dtype=str),
                            clean_pred=clean_logits.argmax(1), adv_pred=adv_logits.argmax(1),
                            clean_logits=clean_logits, adv_logits=adv_logits,
                            perturbation=np.abs(x_adv - x).reshape(len(x), -1).mean(1), **per_sample)
        tracking.log_artifact(run_id, Path(tmp) / "adversarial.npz")
    tracking.describe(run_id, attack_note(cfg, metrics, *_tag_effect(tracking, run_id, cfg.attack.name, x, x_adv,
                                                                     metrics)))
    _log_triplets(tracking, run_id, cfg.n_plot_per_gender, x, x_adv, segs, y, adv_logits, tm.classes)
    log.info("%s: clean acc %.3f → adversarial acc %.3f (female %.3f, male %.3f)%s, perturbation %.4g, %.2f s",
             cfg.attack.name, metrics["clean_acc"], metrics["adv_acc"], metrics.get("adv_acc_female", np.nan),
             metrics.get("adv_acc_male", np.nan), robust_note(metrics), metrics["perturbation"], seconds)
    return metrics


def run(cfg: DictConfig) -> dict[str, float] | None:
    """One job: an attack run (``mode=attack``), or training / an Optuna study. Its runs are closed
    KILLED on SIGTERM/SIGINT, and a fatal signal is reported to a file its runs name (lifecycle)."""
    lifecycle.install_signal_handlers()
    lifecycle.check_interrupted()          # an interrupt that something swallowed: no further job starts
    check_config(cfg)                      # every check that needs no data: before any run, data or model
    tracking = Tracking.from_cfg(cfg)
    multirun, parent, overrides, job_dir = _job_context()
    with lifecycle.fault_report(job_dir / f"fault-{os.getpid()}.log"):
        return _run(cfg, tracking, multirun, parent, overrides)


def _run(cfg: DictConfig, tracking: Tracking, multirun: bool, parent: str | None,
         overrides: list[str]) -> dict[str, float] | None:
    if cfg.get("mode", "attack") != "attack":  # mode=train: training only (model studies); mode=tune: Optuna
        try:
            return train_job(cfg, tracking, parent) if cfg.mode == "train" else run_study(cfg, tracking)
        except Exception as exc:
            if not multirun:
                raise
            if lifecycle.interrupted():       # an error raised while stopping: the sweep stops
                raise lifecycle.interrupted() from exc
            log.error("Job FAILED (%s: %s); the sweep goes on", exc.__class__.__name__, exc)
            return None
    name = " ".join([cfg.attack.name] + [o[len("attack."):] for o in overrides if o.startswith("attack.")
                                          and not o.startswith(("attack.verbose", "attack.batch_size"))])
    chash = config_hash(cfg)
    if not cfg.force:
        done = tracking.finished_run(chash)
        if done is not None:                   # resume: this exact configuration already finished
            log.info("Skipping %s: already FINISHED as run %s (config_hash %s; force=true reruns it)",
                     name, done.info.run_id, chash)
            if parent:
                tracking.set_tag(parent, f"skipped.{done.info.run_id}", name)
            return dict(done.data.metrics)
    run_id = tracking.create_run(name, run_tags("attack", cfg, sweep_id=parent or "", overrides=" ".join(overrides),
                                                config_hash=chash), parent)
    try:
        tracking.log_config(run_id, cfg)
        unused = validate(cfg.attack)          # bad attack parameters fail before any data or model
        check_input(cfg)                       # input / attack.snr_db combination
        check_defense(cfg.get("defense"), str(cfg.input.name) if cfg.get("input") else "spectrogram")
        if unused:
            tracking.set_tag(run_id, "unused_params", ",".join(unused))
        metrics = attack_job(cfg, tracking, run_id, parent)
    except BaseException as exc:
        tracking.end_on_exception(run_id, exc)
        if lifecycle.interrupted() and exc is not lifecycle.interrupted():
            raise lifecycle.interrupted() from exc     # an error raised while stopping: the sweep stops
        if multirun and isinstance(exc, Exception):
            log.error("Job %s FAILED (%s: %s); the sweep goes on", name, exc.__class__.__name__, exc)
            return None
        raise
    tracking.finish(run_id)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> dict[str, float] | None:
    from .data import DatasetError
    from .split import SplitError
    try:
        return run(cfg)
    except (AttackConfigError, ConfigError, DatasetError, SplitError, TrackingError,
            TrainConfigError, NormalizationConfigError, DefenseConfigError) as exc:   # the user's input: no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
