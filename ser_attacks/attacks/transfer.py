"""Transfer attack (``conf/attack/transfer.yaml``): adversarial examples crafted with a white-box attack on the
UNDEFENDED model (the surrogate), then classified by the defended model as deployed (issue 28; Athalye et al. 2018,
Tramèr et al. 2020: a defense that only hides its gradients falls to examples that transfer from the model it
defends).

``source`` names the white-box attack (``fgsm`` | ``bim`` | ``pgd``: ART's ``FastGradientMethod``,
``BasicIterativeMethod``, ``ProjectedGradientDescent``); ``norm``, ``eps``, ``eps_step``, ``max_iter`` and
``num_random_init`` go to it where it takes them (σ units, as every attack's budget).

**The surrogate** is the model of the same data, split and seed without the defense:

* an inference-side defense (``stage: inference``): the attacked classifier's own trained model, rebuilt by the one
  builder (``estimator.make_classifier``) without the defense layers (same box, estimator kind, front end for
  ``input=waveform``);
* a training-side defense (adversarial training): another cached model, the one of the same config with
  ``defense=none`` (``surrogate_config``; ``attach_surrogate`` loads it, or TRAINS it through the normal training
  path, once, cached, if it is not cached yet) — set as ``estimator.ser_surrogate_model``;
* ``defense=none``: the attacked classifier itself, so the transfer attack IS the white-box attack (same numbers
  as ``attack=<source>`` with the same parameters; ``tests/test_transfer.py``).

The app (``app.attack_job``) reports clean and adversarial predictions with ``clf.deployed`` (the defense as
deployed) as for every attack; the run is tagged ``attack_transfer=true`` (``identity.run_tags``: the checklist's
flag (b), transfer beating white-box) and ``transfer_source_model`` (the surrogate's ``model_key``).
"""
from __future__ import annotations

import inspect
import logging

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator

log = logging.getLogger(__name__)
SOURCES = {"fgsm": "art.attacks.evasion.FastGradientMethod",
           "bim": "art.attacks.evasion.BasicIterativeMethod",
           "pgd": "art.attacks.evasion.ProjectedGradientDescent"}
NONE_DEFENSE = {"name": "none", "stage": "none", "eot": 1, "bpda": True}


def is_transfer(attack_cfg) -> bool:
    """An attack node that runs this module's attack (by ``_target_``, whatever its ``name``)."""
    return str(attack_cfg.get("_target_", "")).startswith(f"{__name__}.")


class TransferAttack(EvasionAttack):
    """``source`` crafted on the undefended surrogate of ``estimator`` (the defended, attacked classifier)."""
    attack_params = EvasionAttack.attack_params + ["source", "norm", "eps", "eps_step", "max_iter",
                                                   "num_random_init", "batch_size", "verbose"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(self, estimator, source: str = "pgd", norm="inf", eps: float = 0.25, eps_step: float = 0.025,
                 max_iter: int = 100, num_random_init: int = 1, batch_size: int = 32, verbose: bool = True):
        super().__init__(estimator=estimator)
        self.source, self.norm, self.eps, self.eps_step = source, norm, eps, eps_step
        self.max_iter, self.num_random_init, self.batch_size, self.verbose = max_iter, num_random_init, batch_size, \
            verbose
        self._check_params()
        from hydra.utils import get_class
        cls = get_class(SOURCES[source])
        takes = set(inspect.signature(cls.__init__).parameters)
        given = dict(norm=norm, eps=eps, eps_step=eps_step, max_iter=max_iter, num_random_init=num_random_init,
                     batch_size=batch_size, verbose=verbose)
        self.surrogate = surrogate_classifier(estimator)
        self.source_attack = cls(self.surrogate, **{k: v for k, v in given.items() if k in takes and v is not None})

    def _check_params(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"`source` must be one of {', '.join(SOURCES)}, got {self.source!r}")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """The source attack's examples on the surrogate (``y`` None: the surrogate's own predictions, all a
        transfer attacker can know without querying the defense)."""
        return self.source_attack.generate(x=x, y=y, **kwargs)


def surrogate_classifier(estimator):
    """The undefended classifier ``estimator`` (built by ``estimator.make_classifier``) is attacked through: the
    estimator itself when it has no defense layers and no other surrogate model, else the surrogate model
    (``ser_surrogate_model``, a training-side defense's undefended twin; default the estimator's own trained model)
    rebuilt without the defense. Built once per estimator (cached on it)."""
    args = getattr(estimator, "ser_build_args", None)
    if args is None:
        raise ValueError("the transfer attack needs a classifier built by ser_attacks.estimator.make_classifier")
    model = getattr(estimator, "ser_surrogate_model", None)
    if model is None and not args["defense"].layers:
        return estimator                                # nothing to remove: the white-box attack itself
    cache = estimator.__dict__.setdefault("_ser_surrogate", {})
    if id(model) not in cache:
        from ..estimator import make_classifier
        cache[id(model)] = make_classifier(args["model"] if model is None else model, args["n_classes"],
                                           args["clip_values"], args["kind"], args["batch_size"],
                                           fast=model is not None, defense=None, frontend=args["frontend"])
    return cache[id(model)]


def surrogate_config(cfg):
    """``cfg`` with ``defense=none``: its ``model_key`` is the undefended model of the same data, split and seed."""
    from omegaconf import OmegaConf, open_dict
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(out):
        out.defense = dict(NONE_DEFENSE)
    return out


def attach_surrogate(cfg, data, tm, clf, tracking=None, run_id: str | None = None, parent: str | None = None) -> None:
    """For a transfer attack job: set the surrogate on the attacked classifier ``clf`` and tag the run with its
    ``model_key`` (``transfer_source_model``). A training-side defense's surrogate is the cached ``defense=none``
    model (trained now, once, if not cached); otherwise the job's own trained model is the surrogate."""
    from ..identity import training_defense
    if not is_transfer(cfg.attack):
        return
    key = tm.key
    if training_defense(cfg) is not None:
        from ..train import get_or_train
        log.info("Transfer attack: the surrogate is the undefended model of this config (defense=none)")
        sur = get_or_train(surrogate_config(cfg), data, tracking, parent)
        if not _same_normalizer(sur.normalizer, tm.normalizer):
            raise ValueError("transfer: the undefended surrogate's normalizer differs from the defended model's; "
                             "the same inputs would mean different spectrograms to the two models")
        clf.ser_surrogate_model, key = sur.model, sur.key
    if tracking is not None and run_id is not None:
        tracking.set_tag(run_id, "transfer_source_model", key)


def _same_normalizer(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a.name == b.name and set(a.state) == set(b.state) and \
        all(np.array_equal(np.asarray(a.state[k]), np.asarray(b.state[k])) for k in a.state)
