"""Checks that need no data: every configuration error is found before any data, model or run is touched.

``check_config(cfg)`` checks one composed job config: the attack's parameter ranges (``attacks.check_params``),
the input, the training options, the split (fold range from the corpus's file names, never from features),
the dataset (corpus, emotion names, the root and its layout), features, normalization, estimator and the
top-level keys. It imports neither TensorFlow nor MLflow and reads no audio: the command line
(``ser_attacks.cli``) runs it on every job of a sweep before the sweep starts, and each job runs it again first
(``app.run``). Each failure is one ``ConfigError`` line; the command line exits with ``EXIT_CONFIG``.
"""
from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

from omegaconf import OmegaConf

from .lifecycle import EXIT_CONFIG  # noqa: F401 - every configuration error exits with it (lifecycle: exit codes)
from .paths import CONF_DIR

ESTIMATOR_KINDS = ("compiled", "stock")      # = estimator.KINDS (estimator.py imports ART; tests compare them)
MODES = ("attack", "train", "tune")          # app._run: attack, else train, else tune


class ConfigError(ValueError):
    """A configuration the platform cannot run: one line, found before any data, model or run."""


def suggest(word: str, choices) -> str:
    """``"; did you mean X?"`` for the closest of ``choices`` (difflib), else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _ranged(key: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False, what: str = "") -> None:
    from .attacks import Rule
    rule = Rule(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, note=what)
    if value is not None and not rule.ok(value):
        raise ConfigError(f"{key}={value}: must be {rule}")


# -------------------------------------------------------------------------------------------- attack, input
def check_attack(cfg) -> None:
    if cfg.get("attack") is None:
        return
    from .attacks import AttackConfigError, check_params
    from .inputs import InputConfigError
    from .inputs import check as check_input
    try:
        check_params(cfg.attack)
        check_input(cfg)
    except (AttackConfigError, InputConfigError) as exc:
        raise ConfigError(str(exc)) from None
    inp = cfg.get("input")
    if inp is not None:
        for key in ("refine", "griffin_lim_iter", "n_audio_per_gender"):
            _ranged(f"input.{key}", inp.get(key), lo=0)
        _ranged("input.step_ratio", inp.get("step_ratio"), lo=0, lo_open=True)


# ------------------------------------------------------------------------------------------- train, model
def check_train(t) -> None:
    from .train import TrainConfigError
    from .train import check_train as check_monitor
    try:
        check_monitor(t)
    except TrainConfigError as exc:
        raise ConfigError(str(exc)) from None
    _ranged("train.max_epochs", t.get("max_epochs"), lo=1)
    _ranged("train.batch_size", t.get("batch_size"), lo=1)
    _ranged("train.lr", t.get("lr"), lo=0, lo_open=True)
    _ranged("train.early_stopping_patience", t.get("early_stopping_patience"), lo=0)
    _ranged("train.reduce_lr_patience", t.get("reduce_lr_patience"), lo=0)
    _ranged("train.reduce_lr_factor", t.get("reduce_lr_factor"), lo=0, hi=1, lo_open=True, hi_open=True)


def check_stages(cfg) -> None:
    """features, normalization, estimator and the top-level keys."""
    fe = cfg.get("features")
    if fe is not None:
        for key in ("sample_rate", "segment_seconds", "n_mels", "n_fft", "hop_length"):
            _ranged(f"features.{key}", fe.get(key), lo=0, lo_open=True)
        _ranged("features.min_tail_seconds", fe.get("min_tail_seconds"), lo=0)
        if fe.get("n_jobs") == 0:
            raise ConfigError("features.n_jobs=0: must be >= 1 (processes), or -1 (every core)")
    norm = cfg.get("normalization")
    if norm is not None and norm.get("method") is not None:
        from .normalization import ALIASES, METHODS
        if str(norm.method) not in METHODS + tuple(ALIASES):
            raise ConfigError(f"normalization.method={norm.method}: must be one of {', '.join(METHODS)}"
                              + suggest(norm.method, METHODS))
    est = cfg.get("estimator")
    if est is not None:
        if est.get("kind") is not None and str(est.kind) not in ESTIMATOR_KINDS:
            raise ConfigError(f"estimator.kind={est.kind}: must be one of {', '.join(ESTIMATOR_KINDS)}"
                              + suggest(est.kind, ESTIMATOR_KINDS))
        _ranged("estimator.batch_size", est.get("batch_size"), lo=1)
    mode = cfg.get("mode", "attack")
    if str(mode) not in MODES:
        raise ConfigError(f"mode={mode}: must be one of {', '.join(MODES)}" + suggest(mode, MODES))
    _ranged("seed", cfg.get("seed"), lo=0)
    _ranged("n_plot_per_gender", cfg.get("n_plot_per_gender"), lo=0)
    if "report" in cfg:
        from .tracking import report_enabled
        try:
            report_enabled(cfg.report)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


# ------------------------------------------------------------------------------------- training defense
def check_training_defense(cfg) -> None:
    """A training-side defense (adversarial training) is instantiated: its parameters checked."""
    from .defenses.adversarial_training import DefenseConfigError, from_config
    try:
        from_config(cfg)
    except DefenseConfigError as exc:
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------------------------------- dataset, split
def _env_var(ds) -> str | None:
    """The environment variable that sets the dataset's root (``${oc.env:EMODB_ROOT,...}`` in its config)."""
    raw = OmegaConf.to_container(ds, resolve=False).get("root")
    m = re.search(r"oc\.env:(\w+)", str(raw))
    if m is None and ds.get("name"):
        path = Path(CONF_DIR) / "dataset" / f"{ds.name}.yaml"
        m = re.search(r"oc\.env:(\w+)", path.read_text()) if path.is_file() else None
    return m.group(1) if m else None


@functools.lru_cache(maxsize=64)
def _real_files(corpus: str, root: str) -> tuple[tuple[str, str, str], ...]:
    """(speaker, gender, emotion) of every recognisable file name under ``root`` (no audio is read)."""
    from .data.corpora import SPECS
    spec = SPECS[corpus]
    rows = []
    for path in Path(root).glob(spec.pattern):
        m = spec.regex.match(path.name)
        if m is not None:
            p = spec.parse(m)
            rows.append((p["speaker"], p["gender"], p["emotion"]))
    return tuple(rows)


def _synthetic_files(corpus: str, n_speakers, emotions: list[str]) -> tuple:
    """The embedded corpus's speakers as its generator plans them (half female, half male; data.synthetic),
    without importing the generator (scipy) or writing anything."""
    if isinstance(n_speakers, bool) or not isinstance(n_speakers, int) or n_speakers < 2 or n_speakers % 2:
        raise ConfigError(f"dataset.generate.n_speakers={n_speakers}: must be an even number >= 2 "
                          "(half female, half male)")
    return tuple((f"{corpus}_{i:02d}", "male" if i % 2 else "female", e)
                 for i in range(n_speakers) for e in emotions)


def corpus_files(ds) -> tuple[tuple[str, str, str], ...]:
    """The corpus table's (speaker, gender, emotion) rows from file names alone, for the dataset node ``ds``:
    the embedded corpus from its plan (nothing generated), a real corpus from its root's file names."""
    from .data.corpora import SPECS, _all_emotions
    corpus = str(ds.corpus)
    if corpus not in SPECS:
        raise ConfigError(f"dataset.corpus={corpus}: must be one of {', '.join(SPECS)}" + suggest(corpus, SPECS))
    known = _all_emotions(corpus)
    emotions = list(ds.emotions) if ds.get("emotions") else None
    for e in emotions or ():
        if e not in known:
            raise ConfigError(f"dataset.emotions: {e!r} is not an emotion of {corpus}{suggest(e, known)} "
                              f"({corpus} has: {', '.join(sorted(known))})")
    gen = ds.get("generate")
    if gen:
        rows = _synthetic_files(corpus, gen.get("n_speakers"), emotions or sorted(known))
    else:
        spec = SPECS[corpus]
        root = Path(str(ds.root)).expanduser()
        env = _env_var(ds)
        how = f"dataset.root=/path/to/{corpus}" + (f" or the environment variable {env}" if env else "")
        where = str(root) + ("" if root.is_absolute() else f" (= {root.resolve()})")
        if not root.is_dir():
            raise ConfigError(f"Dataset root {where} does not exist: give the {ds.get('name')} corpus with {how}. "
                              f"Expected the {corpus} layout: {spec.layout}")
        rows = _real_files(corpus, str(root.resolve()))
        if not rows:
            raise ConfigError(f"No {corpus} recordings found under {where}: give the corpus with {how}. "
                              f"Expected layout: {spec.layout}")
    if emotions is not None:
        rows = tuple(r for r in rows if r[2] in emotions)
        if not rows:
            raise ConfigError(f"dataset.emotions={emotions}: no {corpus} recording under {ds.root} has them")
    return rows


def check_split(cfg) -> None:
    sp = cfg.get("split")
    if sp is None:
        return
    from . import split as splits
    mode = str(sp.get("mode", "recording"))
    if mode not in splits.MODES:
        raise ConfigError(f"split.mode={mode}: must be one of {', '.join(splits.MODES)}" + suggest(mode, splits.MODES))
    _ranged("split.seed", sp.get("seed"), lo=0)
    if mode != "speaker_cv":
        _ranged("split.val", sp.get("val"), lo=0, hi=1, lo_open=True, hi_open=True)
        _ranged("split.test", sp.get("test"), lo=0, hi=1, lo_open=True, hi_open=True)
        if sp.get("val") is not None and sp.get("test") is not None and not float(sp.val) + float(sp.test) < 1:
            raise ConfigError(f"split.val={sp.val} + split.test={sp.test}: must be < 1 (the rest is training)")
        return
    vu = sp.get("val_utterances")
    _ranged("split.val_utterances", vu, lo=0, hi=1, lo_open=True, hi_open=True,
            what="a share of the training speakers' utterances, or null for a validation fold")
    _ranged("split.n_folds", sp.get("n_folds"), lo=2 if vu is not None else splits.MIN_FOLDS)
    fold = sp.get("fold", 0)
    _ranged("split.fold", fold, lo=0)
    import pandas as pd
    rows = corpus_files(cfg.dataset)
    table = pd.DataFrame(list(rows), columns=["speaker", "gender", "emotion"]).assign(corpus=str(cfg.dataset.corpus))
    try:
        folds = splits.speaker_folds(table, sp.get("n_folds"), int(sp.get("seed", 0)),
                                     min_folds=splits.MIN_FOLDS if vu is None else 2)
    except splits.SplitError as exc:
        raise ConfigError(str(exc)) from None
    if not 0 <= int(fold) < len(folds):
        raise ConfigError(f"split.fold={fold} is out of range: {cfg.dataset.name} has {len(folds)} speaker folds "
                          f"(split.fold=0..{len(folds) - 1})")


def check_dataset(cfg) -> None:
    if cfg.get("dataset") is not None:
        corpus_files(cfg.dataset)


def check_defense(cfg) -> None:
    """The defense node's stage, name, ``_target_`` and attacker options (``defenses.check``; no TensorFlow)."""
    if cfg.get("defense") is None:
        return
    from .defenses import DefenseConfigError, check
    try:
        check(cfg.defense)
    except DefenseConfigError as exc:
        raise ConfigError(str(exc)) from None


def check_config(cfg) -> None:
    """Every check of a composed job config that needs no data (see the module docstring); ConfigError."""
    check_attack(cfg)
    check_defense(cfg)
    if cfg.get("train") is not None:
        check_train(cfg.train)
    check_stages(cfg)
    check_dataset(cfg)
    check_split(cfg)
    check_training_defense(cfg)
    from .normalization import NormalizationConfigError, check_units  # numpy only
    try:
        check_units(cfg)                   # per-speaker normalization with an input that cannot apply it
    except NormalizationConfigError as exc:
        raise ConfigError(str(exc)) from None
