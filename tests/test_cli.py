"""The command line explains itself and rejects a bad configuration before any heavy work (issues 29 and 30).

``python -m ser_attacks --help`` is the project's own; a configuration error (an unknown option or key, a value
out of range, a fold the corpus does not have, a missing corpus root) is ONE line on stderr and exit code 2,
found before TensorFlow or MLflow is imported and before any output folder, tracking database, run, cache entry
or corpus is created. The subprocess tests check exactly that (``-X importtime`` lists every imported module);
the unit tests check the rules behind them in this process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ser_attacks import attacks, checks, cli, schema
from ser_attacks.tracking import _summary_line, clip_words
from tests.helpers import CONF_DIR, ROOT, compose_config, subprocess_env

HEAVY = ("tensorflow", "keras", "mlflow", "art")


def run(tmp: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str], set[str]]:
    """``python -m ser_attacks <args>`` in ``tmp`` with its cache, data and tracking DB under ``tmp``: (process,
    the stderr lines other than -X importtime's, the top-level modules it imported)."""
    e = subprocess_env(**(env or {}))
    e.pop("MLFLOW_TRACKING_URI", None)
    e.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ser_attacks", *args,
                           f"paths.cache_dir={tmp / 'cache'}", f"paths.data_dir={tmp / 'data'}",
                           f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}", f"tracking.artifact_root={tmp / 'mlruns'}"],
                          cwd=tmp, env=e, capture_output=True, text=True, timeout=300)
    lines, modules = [], set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
        else:
            lines.append(line)
    return proc, lines, modules


def assert_config_error(tmp: Path, *args: str, env: dict | None = None) -> str:
    """The command fails with one ``error:`` line, exit code 2, no heavy import, nothing created; the line."""
    proc, lines, modules = run(tmp, *args, env=env)
    assert proc.returncode == checks.EXIT_CONFIG == 2, (proc.returncode, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in proc.stderr
    assert not modules & set(HEAVY), f"imported {modules & set(HEAVY)} before rejecting the config"
    assert sorted(p.name for p in tmp.iterdir()) == [], "nothing (DB, outputs, cache, corpus) may be created"
    return lines[0]


# ------------------------------------------------------------------------------- the command line, in a process
@pytest.mark.e2e
def test_help_is_the_projects_own(tmp_path):
    proc, lines, modules = run(tmp_path, "--help")
    assert proc.returncode == 0 and not lines, lines
    out = proc.stdout
    assert len(out.splitlines()) < 45, "short"
    assert "_schema" not in out and "powered by Hydra" not in out
    for group, option in (("attack", "fgsm*"), ("dataset", "emodb"), ("split", "speaker_cv"), ("experiment", "study"),
                          ("hydra/launcher", "joblib"), ("mode", "train")):
        assert any(line.split()[:1] == [group] and option in line.split() for line in out.splitlines()), group
    assert "python -m ser_attacks attack=" in out                       # a run
    assert "python -m ser_attacks -m attack=fgsm,bim" in out            # a sweep
    assert "make study" in out and "experiment=study" in out            # a study
    assert "-m (--multirun)" in out
    assert not modules & set(HEAVY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_unknown_option_names_the_closest_one(tmp_path):
    line = assert_config_error(tmp_path, "attack=fgsmm")
    assert "did you mean fgsm?" in line and "Choices: autoattack, bim" in line and "_schema" not in line


@pytest.mark.e2e
def test_unknown_key_names_the_closest_one(tmp_path):
    assert "attack.epz: no such key in attack; did you mean eps?" in assert_config_error(tmp_path, "attack.epz=0.1")


@pytest.mark.e2e
@pytest.mark.parametrize("args, expected", [
    (["attack.eps=-1"], "attack.eps=-1.0 (attack fgsm): must be >= 0"),
    (["attack.n_samples=0"], "attack.n_samples=0 (attack fgsm): must be >= 1"),
    (["attack=jsma", "attack.gamma=2"], "attack.gamma=2.0 (attack jsma): must be in (0, 1]"),
    (["attack=boundary", "attack.step_adapt=1"], "attack.step_adapt=1.0 (attack boundary): must be in (0, 1)"),
    (["split=speaker_cv", "split.fold=99"], "split.fold=99 is out of range: synthetic has 5 speaker folds"),
    (["train.max_epochs=0"], "train.max_epochs=0: must be >= 1"),
    (["dataset=emodb", "dataset.emotions=[joy]"], "dataset.emotions: 'joy' is not an emotion of emodb"),
    (["dataset.emotions=[joy]"], "'joy' is not an emotion of emodb"),
    (["-m", "report=maybe"], "report='maybe'"),
    (["attack=fgsm,bim"], "a comma list is a sweep: add -m"),
])
def test_bad_value_is_one_line_before_any_heavy_import(tmp_path, args, expected):
    assert expected in assert_config_error(tmp_path, *args)


@pytest.mark.e2e
def test_missing_corpus_root_fails_once_before_the_sweep(tmp_path):
    line = assert_config_error(tmp_path, "-m", "dataset=emodb", "attack=fgsm,bim", "attack.eps=0.1,0.2",
                               env={"EMODB_ROOT": str(tmp_path / "nowhere")})
    assert line.count("does not exist") == 1 and "(every job of the sweep)" in line
    assert "dataset.root=" in line and "EMODB_ROOT" in line and "wav/SSTTTEV.wav" in line


@pytest.mark.e2e
def test_one_bad_job_stops_the_sweep_before_it_starts(tmp_path):
    line = assert_config_error(tmp_path, "-m", "attack=fgsm", "attack.eps=0.3,-1")
    assert line == "error: job 1 of 2 (attack.eps=-1): attack.eps=-1.0 (attack fgsm): must be >= 0; no job was started"


@pytest.mark.e2e
def test_make_help_is_grouped_by_purpose():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    sections = [line for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert 4 <= len(sections) <= 8 and sections[0] == "Start here:"
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("  make ")]
    makefile = (ROOT / "Makefile").read_text().splitlines()
    documented = [line.split(":")[0] for line in makefile if "## " in line and line[:1].isalpha() and ":" in line]
    assert sorted(listed) == sorted(documented) and len(set(listed)) == len(listed)


# ---------------------------------------------------------------------------------- the rules, in this process
def test_every_attack_key_has_a_range_or_is_typed():
    keys = set(schema.AttackConf.__dataclass_fields__)
    assert keys == set(attacks.PARAM_RULES) | attacks.UNRANGED, "a new attack key needs its rule in attacks/__init__.py"
    for name, rules in attacks.ATTACK_RULES.items():
        assert (Path(CONF_DIR) / "attack" / f"{name}.yaml").is_file() and set(rules) <= keys


def _bad_value(rule: attacks.Rule):
    if rule.choices:
        return "nope" if isinstance(rule.choices[0], str) else 7
    if rule.nonzero:
        return 0
    return (rule.lo - 1) if rule.lo is not None else (rule.hi + 1)


@pytest.mark.parametrize("path", sorted((Path(CONF_DIR) / "attack").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_parameter_of_every_attack_is_range_checked(path):
    cfg = compose_config(f"attack={path.stem}")
    attacks.check_params(cfg.attack)                                        # the shipped values pass
    rules = {**attacks.PARAM_RULES, **attacks.ATTACK_RULES.get(path.stem, {})}
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    set_keys = [k for k, v in raw.items() if k in rules and v is not None]
    assert set_keys or path.stem == "noise"
    for key in set_keys + ["n_samples", "batch_size"]:
        bad = _bad_value(rules[key])
        node = OmegaConf.to_container(cfg.attack, resolve=True)
        node[key] = bad
        with pytest.raises(attacks.AttackConfigError, match=rf"^attack\.{key}={bad} \(attack {path.stem}\)"):
            attacks.check_params(node)


def test_rules_agree_with_art_where_art_checks():
    """The ranges are ART's: a value the rule rejects is one ART's own check rejects (validate builds it)."""
    pytest.importorskip("art")
    cfg = compose_config("attack=fgsm", "attack.eps=-1")
    with pytest.raises(attacks.AttackConfigError):
        attacks.check_params(cfg.attack)
    with pytest.raises(attacks.AttackConfigError, match="nonnegative"):
        attacks.validate(cfg.attack)


def test_checks_constants_match_their_modules():
    from ser_attacks import estimator
    assert checks.ESTIMATOR_KINDS == estimator.KINDS


def test_sweeps_are_expanded_as_their_sweeper_does():
    assert cli.check_jobs(["attack=fgsm,bim", "attack.eps=0.1,0.2"], multirun=True) == 4
    assert cli.check_jobs(["experiment=demo"], multirun=True) == 4            # hydra.sweeper.params
    assert cli.check_jobs(["experiment=paper_grid"], multirun=True) == 26
    assert cli.check_jobs(["experiment=study", "split.fold=0,1"], multirun=True) == 74   # 37 configurations x 2 folds
    assert cli.check_jobs(["attack=pgd"], multirun=False) == 1


def test_a_key_of_a_swept_group_says_how_to_set_it_in_every_job():
    """``defense=fast_at,pgd_at defense.eps=0.05``: Hydra applies defense.eps to the sweep's common config (the
    default defense, none), which has no eps; the error now says ``++defense.eps=0.05`` sets it in every job."""
    with pytest.raises(checks.ConfigError) as exc:
        cli.check_jobs(["defense=fast_at,pgd_at", "defense.eps=0.05"], multirun=True)
    assert "write ++defense.eps=... to set it in every job" in str(exc.value) and "\n" not in str(exc.value)
    assert cli.check_jobs(["defense=fast_at,pgd_at", "++defense.eps=0.05"], multirun=True) == 2
    with pytest.raises(checks.ConfigError) as exc:
        cli.check_jobs(["attack=fgsm", "attack.epz=0.1"], multirun=True)
    assert "++" not in str(exc.value)                      # no sweep over the group: no hint


@pytest.mark.parametrize("overrides, expected", [
    (["split=speaker_cv", "split.fold=5"], "split.fold=5 is out of range: synthetic has 5 speaker folds"),
    (["split=speaker_cv", "dataset.generate.n_speakers=4"], "needs every fold to hold a speaker of each gender"),
    (["split=speaker_cv", "split.val_utterances=1.5"], "split.val_utterances=1.5: must be in (0, 1)"),
    (["split.val=0.5", "split.test=0.5"], "must be < 1"),
    (["train.reduce_lr_factor=1"], "train.reduce_lr_factor=1.0: must be in (0, 1)"),
    (["train.monitor=val_acc"], "train.monitor='val_acc'"),
    (["estimator.kind=compild"], "did you mean compiled?"),
    (["normalization.method=norm_summ"], "did you mean norm_sum?"),
    (["input=waveform", "attack=deepfool", "attack.snr_db=20"], "attack.snr_db needs an attack with an eps budget"),
    (["dataset=ravdess", "dataset.emotions=[happy,calme]"], "'calme' is not an emotion of ravdess; did you mean calm?"),
    (["dataset.generate.n_speakers=3"], "dataset.generate.n_speakers=3: must be an even number"),
    (["hydra/launcher=jobli"], "hydra/launcher=jobli: no such option in group 'hydra/launcher'; did you mean joblib?"),
])
def test_config_errors_found_without_data(overrides, expected):
    with pytest.raises(checks.ConfigError) as exc:
        cli.check_jobs(overrides, multirun=False)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def test_fold_range_comes_from_the_corpus_files(tmp_path):
    """A real corpus's folds come from its file names (2 female + 2 male speakers: too few for 3 folds)."""
    wav = tmp_path / "wav"
    wav.mkdir()
    for spk in ("03", "08", "10", "09"):                     # EmoDB: 03, 10 male; 08, 09 female
        (wav / f"{spk}a01Fa.wav").write_bytes(b"")
    with pytest.raises(checks.ConfigError, match="2 female, 2 male speaker"):
        cli.check_jobs(["dataset=emodb", f"dataset.root={tmp_path}", "split=speaker_cv"], multirun=False)
    assert cli.check_jobs(["dataset=emodb", f"dataset.root={tmp_path}", "split=speaker"], multirun=False) == 1


def test_summary_cuts_an_error_at_a_word_boundary():
    text = "AttackConfigError: attack 'fgsm' (FastGradientMethod) rejected its parameters: " + "word " * 60
    clipped = clip_words(text, 160)
    assert len(clipped) <= 160 and clipped.endswith("…") and clipped[:-1] == clipped[:-1].rstrip()
    assert text.startswith(clipped[:-1]) and text[len(clipped) - 1] == " "
    run_ = OmegaConf.create({"info": {"status": "FAILED", "run_id": "r"},
                             "data": {"metrics": {}, "tags": {"mlflow.runName": "fgsm", "error": text}}})
    line = _summary_line(run_)
    assert line.endswith("word…") and "wor…" not in line
