"""The attacks (config group ``attack``): this package's factory builds ART classes straight from ``_target_``;
the platform's own attacks are one module each (``jsma``, ``cw_l2``, ``cw_linf``, ``boundary``, ``pixel``, ``fmn``,
``noise``, ``autoattack``, ``transfer``, ``square``; ``lockstep`` and ``windowed`` are their shared machinery), as
in ART's own package.
Every attack gets its classifier from the one builder, ``ser_attacks.estimator.make_classifier`` (the defense).

``check_params`` checks every set parameter against ``PARAM_RULES`` (the ranges ART's ``_check_params`` and the
platform's own attack classes accept), without importing TensorFlow or ART: the command line runs it for every
job of a sweep before anything starts (``ser_attacks.checks``). ``attack_kwargs`` keeps the keys a config set
(non-None) minus the platform's own keys, and checks each against the target class's signature; ``validate``
builds the attack once on a throw-away two-weight classifier so ART's own ``_check_params`` rejects what the
rules do not know (an attack class of one's own) before any data is read or model trained.
"""
from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
PLATFORM_KEYS = {"_target_", "name", "n_samples", "sample_seed", "sample_strata", "snr_db"}
INFRA_KEYS = {"batch_size", "verbose"}     # passed only where the ART class takes them


class AttackConfigError(ValueError):
    """An attack config that ART would not accept."""


@dataclass(frozen=True)
class Rule:
    """What a parameter's value must be: within [lo, hi] (an open end with ``lo_open`` / ``hi_open``), one
    of ``choices``, and not zero with ``nonzero``."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    nonzero: bool = False
    note: str = ""

    def ok(self, value) -> bool:
        if self.choices:
            return str(value) in {str(c) for c in self.choices}
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return False
        return not ((self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)))
                    or (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)))
                    or (self.nonzero and value == 0))

    def __str__(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.lo is not None and self.hi is not None:
            text = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            text = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            text = f"{'<' if self.hi_open else '<='} {self.hi:g}"
        else:
            text = "a number"
        text += " and not 0" if self.nonzero else ""
        return text + (f" ({self.note})" if self.note else "")


POSITIVE, NON_NEGATIVE, AT_LEAST_ONE = Rule(lo=0, lo_open=True), Rule(lo=0), Rule(lo=1)
# The range of every key of the attack schema (schema.AttackConf) that takes a number or a choice, as ART 1.20's
# _check_params and this package's attack classes accept it (the booleans are typed by the schema). A new key in
# the schema gets its rule here (tests/test_cli.py checks that every key has one).
PARAM_RULES: dict[str, Rule] = {
    "n_samples": Rule(lo=1, note="segments to attack; null = the whole test split"),
    "sample_seed": NON_NEGATIVE, "seed": NON_NEGATIVE, "batch_size": AT_LEAST_ONE,
    "sample_strata": Rule(choices=("gender", "speaker"), note="n_samples stratified by gender (x emotion) or by "
                          "gender, speaker (x emotion): every test speaker represented"),
    "norm": Rule(choices=("inf", "1", "2")),
    "eps": NON_NEGATIVE, "eps_step": POSITIVE, "max_iter": NON_NEGATIVE, "num_random_init": NON_NEGATIVE,
    "epsilon": NON_NEGATIVE, "nb_grads": AT_LEAST_ONE,
    "theta": Rule(nonzero=True, note="the change per selected cell"), "gamma": Rule(lo=0, hi=1, lo_open=True),
    "confidence": NON_NEGATIVE, "learning_rate": POSITIVE, "binary_search_steps": NON_NEGATIVE,
    "initial_const": NON_NEGATIVE, "max_halving": AT_LEAST_ONE, "max_doubling": AT_LEAST_ONE,
    "largest_const": NON_NEGATIVE, "decrease_factor": Rule(lo=0, hi=1, lo_open=True, hi_open=True),
    "const_factor": Rule(lo=1, lo_open=True, note="the constant grows by this factor"),
    "th": AT_LEAST_ONE, "es": Rule(choices=(0, 1), note="0 = CMA-ES, 1 = differential evolution"),
    "delta": POSITIVE, "step_adapt": Rule(lo=0, hi=1, lo_open=True, hi_open=True), "num_trial": NON_NEGATIVE,
    "sample_size": AT_LEAST_ONE, "init_size": AT_LEAST_ONE,
    "cells": Rule(lo=1, note="sparse noise: cells changed per segment (Pixel's reference)"),
    "source": Rule(choices=("fgsm", "bim", "pgd"), note="the white-box attack a transfer attack crafts with"),
    "p_init": Rule(lo=0, hi=1, lo_open=True, hi_open=True, note="share of the input the first square covers"),
    "nb_restarts": AT_LEAST_ONE,
}
# Keys with no range: typed by the schema (booleans, names) or any number (an SNR in dB may be negative).
UNRANGED = {"_target_", "name", "verbose", "targeted", "minimal", "per_sample", "snr_db"}
# Where an attack accepts less than the rule above (by attack name, conf/attack/<name>.yaml).
ATTACK_RULES: dict[str, dict[str, Rule]] = {
    "deepfool": {"max_iter": AT_LEAST_ONE},
    "autoattack": {"eps": POSITIVE, "max_iter": AT_LEAST_ONE, "num_random_init": AT_LEAST_ONE},
    "boundary": {"epsilon": POSITIVE},
    "pixel": {"max_iter": AT_LEAST_ONE},
    "square": {"norm": Rule(choices=("inf",), note="ART's L2 Square needs square inputs; its L1 does nothing"),
               "eps": POSITIVE, "max_iter": AT_LEAST_ONE},
}


def check_params(cfg) -> None:
    """Every set parameter of an attack config within its range (``PARAM_RULES``, ``ATTACK_RULES``), or one
    AttackConfigError naming the key, the value and the range. Imports neither TensorFlow nor ART."""
    conf = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    name = str(conf.get("name"))
    rules = {**PARAM_RULES, **ATTACK_RULES.get(name, {})}
    for key, value in conf.items():
        rule = rules.get(key)
        if value is None or rule is None:
            continue
        if not rule.ok(value):
            raise AttackConfigError(f"attack.{key}={value} (attack {name}): must be {rule}")


def _estimator_param(cls) -> str:
    params = list(inspect.signature(cls.__init__).parameters)
    return params[1]                      # "estimator" or "classifier", after self


def attack_kwargs(cfg, unused: list[str] | None = None) -> tuple[type, dict[str, Any]]:
    """The ART class and the keyword arguments for it.

    A key that is set but that this class does not take (``max_iter`` for FGSM in a sweep
    ``attack=fgsm,bim attack.max_iter=10``) is dropped with a warning and appended to ``unused``.
    """
    conf = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    try:
        cls = get_class(conf["_target_"])
    except Exception as exc:  # noqa: BLE001
        raise AttackConfigError(f"attack {conf.get('name')!r}: cannot import {conf.get('_target_')!r}: {exc}") from exc
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs = {}
    for key, value in conf.items():
        if key in PLATFORM_KEYS or value is None:
            continue
        if key not in accepted:
            if key not in INFRA_KEYS:
                log.warning("attack %r (%s) does not take %r (set to %r); ignored. It takes: %s", conf["name"],
                            cls.__name__, key, value, ", ".join(sorted(accepted - {_estimator_param(cls)})))
                if unused is not None:
                    unused.append(key)
            continue
        kwargs[key] = value
    if kwargs.get("norm") in ("1", "2"):
        kwargs["norm"] = int(kwargs["norm"])
    return cls, kwargs


def build_attack(cfg, classifier, unused: list[str] | None = None):
    cls, kwargs = attack_kwargs(cfg, unused)
    try:
        return instantiate({"_target_": f"{cls.__module__}.{cls.__name__}", **kwargs},
                           **{_estimator_param(cls): classifier})
    except Exception as exc:  # noqa: BLE001 - Hydra wraps ART's ValueError in InstantiationException
        cause = exc.__cause__ or exc
        raise AttackConfigError(f"attack {cfg.name!r} ({cls.__name__}) rejected its parameters: {cause}") from exc


def validate(cfg) -> list[str]:
    """Fail fast, before data or model: build the attack against a tiny dummy classifier.

    Returns the set keys this attack does not take (ignored, warned about)."""
    import keras

    from ..estimator import make_classifier
    # image-shaped input: PixelAttack reads rows / columns / channels from input_shape
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    unused: list[str] = []
    build_attack(cfg, make_classifier(model, 2, (0.0, 1.0), kind="stock"), unused)
    return unused


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws over groups of sizes ``counts``, proportional (largest remainder, ties to the first
    group), with at least one per group whenever ``n`` reaches the number of groups."""
    counts = np.asarray(counts, int)
    floor = int(n >= len(counts))
    share = (counts - floor) / max((counts - floor).sum(), 1) * (n - floor * len(counts))
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take), kind="stable")[: n - floor * len(counts) - take.sum()]:
        take[i] += 1
    return take + floor


def select_samples(genders: np.ndarray, n: int | None, seed: int, emotions: np.ndarray | None = None,
                   speakers: np.ndarray | None = None) -> np.ndarray:
    """Indices of at most ``n`` samples, stratified by gender, then (with ``speakers``: ``attack.sample_strata=
    speaker``) by speaker within each gender, then by emotion; deterministic for a ``seed``
    (``attack.sample_seed``, not the training seed, so every attack and every trained model of a split sees the
    same segments).

    Proportional allocation (largest remainder) at every level that keeps at least one sample per group
    (gender; speaker; emotion) once the level's share reaches the number of its groups. Without ``speakers`` the
    draws are exactly those of the gender x emotion version (the same rng calls in the same order)."""
    genders = np.asarray(genders).astype(str)
    idx = np.arange(len(genders))
    if n is None or n >= len(idx):
        return idx
    if n <= 0:
        raise AttackConfigError(f"attack.n_samples={n}: must be >= 1 (segments to attack; null = the whole test split)")
    emotions = np.full(len(idx), "", dtype=object) if emotions is None else np.asarray(emotions).astype(str)
    levels = [genders] + ([np.asarray(speakers).astype(str)] if speakers is not None else []) + [emotions]
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []

    def pick(members: np.ndarray, k: int, depth: int) -> None:
        if depth == len(levels):
            chosen.append(rng.choice(members, k, replace=False))
            return
        values, counts = np.unique(levels[depth][members], return_counts=True)
        for v, k_v in zip(values, _allocate(counts, k)):
            if k_v:
                pick(members[levels[depth][members] == v], int(k_v), depth + 1)

    pick(idx, int(n), 0)
    return np.sort(np.concatenate(chosen))


# Attacks that read ``clip_values`` as two floats: ART's JSMA (it flattens x and indexes single cells) and
# ser_attacks.attacks.pixel (a searched value maps to [lo, hi] with float()). They get the normalizer's one global
# range instead of its per-band box (tag clip_box=global). Remove a class here once it takes arrays.
SCALAR_CLIP_ONLY = ("art.attacks.evasion.saliency_map.SaliencyMapMethod",
                    "ser_attacks.attacks.pixel.SpectrogramPixelAttack")


def clip_values_for(attack_cfg, normalizer) -> tuple[object, str]:
    """(``clip_values`` for the estimator, what they are: ``per_band`` | ``global`` | ``none``)."""
    box = normalizer.clip_values
    if box is None:
        return None, "none"
    if np.ndim(box[0]) == 0:
        return box, "global"
    cls, _ = attack_kwargs(attack_cfg)
    if any(f"{c.__module__}.{c.__name__}" in SCALAR_CLIP_ONLY for c in cls.__mro__):
        return normalizer.value_range, "global"
    return box, "per_band"


def attack_labels(attack, y: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, str]:
    """The ``y`` to give ``attack.generate`` for true labels ``y`` (indices), and what it means.

    Untargeted attacks get the true labels (they move away from them). Attacks that read ``y`` as
    TARGET classes (a targeted attack, and JSMA, which is always targeted in ART) get a random target
    different from the true label per sample (seeded): passing the true labels there would ask the
    attack to reach the class the sample already has, a silent no-op.
    """
    from art.attacks.evasion import SaliencyMapMethod
    y = np.asarray(y)
    if isinstance(attack, SaliencyMapMethod) or getattr(attack, "targeted", False):
        rng = np.random.default_rng(seed)
        shift = rng.integers(1, n_classes, size=len(y))
        return np.eye(n_classes, dtype=np.float32)[(y + shift) % n_classes], "random_target"
    return np.eye(n_classes, dtype=np.float32)[y], "true"
