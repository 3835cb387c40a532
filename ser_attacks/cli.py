"""The command line before Hydra runs anything: ``--help``, and the checks of every job of a run or sweep.

``preflight(argv)`` composes the config of every job the command would launch (the sweeper's own job list:
Hydra's basic sweeper, or the list sweeper of ``experiment=paper_grid`` / ``study``) and runs
``checks.check_config`` on each, before Hydra creates an output folder, a tracking database or a run. A bad
override (``attack=fgsmm``, ``attack.epz=1``, ``attack.eps=big``) or a bad value (``attack.eps=-1``,
``split.fold=99``, a missing corpus root) is one ``error: ...`` line on stderr and exit code
``checks.EXIT_CONFIG`` (2); neither TensorFlow, ART nor MLflow is imported. Jobs whose group choices are equal
are composed once and their value overrides applied the way Hydra applies them: the study's 160 jobs are 10
compositions (one per attack), not 160.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

from .checks import EXIT_CONFIG, ConfigError, check_config, suggest
from .paths import CONF_DIR

# Hydra's flags that show something instead of running: handed to Hydra unchecked.
SHOW_FLAGS = ("hydra_help", "cfg", "info", "shell_completion", "experimental_rerun", "config_path", "config_dir")
HIDDEN = ("hparams", "tune")              # groups the help lists after the pipeline's
EXAMPLES = """\
  python -m ser_attacks attack=deepfool attack.n_samples=50          one job: one MLflow run
  python -m ser_attacks -m attack=fgsm,bim attack.eps=0.25,0.5       a sweep: 4 jobs under one parent run
  make study DATASET=emodb   (= python -m ser_attacks -m experiment=study dataset=emodb +hparams=emodb_paper
                              split.fold=0,1,2,3,4)                  the study: all folds x the attack grid"""


def _options(loader, group: str) -> list[str]:
    from hydra.core.object_type import ObjectType
    return [o for o in loader.get_group_options(group, results_filter=ObjectType.CONFIG)
            if not o.endswith("_schema")]


def _defaults() -> dict[str, str]:
    """The default option of each group (conf/config.yaml's defaults list)."""
    from omegaconf import OmegaConf
    out = {}
    for item in OmegaConf.load(Path(CONF_DIR) / "config.yaml").defaults:
        if isinstance(item, str):
            continue
        for k, v in item.items():
            out[str(k).replace("override ", "")] = str(v)
    return out


def help_text() -> str:
    """``python -m ser_attacks --help``: the groups and their choices, three examples, -m."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        defaults = _defaults()
        groups = [g for g in defaults if not g.startswith("hydra/") and g in loader.list_groups("")]
        groups += sorted(g for g in loader.list_groups("") if g not in groups and g != "hydra")
        groups += ["hydra/launcher", "hydra/sweeper"]
        rows = []
        for g in groups:
            default = defaults.get(g)
            line = f"  {g:<15}"
            for o in _options(loader, g):
                word = f" {o}*" if o == default else f" {o}"
                if len(line) + len(word) > 100:
                    rows.append(line)
                    line = " " * 17
                line += word
            rows.append(line)
    return "\n".join([
        "python -m ser_attacks: adversarial attacks on speech emotion recognition models, tracked in MLflow.",
        "",
        "Usage: python -m ser_attacks [-m] [group=option ...] [key=value ...]",
        "",
        "Config groups (group=option; * = default; conf/<group>/<option>.yaml):",
        *rows,
        "",
        "Examples:",
        EXAMPLES,
        "",
        "-m (--multirun) makes a sweep: every comma list (attack.eps=0.25,0.5) gives one job per value, all under",
        "one MLflow parent run; without -m a comma list is an error. Any key can be set (attack.eps=0.5,",
        "train.max_epochs=20): --cfg job prints the composed config, --hydra-help Hydra's own flags.",
        "A configuration error is one line and exit code 2, before anything runs (docs/configuration.md).",
        "More: make help, README.md, docs/configuration.md.",
    ])


# ------------------------------------------------------------------------------------------ Hydra's errors
def _choices(opts) -> str:
    return ", ".join(o for o in opts if not str(o).endswith("_schema"))


def hydra_error_line(exc: BaseException) -> str:
    """One line for a composition error of Hydra (unknown option, unknown key, wrong type, bad syntax)."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, name = str(exc.missing_cfg_file).rpartition("/")
        opts = [o for o in exc.options if not o.endswith("_schema")]
        return f"{group}={name}: no such option in group '{group}'{suggest(name, opts)} Choices: {_choices(opts)}"
    cause = exc.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and getattr(cause, "full_key", None):
        parent = cause.parent_node
        keys = [str(k) for k in parent.keys() if k != "hydra"] if parent is not None else []
        where = cause.full_key.rpartition(".")[0]
        return (f"{cause.full_key}: no such key{' in ' + where if where else ''}{suggest(cause.key, keys)}"
                + (f" Keys: {', '.join(keys)}" if 0 < len(keys) <= 12 else "")
                + " (+key=value adds a new one)")
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        return f"{cause.full_key}: {str(cause).splitlines()[0]}"
    text = str(exc)
    if text.startswith("Ambiguous value for argument"):
        arg = text.split("'", 2)[1] if "'" in text else ""
        return (f"{arg}: a comma list is a sweep: add -m (python -m ser_attacks -m ...); for a list value write "
                "key=[a,b], for a string with a comma quote it")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("See https", "\t"))]
    if isinstance(exc, OverrideParseException):
        return " ".join(lines[:2])
    return " ".join(lines[:2]) if lines else exc.__class__.__name__


# -------------------------------------------------------------------------------------------- the jobs
def _job_overrides(loader, master, arguments: list[str]) -> list[list[str]] | None:
    """Every job's overrides, as the configured sweeper makes them (None: a sweeper this does not know)."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import HydraContext
    from hydra.utils import get_class, instantiate
    cls = get_class(str(master.hydra.sweeper._target_))
    if not issubclass(cls, BasicSweeper):
        return None
    sweeper = instantiate(master.hydra.sweeper)
    sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=Callbacks())
    if hasattr(sweeper, "job_overrides"):              # the list sweeper (hydra_plugins/ser_attacks_list_sweeper)
        return sweeper.job_overrides(arguments)
    parser = OverridesParser.create(config_loader=loader)
    return [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(sweeper._parse_config()
                                                                                 + list(arguments)), None)
            for job in batch]


def job_configs(loader, master, jobs: list[list[str]]):
    """(overrides, composed config) of every job. Jobs with the same group overrides (attack=..., dataset=...)
    are composed once; their value overrides (attack.eps=...) are then applied as Hydra applies them."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict
    parser = OverridesParser.create(config_loader=loader)
    composed: dict[tuple[str, ...], object] = {}
    for job in jobs:
        parsed = parser.parse_overrides(job)
        groups = tuple(o.input_line for o in parsed if loader.repository.group_exists(o.key_or_group))
        values = [o for o in parsed if not loader.repository.group_exists(o.key_or_group)
                  and not o.key_or_group.startswith("hydra.")]
        if groups not in composed:
            base = loader.load_sweep_config(master, list(groups))
            with open_dict(base):
                del base["hydra"]              # the checks read the job's keys only; copying is 3 x faster
            composed[groups] = base
        cfg = copy.deepcopy(composed[groups])
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        yield job, cfg


def _check(cfg) -> None:
    """check_config, but a value that resolves only inside a running job (``${hydra:runtime.cwd}``) is left to
    the job's own check (app.run)."""
    from omegaconf.errors import OmegaConfBaseException
    try:
        check_config(cfg)
    except OmegaConfBaseException:
        pass


def _swept_group_hint(overrides: list[str], multirun: bool) -> str:
    """Where a sweep over a config group (``defense=fast_at,pgd_at``) is given a key of those options
    (``defense.eps=0.05``): Hydra applies that key to the sweep's common config, composed with the group's
    default, which lacks it; ``++defense.eps=0.05`` sets it in every job."""
    if not multirun:
        return ""
    pairs = [o.split("=", 1) for o in overrides if "=" in o and not o.startswith(("+", "~"))]
    swept = {k for k, v in pairs if "." not in k and "," in v}                # defense=fast_at,pgd_at
    keys = [k for k, _ in pairs if "." in k and k.split(".", 1)[0] in swept]   # defense.eps=0.05
    if not keys:
        return ""
    return (f". A sweep over {', '.join(sorted(swept))} applies {keys[0]} to the common config too, which has the "
            f"group's default option: write ++{keys[0]}=... to set it in every job")


def check_jobs(overrides: list[str], multirun: bool, config_name: str = "config") -> int:
    """Compose and check every job of ``python -m ser_attacks [-m] <overrides>``: the number of jobs, or
    ConfigError with one line."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from . import schema
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        try:
            master = loader.load_configuration(config_name, overrides,
                                               run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(hydra_error_line(exc) + _swept_group_hint(overrides, multirun)) from None
        if not multirun:
            _check(master)
            return 1
        try:
            jobs = _job_overrides(loader, master, list(master.hydra.overrides.task))
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(hydra_error_line(exc)) from None
        if jobs is None:                       # a sweeper of its own: the common config only
            _check(master)
            return 1
        errors: dict[str, list[int]] = {}
        n = 0
        it = job_configs(loader, master, jobs)
        while True:
            try:
                job, cfg = next(it)
            except StopIteration:
                break
            except (HydraException, OmegaConfBaseException) as exc:
                errors.setdefault(hydra_error_line(exc), []).append(n)
                n += 1
                continue
            try:
                _check(cfg)
            except ConfigError as exc:
                errors.setdefault(str(exc), []).append(n)
            n += 1
    if errors:
        msg, idx = next(iter(errors.items()))
        if len(idx) == n:
            raise ConfigError(f"{msg} (every job of the sweep)")
        others = sum(len(v) for v in errors.values()) - 1
        common = set.intersection(*(set(j) for j in jobs))      # the job's own overrides: what the sweep varies
        own = " ".join(o for o in jobs[idx[0]] if o not in common)
        raise ConfigError(f"job {idx[0]} of {n} ({own}): {msg}"
                          + (f" (and {others} more job(s) with errors)" if others else "")
                          + "; no job was started")
    return n


def preflight(argv: list[str]) -> None:
    """``--help``, then the checks of every job; exits with a message, or returns for Hydra to run."""
    from hydra._internal.utils import get_args_parser
    args = get_args_parser().parse_args(argv)   # Hydra's own parser: --version, a usage error exit here as there
    if args.help:
        print(help_text())
        raise SystemExit(0)
    if any(getattr(args, f, None) for f in SHOW_FLAGS):
        return
    try:
        check_jobs(list(args.overrides), bool(args.multirun), args.config_name or "config")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
