"""Attack factory (config group ``attack``): ART classes straight from ``_target_``.

``attack_kwargs`` keeps the keys a config set (non-None) minus the platform's own keys, and checks
each against the target class's signature; ``validate`` builds the attack once on a throw-away
two-weight classifier so ART's own ``_check_params`` rejects bad values (negative eps, ...) before
any data is read or model trained.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
PLATFORM_KEYS = {"_target_", "name", "n_samples", "sample_seed", "snr_db"}
INFRA_KEYS = {"batch_size", "verbose"}     # passed only where the ART class takes them


class AttackConfigError(ValueError):
    """An attack config that ART would not accept."""


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

    from .estimator import make_classifier
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


def select_samples(genders: np.ndarray, n: int | None, seed: int, emotions: np.ndarray | None = None) -> np.ndarray:
    """Indices of at most ``n`` samples, stratified by gender and, within each gender, by emotion;
    deterministic for a ``seed`` (``attack.sample_seed``, not the training seed, so every attack and every
    trained model of a split sees the same segments).

    Proportional allocation (largest remainder) that keeps at least one sample per gender once ``n`` >=
    the number of genders, and at least one per emotion of a gender once that gender's share allows."""
    genders = np.asarray(genders).astype(str)
    idx = np.arange(len(genders))
    if n is None or n >= len(idx):
        return idx
    if n <= 0:
        raise AttackConfigError(f"attack.n_samples must be positive, got {n}")
    emotions = np.full(len(idx), "", dtype=object) if emotions is None else np.asarray(emotions).astype(str)
    rng = np.random.default_rng(seed)
    chosen = []
    g_values, g_counts = np.unique(genders, return_counts=True)
    for g, k_g in zip(g_values, _allocate(g_counts, n)):
        in_g = genders == g
        e_values, e_counts = np.unique(emotions[in_g], return_counts=True)
        for e, k in zip(e_values, _allocate(e_counts, int(k_g))):
            if k:
                chosen.append(rng.choice(idx[in_g & (emotions == e)], int(k), replace=False))
    return np.sort(np.concatenate(chosen))


# Attacks that read ``clip_values`` as two floats: ART's JSMA (it flattens x and indexes single cells) and
# ser_attacks.pixel (a searched value maps to [lo, hi] with float()). They get the normalizer's one global
# range instead of its per-band box (tag clip_box=global). Remove a class here once it takes arrays.
SCALAR_CLIP_ONLY = ("art.attacks.evasion.saliency_map.SaliencyMapMethod", "ser_attacks.pixel.SpectrogramPixelAttack")


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
