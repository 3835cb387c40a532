"""Defenses (config group ``defense``, ``conf/defense/<name>.yaml`` ↔ ``ser_attacks/defenses/<module>.py``).

Every node has ``name`` (also the MLflow tag ``defense``), ``stage`` (``none`` | ``inference`` | ``training``),
``_target_`` (absent for ``none``) and its parameters; the attacker's options ``eot`` (k draws of a randomized
defense averaged, 1 = off) and ``bpda`` (straight-through gradients for a non-differentiable transform) are
applied by the ONE builder of the attacked model, ``ser_attacks.estimator.make_classifier``.

* **inference**: a ``keras.layers.Layer`` (duck-typed) with class attributes ``domain`` (``spectrogram``: in front
  of the model; ``waveform``: in front of the front end, ``input=waveform`` only), ``randomized`` and
  ``differentiable``, a seeded ``call(x, training=False)`` that keeps the input's shape, and ``_check_params()``
  run by ``__init__``. ``build_layers`` instantiates them (a bad parameter: one ``DefenseConfigError`` line,
  before any data is read).
* **training**: applied by ``ser_attacks.train`` (adversarial training); part of the model's identity
  (``ser_attacks.identity.model_key``); the builder ignores it.

MLflow: every attack and training run is tagged ``defense``, ``defense_stage``, ``defense_randomized``,
``defense_differentiable``, ``attack_eot``, ``attack_bpda`` (``run_tags``; a training run names the defense that
shaped its model: the training-side one, else ``none``); the node is logged as ``defense.*`` params (left out
at ``defense=none``, like every option added later at its old-behaviour value: ``identity.NEUTRAL``).
See docs/defenses.md. Light at import (no TensorFlow): the CLI's checks import this package.
"""
from __future__ import annotations

from typing import Any

STAGES = ("none", "inference", "training")
DOMAINS = ("spectrogram", "waveform")
# keys of a node that are not the defense's own constructor parameters
NODE_KEYS = ("_target_", "name", "stage", "eot", "bpda")


class DefenseConfigError(ValueError):
    """A defense config that cannot run: one line, before any data is read or model trained."""


def _plain(node) -> dict[str, Any]:
    if node is None:
        return {"name": "none", "stage": "none"}
    if isinstance(node, dict):
        return dict(node)
    from omegaconf import OmegaConf
    return OmegaConf.to_container(node, resolve=True)


def stage(node) -> str:
    return str(_plain(node).get("stage", "none"))


def options(node) -> tuple[int, bool]:
    """The attacker's options (``eot``, ``bpda``) of a defense node."""
    d = _plain(node)
    return int(d.get("eot", 1) or 1), bool(d.get("bpda", True))


def check(node) -> None:
    """The checks that need no TensorFlow: stage, name, ``_target_`` and the attacker's options."""
    d = _plain(node)
    if "name" not in d or "stage" not in d:
        raise DefenseConfigError(f"not a defense node (it needs name and stage): {sorted(d)}")
    name, st = d.get("name"), str(d.get("stage", "none"))
    if st not in STAGES:
        raise DefenseConfigError(f"defense.stage={st}: must be one of {', '.join(STAGES)}")
    if st == "none" and d.get("_target_"):
        raise DefenseConfigError(f"defense {name}: stage none takes no _target_ (got {d['_target_']})")
    if st != "none" and not d.get("_target_"):
        raise DefenseConfigError(f"defense {name}: stage {st} needs a _target_ (ser_attacks.defenses.<module>.<Class>)")
    eot = d.get("eot", 1)
    if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
        raise DefenseConfigError(f"defense.eot={eot}: must be an integer >= 1 (draws averaged; 1 = off)")
    if not isinstance(d.get("bpda", True), bool):
        raise DefenseConfigError(f"defense.bpda={d.get('bpda')}: must be true or false")


def defense_class(node):
    """The class a node's ``_target_`` names (imports its module), or None for ``stage: none``."""
    d = _plain(node)
    if not d.get("_target_"):
        return None
    from hydra.utils import get_class
    try:
        return get_class(str(d["_target_"]))
    except Exception as exc:  # noqa: BLE001
        raise DefenseConfigError(f"defense {d.get('name')!r}: cannot import {d['_target_']!r}: {exc}") from None


def build_layers(node) -> list:
    """The inference-side defense layer(s) of a node ([] for none or a training-side defense), built with
    their checks (``_check_params``): DefenseConfigError with the defense's own message."""
    check(node)
    d = _plain(node)
    if str(d.get("stage", "none")) != "inference":
        return []
    cls = defense_class(d)
    domain = getattr(cls, "domain", None)
    if domain not in DOMAINS:
        raise DefenseConfigError(f"defense {d.get('name')!r} ({cls.__name__}): class attribute domain must be one "
                                 f"of {DOMAINS}, got {domain!r}")
    for attr in ("randomized", "differentiable"):
        if not isinstance(getattr(cls, attr, None), bool):
            raise DefenseConfigError(f"defense {d.get('name')!r} ({cls.__name__}): needs a boolean class attribute "
                                     f"{attr}")
    try:
        layer = cls(**{k: v for k, v in d.items() if k not in NODE_KEYS})
    except (TypeError, ValueError) as exc:
        raise DefenseConfigError(f"defense {d.get('name')!r} ({cls.__name__}) rejected its parameters: {exc}") \
            from None
    return [layer]


def check_input(node, input_name: str) -> None:
    """A waveform-domain defense needs ``input=waveform`` (a spectrogram attack has no audio to transform)."""
    d = _plain(node)
    if str(d.get("stage", "none")) != "inference":
        return
    cls = defense_class(d)
    if getattr(cls, "domain", None) == "waveform" and input_name != "waveform":
        raise DefenseConfigError(f"defense {d.get('name')!r} transforms the waveform: it needs input=waveform "
                                 f"(got input={input_name})")


def tags(node) -> dict[str, str]:
    """The run tags that say which defense a run faced and how it was attacked (the contract's names):
    ``attack_eot`` the draws the attacked model averaged (1 for a defense that is not randomized, whatever
    ``eot`` says), ``attack_bpda`` whether a straight-through gradient replaced a non-differentiable one."""
    d = _plain(node)
    st = str(d.get("stage", "none"))
    cls = defense_class(d) if st == "inference" else None
    eot, bpda = options(d)
    differentiable = True if cls is None else bool(getattr(cls, "differentiable", True))
    randomized = bool(getattr(cls, "randomized", False))
    eot = eot if randomized else 1              # what the builder does: no draws to average without randomness
    return {"defense": str(d.get("name", "none")), "defense_stage": st,
            "defense_randomized": str(randomized).lower(),
            "defense_differentiable": str(differentiable).lower(),
            "attack_eot": str(eot), "attack_bpda": str(bpda and not differentiable).lower()}


def check_job(node, input_name: str) -> None:
    """At a job's start, before any data: the node's checks, its layers built (their ``_check_params``) and
    the domain against the input."""
    build_layers(node)
    check_input(node, input_name)
