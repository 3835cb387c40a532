"""What makes two runs or two models "the same": one definition for the pipeline, the tracking and the report.

* ``RUN_ONLY``: config keys that change how a job runs or where it logs, never what it computes.
* ``config_hash``: an attack job's identity (its composed config minus ``HASH_EXCLUDED``); a FINISHED run
  with the same hash is skipped on resume (tag ``config_hash``).
* ``model_key``: a trained model's identity: the config groups that shape the model (``MODEL_GROUPS``) minus
  run-only keys, the recordings it was trained on, the split code's revision, the front-end code's version
  and the classes. It names the model cache entry and is tagged ``model_key`` on training and attack runs.
* ``SEED_KEYS`` / ``FOLD_KEYS``: runs differing only in these are repetitions / folds of one configuration
  (the report pools them); ``REPORT_IGNORED``: keys the report never uses to tell configurations apart.
* ``run_tags``: the tags that say what a run is (``run_type``, dataset, language, model, attack, the defense),
  for every kind of run, so the report, the UI filters and resume all read the same names.

Light on purpose (no TensorFlow, MLflow, pandas or OmegaConf at import): the report, the CLI and the feature
code (also inside a served model) import it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .cache import file_fingerprint, stable_hash

# Keys that change how a job runs or where it logs, not what it computes.
RUN_ONLY = ("force", "progress", "report", "tracking", "paths", "features.n_jobs", "attack.verbose", "train.verbose",
            "tune")                # the Optuna search config: composed into every job, never used by attack jobs
# Left out of ``config_hash``: attack jobs only run in mode=attack.
HASH_EXCLUDED = RUN_ONLY + ("mode",)
# Parameters a job logs itself that follow from the seed (model_uri) or the data, and plot counts.
JOB_PARAMS = ("model_uri", "n_samples_attacked", "n_plot_per_gender")
# Keys the report never uses to tell configurations apart.
REPORT_IGNORED = RUN_ONLY + JOB_PARAMS

# Keys that identify a seed: runs differing only in these are repetitions of one configuration. Keys ending in
# "seed" whose value equals ``seed`` in every run (e.g. ``tune.sampler_seed: ${seed}``) are added per report.
SEED_KEYS = ("seed", "split.seed", "attack.seed", "attack.sample_seed")
# Keys that name one part of a cross-validation: runs differing only in these (and the seeds) are one
# configuration whose folds together test every speaker once; they are pooled, not kept apart.
FOLD_KEYS = ("split.fold",)

# The config groups that shape a trained model (logged as the training run's params; hashed by model_key).
MODEL_GROUPS = ("dataset", "features", "augment", "split", "normalization", "model", "train")
# Keys of those groups that do not shape the model: where the data lies (its content is hashed instead).
NOT_IN_MODEL_KEY = ("dataset.root",)
# Options added after runs were made, at the value that keeps the old behaviour: left out of config_hash,
# model_key and the logged params while they hold that value, so adding an option never changes the identity
# of an existing run or model (a resumed sweep still skips its FINISHED jobs, the report still pools them).
NEUTRAL = {"split.val_utterances": None, "train.monitor": "val_loss", "train.min_epochs": 0,
           "normalization.per_speaker": None,
           # defense=none (the config group added by issue 28): runs and models from before it keep their identity
           "defense.name": "none", "defense.stage": "none", "defense.eot": 1, "defense.bpda": True,
           # the transfer and Square attacks' keys (AttackConf): every other attack's config_hash stays as it was
           "attack.source": None, "attack.p_init": None, "attack.nb_restarts": None,
           # n_samples stratified by gender x emotion unless attack.sample_strata=speaker (study v2's subsample)
           "attack.sample_strata": None}
# The transfer attack's module (ser_attacks/attacks/transfer.py): its runs are tagged attack_transfer=true.
TRANSFER = "ser_attacks.attacks.transfer."
# Versions of code whose output the config does not fully say; bump one when that output changes.
# The front end (audio → segments → log-Mel): keys the feature cache and the model cache.
FEATURES_VERSION = 2
# Per split mode: bumped when a mode's grouping changes, so a model trained on an older split of that mode is
# never reused with a new test set. recording 2: grouped by utterance, no longer by recording file.
SPLIT_REVISION = {"recording": 2}


def matches(key: str, names) -> bool:
    """``key`` is one of ``names`` or lies under one of them (``tracking.uri`` under ``tracking``)."""
    return any(key == n or key.startswith(n + ".") for n in names)


def shapes_model(key: str) -> bool:
    """A flat (dotted) config key that shapes the trained model: the seed, or a key under ``MODEL_GROUPS`` that is
    neither run-only nor the data's location. ``model_key`` hashes exactly these; the report compares them."""
    return key == "seed" or (matches(key, MODEL_GROUPS) and not matches(key, RUN_ONLY + NOT_IN_MODEL_KEY))


def is_run_only(key: str) -> bool:
    """A key the report never uses to tell configurations apart (``REPORT_IGNORED``)."""
    return matches(key, REPORT_IGNORED)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (the names of logged params)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def is_neutral(key: str, value: Any) -> bool:
    """``key`` is a ``NEUTRAL`` option holding its old-behaviour value."""
    return key in NEUTRAL and value == NEUTRAL[key]


def without_neutral(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` (dotted keys) without the ``NEUTRAL`` options that hold their old-behaviour value."""
    return {k: v for k, v in flat.items() if not is_neutral(k, v)}


def logged_params(container: dict) -> dict[str, Any]:
    """The params a run logs for a config container: ``flatten`` minus neutral options."""
    return without_neutral(flatten(container))


def _container(node) -> dict:
    # lazy: the feature code imports FEATURES_VERSION, also inside a served model's environment (no omegaconf)
    from omegaconf import OmegaConf
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def config_hash(cfg) -> str:
    """Identity of an attack job's result: a hash of its composed config minus ``HASH_EXCLUDED``."""
    flat = logged_params(_container(cfg))
    return stable_hash({k: v for k, v in flat.items() if not matches(k, HASH_EXCLUDED)})


def training_defense(cfg) -> dict | None:
    """The ``defense`` node when it acts in training (``stage: training``: an adversarially trained model is
    another model), else None (no defense, or one at inference: the trained model is the undefended one)."""
    node = cfg.get("defense") if hasattr(cfg, "get") else None
    if node is None or str(node.get("stage", "none")) != "training":
        return None
    return _container(node)


def model_groups(cfg) -> dict:
    """The config groups of ``MODEL_GROUPS`` (a missing group: ``{}``) and the seed, as plain containers,
    without the ``NEUTRAL`` options at their old-behaviour value; plus the whole ``defense`` node when it
    acts in training (``training_defense``; absent otherwise, so every other model keeps its key)."""
    groups = {g: {k: v for k, v in _container(cfg.get(g)).items() if not is_neutral(f"{g}.{k}", v)}
              for g in MODEL_GROUPS}
    defense = training_defense(cfg)
    if defense is not None:
        groups["defense"] = defense
    return {**groups, "seed": cfg.seed}


def recordings_fingerprint(table) -> str:
    """Identity of the recordings a model learns from: every recording's content (``file_fingerprint``)
    with what the corpus parser read about it (id, speaker, gender, emotion, utterance, ...), in order;
    not where the corpus lies (``path``) nor the files' modification times."""
    meta = table.drop(columns=["path"]).astype(str).to_dict("records")
    return stable_hash([[file_fingerprint(Path(p)), m] for p, m in zip(table.path, meta)])


def model_key(cfg, data) -> str:
    """Identity of a trained model: the model-shaping config groups (run-only keys and the data's location
    left out), the recordings (``recordings_fingerprint`` of ``data.corpus``), the split code's revision,
    ``FEATURES_VERSION`` and the classes (``data.classes``); the whole ``defense`` node when it acts in training."""
    groups = model_groups(cfg)
    for name in MODEL_GROUPS:
        groups[name] = {k: v for k, v in groups[name].items() if shapes_model(f"{name}.{k}")}
    if cfg.split.mode in SPLIT_REVISION:
        groups["split"]["revision"] = SPLIT_REVISION[cfg.split.mode]
    return stable_hash({**groups, "recordings": recordings_fingerprint(data.corpus.table),
                        "features_version": FEATURES_VERSION, "classes": list(data.classes)})


def run_tags(run_type: str, cfg, **extra) -> dict[str, str]:
    """The tags that say what a run is: ``run_type`` (attack | train | train_reused | tune | trial | sweep),
    ``dataset``, ``language`` and ``model`` (not on a sweep, which may span models), ``attack`` (attack
    runs; ``attack_transfer=true`` for a transfer attack), then ``extra`` (e.g. ``config_hash``, ``model_key``,
    ``sweep_id``)."""
    tags = {"run_type": run_type, "dataset": cfg.dataset.name}
    if run_type != "sweep":
        tags.update(language=cfg.dataset.language, model=cfg.model.name)
    if run_type == "attack":
        tags["attack"] = cfg.attack.name
        if str(cfg.attack.get("_target_", "")).startswith(TRANSFER):   # crafted on the undefended model
            tags["attack_transfer"] = "true"
    if run_type in ("attack", "train", "train_reused"):
        tags.update(defense_tags(cfg, run_type))
    return {**tags, **extra}


def defense_tags(cfg, run_type: str = "attack") -> dict[str, str]:
    """``defense``, ``defense_stage``, ``defense_randomized``, ``defense_differentiable``, ``attack_eot``,
    ``attack_bpda`` (``ser_attacks.defenses.tags``). A training run names the defense that shaped its model:
    the training-side one, else ``none`` (its model is shared by every inference-side defense)."""
    from .defenses import tags
    node = cfg.get("defense") if hasattr(cfg, "get") else None
    if run_type != "attack" and training_defense(cfg) is None:
        node = None
    return tags(node)
