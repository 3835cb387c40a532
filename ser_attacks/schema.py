"""Structured config schemas, registered with Hydra's ConfigStore.

Every attack config (``conf/attack/*.yaml``) extends ``attack_schema``: the keys of all attacks
exist in every attack (``None`` = "not used by this attack"), so a sweep key such as
``attack.eps`` is valid across the group, while a typo (``attack.epz``) or a wrong type
(``attack.eps=big``) is rejected by Hydra when the config is composed, before any job starts.
Whether a set key is accepted by the target ART class is checked by ``attacks.validate`` when the
job starts, before any data or model is loaded.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Dict, List, Optional, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .frontend import FrontEnd


@dataclass
class AttackConf:
    _target_: str = MISSING
    name: str = MISSING
    # platform keys (not passed to ART)
    n_samples: Optional[int] = None          # attack only this many test segments (stratified by gender x emotion)
    sample_seed: int = 0                     # which segments (fixed, not the training seed: every attack sees the same)
    sample_strata: Optional[str] = None      # n_samples strata: None = "gender" x emotion, "speaker" = every speaker
    snr_db: Optional[float] = None           # input=waveform: budget as SNR (dB) per segment (ser_attacks.waveform)
    seed: Optional[int] = None               # the attack's own randomness (boundary, pixel, noise, autoattack)
    # infrastructure keys, passed where the ART class takes them
    batch_size: int = 32
    verbose: bool = True
    # attack parameters (None = not set; ART's default applies)
    norm: Optional[str] = None               # "inf", "1", "2"
    eps: Optional[float] = None
    eps_step: Optional[float] = None
    max_iter: Optional[int] = None
    targeted: Optional[bool] = None
    num_random_init: Optional[int] = None
    minimal: Optional[bool] = None
    epsilon: Optional[float] = None          # DeepFool overshoot / Boundary step
    nb_grads: Optional[int] = None
    theta: Optional[float] = None
    gamma: Optional[float] = None
    confidence: Optional[float] = None
    learning_rate: Optional[float] = None
    binary_search_steps: Optional[int] = None
    initial_const: Optional[float] = None
    max_halving: Optional[int] = None
    max_doubling: Optional[int] = None
    largest_const: Optional[float] = None
    decrease_factor: Optional[float] = None
    const_factor: Optional[float] = None
    th: Optional[int] = None
    cells: Optional[int] = None              # noise: sparse noise, k random cells per segment (Pixel's reference)
    es: Optional[int] = None
    delta: Optional[float] = None
    step_adapt: Optional[float] = None
    num_trial: Optional[int] = None
    sample_size: Optional[int] = None
    init_size: Optional[int] = None
    per_sample: Optional[bool] = None        # batched attacks: evaluate the model per sample inside each call
    source: Optional[str] = None             # transfer: the white-box attack crafted on the undefended model
    p_init: Optional[float] = None           # square: initial share of the input a square covers
    nb_restarts: Optional[int] = None        # square: restarts


# Each stage's config node builds its object with hydra.utils.instantiate(node, ...), like model and attack:
# the _target_ defaults below are the stages' factories.
@dataclass
class SplitConf:
    _target_: str = "ser_attacks.split.make_split"     # instantiate(split, segments) → Split
    mode: str = "recording"
    val: float = 0.16
    test: float = 0.2
    seed: int = 0


@dataclass
class SpeakerCVConf:
    """``split=speaker_cv``: its own schema, so the keys (and model cache keys) of the other modes stay."""
    _target_: str = "ser_attacks.split.make_split"
    mode: str = "speaker_cv"
    fold: int = 0                            # the test fold, 0 .. n_folds-1 (sweep it)
    n_folds: Optional[int] = None            # None: EmoDB 5, EMOVO 3, RAVDESS 6 (capped by speakers per gender)
    seed: int = 0                            # shuffles the speakers of each gender before dealing them to folds
    # Validation: None = the next fold's speakers (speaker-independent model selection; k - 2 training folds);
    # a share (e.g. 0.16) = that share of the training speakers' utterances (k - 1 training folds: for corpora
    # with few speakers, EMOVO's 6, where a held-out validation fold leaves 2 training speakers). Test stays
    # the fold's unseen speakers either way.
    val_utterances: Optional[float] = None


@dataclass
class TrainConf:
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 50
    early_stopping_patience: int = 10
    reduce_lr_patience: int = 6
    reduce_lr_factor: float = 0.1
    monitor: str = "val_loss"                # early stopping and LR schedule watch val_loss or val_accuracy
    min_epochs: int = 0                      # the kept epoch is chosen among epochs >= min_epochs (and no stop before)
    verbose: int = 2


# The front end's own parameters (ser_attacks.frontend.FrontEnd) plus how many processes extract.
FeaturesConf = make_dataclass(
    "FeaturesConf", [(f.name, get_type_hints(FrontEnd)[f.name], field(default=f.default)) for f in fields(FrontEnd)]
    + [("n_jobs", int, 1)])


@dataclass
class NormalizationConf:
    _target_: str = "ser_attacks.normalization.Normalizer.from_config"   # instantiate(normalization) → Normalizer
    name: str = "original_std"
    method: str = "original"                 # original | norm_sum | norm_max_global | norm_max_local
    standardize: bool = True                 # then per-Mel-band mean/std (fitted on train)
    clip: bool = True                        # clip to the range seen in training (= ART clip_values)
    per_speaker: Optional[str] = None        # "mean": subtract each speaker's own per-band mean first (no labels)


@dataclass
class AugmentVersion:
    kind: str = MISSING                      # pitch (semitones) | stretch (tempo factor)
    amount: float = MISSING


@dataclass
class AugmentConf:
    name: str = "none"
    versions: List[AugmentVersion] = field(default_factory=list)


@dataclass
class EstimatorConf:
    _target_: str = "ser_attacks.estimator.make_classifier"   # instantiate(estimator, model, n_classes, clip_values)
    kind: str = "compiled"
    batch_size: int = 64


@dataclass
class InputConf:
    name: str = "spectrogram"                # spectrogram | waveform (what the attack perturbs; ser_attacks.inputs)
    realize: bool = True                     # spectrogram: resynthesize adversarial spectrograms as audio, re-classify
    refine: int = 3                          # resynthesis: gain refinement rounds (original phase kept)
    griffin_lim_iter: int = 32               # resynthesis: also Griffin-Lim with this many iterations (0 = off)
    step_ratio: float = 0.1                  # waveform + attack.snr_db: eps_step = step_ratio x per-sample eps
    n_audio_per_gender: int = 1              # WAV artifacts (original, adversarial, perturbation x10) per gender


@dataclass
class DefenseConf(Dict[str, Any]):
    """``conf/defense/<name>.yaml`` (``ser_attacks.defenses``): the keys every defense has; a defense's own
    parameters (and its ``_target_``) are extra keys (the schema subclasses ``Dict``, so they are allowed).
    ``eot`` / ``bpda``: the attacker's options, applied by ``estimator.make_classifier``."""
    name: str = "none"                       # also the MLflow tag ``defense``
    stage: str = "none"                      # none | inference | training
    eot: int = 1                             # randomized defenses: k draws averaged when attacking (1 = off)
    bpda: bool = True                        # non-differentiable transforms: straight-through gradients


@dataclass
class DatasetConf:
    name: str = MISSING
    corpus: str = MISSING                    # emodb | emovo | ravdess (file layout and loader)
    language: str = MISSING
    root: str = MISSING
    emotions: Optional[List[str]] = None
    generate: Optional[Any] = None           # synthetic corpus parameters (embedded corpus only)


def register() -> None:
    cs = ConfigStore.instance()
    for group, node in (("attack", AttackConf), ("split", SplitConf), ("train", TrainConf),
                        ("features", FeaturesConf), ("normalization", NormalizationConf),
                        ("estimator", EstimatorConf), ("dataset", DatasetConf),
                        ("augment", AugmentConf), ("input", InputConf)):
        cs.store(group=group, name=f"{group}_schema", node=node)
    with warnings.catch_warnings():          # OmegaConf calls subclassing Dict deprecated; it is what allows extra keys
        warnings.filterwarnings("ignore", message=".*subclasses `Dict`", category=UserWarning)
        cs.store(group="defense", name="defense_schema", node=DefenseConf)
    cs.store(group="split", name="split_cv_schema", node=SpeakerCVConf)
