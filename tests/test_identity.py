"""ser_attacks.identity: what makes two jobs or two models the same."""
from __future__ import annotations

from types import SimpleNamespace

from ser_attacks import identity


def _data(paths=(), classes=("anger", "neutral")):
    return SimpleNamespace(corpus=SimpleNamespace(table=SimpleNamespace(path=list(paths))), classes=list(classes))


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
        "model": cfg.model.name, "attack": cfg.attack.name, "config_hash": "h"}
    assert identity.run_tags("sweep", cfg) == {"run_type": "sweep", "dataset": cfg.dataset.name}


def test_report_ignores_run_only_and_job_params():
    for k in ("tracking.uri", "tune.space.model.dropout", "model_uri", "n_plot_per_gender", "features.n_jobs"):
        assert identity.is_run_only(k), k
    for k in ("model.dropout", "trackingx", "features.n_mels", "mode"):
        assert not identity.is_run_only(k), k
