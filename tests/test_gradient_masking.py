"""The robustness checklist's gradient-masking flags (ser_attacks/report/checklist.py, check "gradient masking") on
hand-made run tables: (a) accuracy not monotone in eps, (b) a black-box or transfer attack beating the white-box
gradient attacks at an equal or larger budget, (c) noise beating a gradient attack, (d) EOT / BPDA needed but
absent (the defense contract's run tags). Each rule is raised where it should be and silent otherwise."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ser_attacks.report.checklist import MASKING, checklist

N = 60


def _row(cid, attack, adv_acc, linf=np.nan, tags=None, **params):
    p = {f"attack.{k}": str(v) for k, v in params.items()}
    p["attack.name"] = attack
    config = ", ".join(f"{k}={v}" for k, v in params.items()) or "default"
    return dict(config_id=cid, setting="emodb", attack=attack, config=config, params=p, adv_acc=adv_acc, linf=linf,
                **(tags or {}))


def _pooled(adv, n_spk=6) -> pd.DataFrame:
    adv = np.broadcast_to(np.asarray(adv, float), (N,)).copy()
    return pd.DataFrame({"key": [f"k{i}" for i in range(N)], "speaker": np.repeat([f"s{i}" for i in range(n_spk)],
                                                                                    N // n_spk),
                         "speaker_known": True, "recording_id": [f"r{i}" for i in range(N)], "gender": "female",
                         "label": 0, "clean_ok": 1.0, "adv_ok": adv, "kept": adv, "n_runs": 1})


def _acc(p, seed):
    return (np.random.default_rng(seed).random(N) < p).astype(float)


LOW, HIGH = _acc(0.1, 1), _acc(0.9, 2)


def _masking(rows, pooled) -> pd.DataFrame:
    cl = checklist(pd.DataFrame(rows), pooled)
    return cl[cl.check == MASKING]


def test_a_accuracy_not_monotone_in_eps_is_flagged_and_a_falling_curve_is_not():
    rows = [_row("f1", "fgsm", LOW.mean(), eps=0.1), _row("f2", "fgsm", HIGH.mean(), eps=0.2),
            _row("b1", "bim", HIGH.mean(), eps=0.1, max_iter=10), _row("b2", "bim", LOW.mean(), eps=0.2, max_iter=10)]
    pooled = {"f1": _pooled(LOW), "f2": _pooled(HIGH), "b1": _pooled(HIGH), "b2": _pooled(LOW)}
    m = _masking(rows, pooled)
    fgsm = m[m.attack == "fgsm"]
    assert len(fgsm) == 1 and fgsm.verdict.iloc[0] == "FLAG"
    assert "(a) accuracy not monotone in eps" in fgsm.result.iloc[0]
    assert "eps=0.1 to 0.2" in fgsm.result.iloc[0]
    assert not len(m[m.attack == "bim"])                   # accuracy falls with eps: silent


def test_a_noise_rise_within_its_ci_is_not_flagged():
    wobble = LOW.copy()
    wobble[0] = 1.0                                        # one segment more: within the CI
    rows = [_row("f1", "fgsm", LOW.mean(), eps=0.1), _row("f2", "fgsm", wobble.mean(), eps=0.2)]
    assert not len(_masking(rows, {"f1": _pooled(LOW), "f2": _pooled(wobble)}))


def test_b_a_black_box_attack_beating_white_box_at_a_larger_budget_is_flagged():
    """Boundary (mean L∞ 0.15) leaves 0.1 correct, FGSM at eps 0.2 (a larger budget) 0.9: FLAG. FGSM at eps 0.1 (a
    smaller budget) is no comparison: alone, n/a. Boundary no stronger than PGD at eps 0.2: PASS."""
    base = [_row("bd", "boundary", LOW.mean(), linf=0.15), _row("f1", "fgsm", HIGH.mean(), eps=0.1)]
    pooled = {"bd": _pooled(LOW), "f1": _pooled(HIGH), "f2": _pooled(HIGH), "p2": _pooled(LOW)}
    m = _masking(base, pooled)
    r = m[m.attack == "boundary"].iloc[0]
    assert r.verdict == "n/a" and "no white-box gradient attack at an L∞ budget ≥ 0.15" in r.result
    m = _masking(base + [_row("f2", "fgsm", HIGH.mean(), eps=0.2)], pooled)
    r = m[m.attack == "boundary"].iloc[0]
    assert r.verdict == "FLAG" and "(b) black-box" in r.result and "beats fgsm eps=0.2" in r.result
    assert "fgsm eps=0.1 " not in r.result                 # the smaller budget is not compared
    m = _masking(base + [_row("p2", "pgd", LOW.mean(), eps=0.2)], pooled)
    assert m[m.attack == "boundary"].verdict.tolist() == ["PASS"]


def test_b_compares_robust_accuracy_so_label_leaking_raises_no_flag():
    """FGSM after FGSM adversarial training turns every wrong segment right and every right one wrong: adversarial
    accuracy 0.5, robust accuracy (right before AND after) 0. Boundary keeps a fifth of the right ones: robust 0.1,
    adversarial 0.1. Compared on adversarial accuracy the black box would "beat" FGSM (a false flag (b)); on robust
    accuracy FGSM is the stronger attack: PASS."""
    clean = (np.arange(N) % 2 == 0).astype(float)
    fgsm = _pooled(1.0 - clean).assign(clean_ok=clean, kept=0.0)
    bd_kept = clean * (np.arange(N) % 10 == 0)
    bd = _pooled(bd_kept).assign(clean_ok=clean)
    rows = [_row("f", "fgsm", 0.5, eps=0.2, tags={"robust_acc": 0.0}),
            _row("bd", "boundary", bd_kept.mean(), linf=0.15, tags={"robust_acc": bd_kept.mean()})]
    m = _masking(rows, {"f": fgsm, "bd": bd})
    r = m[m.attack == "boundary"].iloc[0]
    assert r.verdict == "PASS" and f"(b) black-box {bd_kept.mean():.3f}" in r.result


def test_b_a_transfer_attack_beating_the_white_box_attack_is_flagged():
    """FGSM crafted on the undefended model (tag attack_transfer=true) leaves 0.1 correct, white-box PGD at the same
    eps 0.9: FLAG; the transfer run is no white-box comparator itself (no (a)-(d) rule treats it as one)."""
    rows = [_row("t", "fgsm", LOW.mean(), eps=0.2, tags={"attack_transfer": "true"}),
            _row("p", "pgd", HIGH.mean(), eps=0.2, max_iter=10)]
    m = _masking(rows, {"t": _pooled(LOW), "p": _pooled(HIGH)})
    r = m[m.attack == "fgsm"]
    assert r.verdict.tolist() == ["FLAG"] and "(b) transfer" in r.result.iloc[0] and "beats pgd" in r.result.iloc[0]
    rows[0]["attack_transfer"] = ""                       # the same numbers as a white-box run: nothing for (b)
    assert not len(_masking(rows, {"t": _pooled(LOW), "p": _pooled(HIGH)}).query("attack == 'fgsm'"))


def test_c_noise_beating_a_gradient_attack_is_flagged_and_an_attack_beating_noise_is_not():
    rows = [_row("f", "fgsm", HIGH.mean(), eps=0.2), _row("g", "fgsm", LOW.mean(), eps=0.3),
            _row("n2", "noise", LOW.mean(), eps=0.2), _row("n3", "noise", HIGH.mean(), eps=0.3)]
    pooled = {"f": _pooled(HIGH), "g": _pooled(LOW), "n2": _pooled(LOW), "n3": _pooled(HIGH)}
    m = _masking(rows, pooled)
    assert m.config.tolist() == ["eps=0.2"] and m.verdict.tolist() == ["FLAG"]
    assert "(c) noise beats the gradient attack" in m.result.iloc[0]
    # an attack only level with noise is the "beats noise" check's FLAG, not masking
    rows[0]["adv_acc"], pooled["f"] = LOW.mean(), _pooled(LOW)
    assert not len(_masking(rows, pooled))
    # DeepFool (no eps, mean L∞ 0.15) meets noise at the next larger eps 0.2: a larger budget may win, not judged
    rows.append(_row("df", "deepfool", HIGH.mean(), linf=0.15))
    pooled["df"] = _pooled(HIGH)
    assert not len(_masking(rows, pooled))


def test_d_eot_and_bpda_needed_but_absent_are_read_from_the_run_tags():
    def tags(**kw):
        return {"defense": "x", **kw}
    rows = [_row("e1", "pgd", 0.5, eps=0.1, tags=tags(defense_randomized="true", attack_eot="1")),
            _row("e4", "pgd", 0.5, eps=0.2, tags=tags(defense_randomized="true", attack_eot="4")),
            _row("b0", "fgsm", 0.5, eps=0.1, tags=tags(defense_differentiable="false", attack_bpda="false")),
            _row("b1", "fgsm", 0.5, eps=0.2, tags=tags(defense_differentiable="false", attack_bpda="true")),
            _row("bd", "boundary", 0.5, tags=tags(defense_randomized="true", attack_eot="1")),   # no gradients
            _row("d", "deepfool", 0.5, tags=tags(defense_randomized="false", defense_differentiable="true",
                                                 attack_eot="1", attack_bpda="false"))]
    pooled = {r["config_id"]: _pooled(np.full(N, 0.5)) for r in rows}
    m = _masking(rows, pooled)
    d = m[m.result.str.startswith("(d)")]
    v = {(r.attack, r.config): (r.verdict, r.result) for r in d.itertuples()}
    assert v[("pgd", "eps=0.1")][0] == "FLAG" and "attack_eot=1" in v[("pgd", "eps=0.1")][1]
    assert v[("pgd", "eps=0.2")][0] == "PASS"
    assert v[("fgsm", "eps=0.1")][0] == "FLAG" and "attack_bpda=false" in v[("fgsm", "eps=0.1")][1]
    assert v[("fgsm", "eps=0.2")][0] == "PASS"
    assert not any(a in ("boundary", "deepfool") for a, _ in v)
    # runs logged before the defense tags existed: nothing to judge
    for r in rows:
        for k in ("defense", "defense_randomized", "defense_differentiable", "attack_eot", "attack_bpda"):
            r.pop(k, None)
    assert not len(_masking(rows, pooled).query("result.str.startswith('(d)')", engine="python"))


def test_the_defense_tags_reach_the_checklist_from_mlflow_rows():
    """collect.tidy keeps the contract's tags; aggregate.configs carries them per configuration."""
    from ser_attacks.report.collect import DEFENSE_TAGS, tidy
    raw = pd.DataFrame([{"run_id": "r1", "status": "FINISHED", "start_time": 1, "params.attack.name": "pgd",
                         "tags.attack": "pgd", "tags.defense": "smoothing", "tags.defense_randomized": "true",
                         "tags.attack_eot": "1", "metrics.adv_acc": 0.5}])
    t = tidy(raw)
    assert t.defense_randomized.iloc[0] == "true" and t.attack_eot.iloc[0] == "1" and t.attack_bpda.iloc[0] == ""
    assert {"defense_randomized", "attack_eot", "defense_differentiable", "attack_bpda"} <= set(DEFENSE_TAGS)
