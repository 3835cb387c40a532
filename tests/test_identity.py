"""ser_attacks.identity: what makes two jobs or two models the same."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from ser_attacks import identity
from ser_attacks.data.corpora import load_corpus
from ser_attacks.data.features import FrontEnd, cache_key


def _data(paths=(), classes=("anger", "neutral"), table=None):
    if table is None:
        table = pd.DataFrame({"path": [str(p) for p in paths], "recording_id": [Path(p).name for p in paths]})
    return SimpleNamespace(corpus=SimpleNamespace(table=table), classes=list(classes))


def test_model_key_ignores_run_only_keys_and_the_data_location(cfg_factory, corpus_root):
    base = identity.model_key(cfg_factory(), _data())
    for o in (["features.n_jobs=3"], ["train.verbose=2"], ["dataset.root=/elsewhere"], ["attack=bim"],
              ["tracking.uri=sqlite:///other.db"], ["progress=true"], ["mode=tune", "tune.n_trials=3"]):
        assert identity.model_key(cfg_factory(*o), _data()) == base, o


def test_model_key_follows_what_shapes_the_model(cfg_factory, corpus_root):
    base = identity.model_key(cfg_factory(), _data())
    keys = {identity.model_key(cfg_factory(*o), _data()) for o in
            (["features.n_mels=64"], ["split=speaker"], ["normalization=none"], ["seed=1"], ["train.lr=0.01"])}
    keys.add(identity.model_key(cfg_factory(), _data(classes=("anger", "sadness"))))
    wav = sorted(corpus_root.rglob("*.wav"))[:2]
    keys.add(identity.model_key(cfg_factory(), _data(paths=wav)))
    assert base not in keys and len(keys) == 7


def test_config_hash_ignores_exactly_the_excluded_keys(cfg_factory):
    base = identity.config_hash(cfg_factory())
    assert identity.config_hash(cfg_factory("force=true", "mode=train", "features.n_jobs=2")) == base
    assert identity.config_hash(cfg_factory("attack.eps=0.2")) != base
    assert identity.config_hash(cfg_factory("n_plot_per_gender=1")) != base   # not run-only for resume


def test_run_tags(cfg_factory):
    cfg = cfg_factory()
    assert identity.run_tags("attack", cfg, config_hash="h") == {
        "run_type": "attack", "dataset": cfg.dataset.name, "language": cfg.dataset.language,
        "model": cfg.model.name, "attack": cfg.attack.name, "config_hash": "h",
        "defense": "none", "defense_stage": "none", "defense_randomized": "false", "defense_differentiable": "true",
        "attack_eot": "1", "attack_bpda": "false"}
    assert identity.run_tags("sweep", cfg) == {"run_type": "sweep", "dataset": cfg.dataset.name}


def test_report_ignores_run_only_and_job_params():
    for k in ("tracking.uri", "tune.space.model.dropout", "model_uri", "n_plot_per_gender", "features.n_jobs"):
        assert identity.is_run_only(k), k
    for k in ("model.dropout", "trackingx", "features.n_mels", "mode"):
        assert not identity.is_run_only(k), k


def _without(cfg, *keys):
    """``cfg`` as composed before the options ``keys`` existed."""
    from omegaconf import OmegaConf
    old = OmegaConf.create(OmegaConf.to_container(cfg))
    for key in keys:
        group, name = key.split(".")
        del old[group][name]
    return old


def test_neutral_options_keep_old_identities(cfg_factory):
    """Options added later (identity.NEUTRAL) at their old-behaviour value leave config_hash, model_key and
    the logged params as they were without them; any other value changes the identity."""
    for overrides in ((), ("split=speaker_cv",)):
        cfg = cfg_factory(*overrides)
        keys = [k for k in identity.NEUTRAL if identity.flatten(identity._container(cfg)).get(k, "absent") != "absent"]
        assert "train.monitor" in keys and ("split.val_utterances" in keys) == bool(overrides)
        assert {"attack.source", "attack.p_init", "attack.nb_restarts"} <= set(keys)   # transfer / Square keys
        old = _without(cfg, *keys)
        assert identity.config_hash(cfg) == identity.config_hash(old)
        assert identity.model_key(cfg, _data()) == identity.model_key(old, _data())
        assert not set(keys) & set(identity.logged_params(identity._container(cfg)))
    for changed in (["train.monitor=val_accuracy"], ["split=speaker_cv", "split.val_utterances=0.16"]):
        base = cfg_factory(*changed[:-1])
        new = cfg_factory(*changed)
        assert identity.config_hash(new) != identity.config_hash(base)
        assert identity.model_key(new, _data()) != identity.model_key(base, _data())
        key, value = changed[-1].split("=")
        assert identity.logged_params(identity._container(new))[key] in (value, float(value) if "." in value
                                                                         and value[0].isdigit() else value)


def test_a_copied_corpus_keeps_its_model_and_feature_keys(cfg_factory, corpus_root, tmp_path):
    """Keys follow the recordings' bytes and parsed labels, not their folder or mtimes: a copy of the
    corpus elsewhere (new mtimes, as a re-made shared copy has) reuses the cache; one changed byte or one
    changed label does not."""
    copy = tmp_path / "copy"
    shutil.copytree(corpus_root, copy, copy_function=shutil.copy)        # new mtimes
    a, b = load_corpus("emodb", corpus_root).table, load_corpus("emodb", copy).table
    assert (a.path != b.path).all()
    cfg, fe = cfg_factory(), FrontEnd()
    assert identity.model_key(cfg, _data(table=a)) == identity.model_key(cfg, _data(table=b))
    assert cache_key(a, fe) == cache_key(b, fe)
    relabelled = b.assign(emotion=b.emotion[::-1].to_numpy())
    assert identity.model_key(cfg, _data(table=relabelled)) != identity.model_key(cfg, _data(table=b))
    first = Path(b.path.iloc[0])
    raw = bytearray(first.read_bytes())
    raw[-1] ^= 1
    first.write_bytes(bytes(raw))
    changed = load_corpus("emodb", copy).table
    assert identity.model_key(cfg, _data(table=changed)) != identity.model_key(cfg, _data(table=a))
    assert cache_key(changed, fe) != cache_key(a, fe)


def test_a_training_side_defense_is_another_model_and_none_keeps_the_old_key(cfg_factory):
    """Adversarial training (defense stage training) changes model_key, config_hash and the training run's params;
    defense=none leaves all three as they were before the defense group existed; an inference-side defense
    leaves the trained model alone."""
    none = cfg_factory()
    assert none.defense.name == "none"
    old = _without(none, "defense.name", "defense.stage", "defense.eot", "defense.bpda")
    assert identity.model_key(none, _data()) == identity.model_key(old, _data())
    assert identity.config_hash(none) == identity.config_hash(old)
    assert "defense" not in identity.model_groups(none)
    keys = {identity.model_key(cfg_factory(*o), _data()) for o in
            (["defense=pgd_at"], ["defense=pgd_at", "defense.eps=0.5"], ["defense=pgd_at", "defense.steps=3"],
             ["defense=fast_at"], ["defense=fgsm_at"], ["defense=trades"], ["defense=trades", "defense.beta=1"])}
    assert len(keys) == 7 and identity.model_key(none, _data()) not in keys
    assert identity.model_groups(cfg_factory("defense=pgd_at"))["defense"]["eps"] == 0.25
    params = identity.logged_params(identity.model_groups(cfg_factory("defense=fgsm_at")))
    assert params["defense.eps"] == 1.25 and params["defense.ratio"] == 0.6 and params["defense.stage"] == "training"
    inference = cfg_factory("defense=quantize", "defense.bits=4")
    assert identity.model_key(inference, _data()) == identity.model_key(none, _data())
