"""The robustness checklist of Carlini et al. ("On Evaluating Adversarial Robustness", 2019), per dataset
(setting) and attack, with the numbers behind every verdict.

A verdict is PASS, FLAG (the numbers contradict what a sound evaluation shows), undecided (the interval
straddles the rule's threshold: too few segments to decide either way) or n/a (the runs needed for the check are
missing; the row says which to run). **Every rule decides on an interval, never on a point estimate** (one
exception, stated in rule 5: an attack doing no better than noise on the very segments both saw is FLAGged).
Differences between two configurations are paired on the segments both attacked (every attack of a setting sees
the same segments: ``attack.sample_seed``), with a speaker-cluster bootstrap CI of the paired difference
(``stats.paired_ci``: speakers, and each fold's training seeds where it has several; an exact bound where it is
0 on every segment); "beyond its CI" means the 95 % CI excludes 0. **Accuracy is robust accuracy** everywhere:
the share of segments classified right before AND after the attack (``kept``; the ``robust_acc`` metric), so a
wrong segment an attack turns right (DeepFool and Boundary follow the model's own prediction; FGSM after FGSM
adversarial training: label leaking) never counts as resisting it (the paper's adversarial accuracy did; runs
without per-segment data and without ``robust_acc`` fall back to it).

1. **budget**: accuracy does not rise when a budget grows (eps, th, gamma; FLAG if a step up, or with >= 3
   budgets the whole range from the smallest to the largest, raises it beyond its CI, or if it is identical at
   >= 3 budgets while its interval lies above ``NEAR_ZERO`` — the paper's BIM was identical at every eps).
2. **iterations**: more iterations (max_iter) never raise accuracy beyond CI, and the last step of the grid
   that at least doubles them (1/5/20: 5 → 20) changes it by less than its CI (else the attack had not
   converged at the second-largest).
3. **unbounded → ~0**: minimal-perturbation attacks (DeepFool, C&W, JSMA, Boundary) and L∞ attacks (FGSM,
   BIM, PGD, AutoAttack) at eps >= ``LARGE_EPS`` leave at most ``NEAR_ZERO`` of the correctly classified
   segments correct: PASS when the upper bound is <= ``NEAR_ZERO``, FLAG when the lower bound is above it,
   undecided otherwise (0 of 8 segments: upper bound 0.37).
4. **iterative ≥ single-step**: BIM / PGD / AutoAttack reach at most FGSM's accuracy at equal eps.
5. **beats noise**: every attack leaves fewer segments correct-and-unflipped than random noise, beyond CI (FLAG when
   it leaves at least as many on the same segments, an observation rather than an estimate; undecided when it
   leaves fewer but the CI reaches 0): L∞
   attacks against uniform noise of the same L∞ budget (``attack=noise`` at the attack's eps; for attacks
   without eps, the smallest noise eps >= the attack's mean L∞); **Pixel** (at most ``th`` cells changed)
   against **sparse noise** changing the same number of cells by the same magnitudes (``attack=noise
   attack.cells=<th>``; without such runs the check is n/a, "not judged", never FLAG). Counted on the
   correctly classified segments (share of all segments that are correct before and after), since DeepFool and
   noise can also turn wrong predictions right.
6. **reference**: L∞ attacks agree with AutoAttack (APGD-CE + APGD-DLR) at the same eps: a weaker result
   (higher accuracy) than AutoAttack is FLAGged — that number overstates robustness; a stronger one FLAGs the
   reference (AutoAttack under-converged).
7. **gradient masking** (Athalye et al., ICML 2018; Tramèr et al., NeurIPS 2020): signs that a defense hides the
   gradient rather than removes the adversarial examples. Rows only where there is something to judge:
   (a) accuracy NOT MONOTONE in eps within one attack (a step up or the whole range beyond its CI, the budget
   check's rule; only FLAG rows here); (b) a BLACK-BOX attack (Boundary, Pixel, Square) or a TRANSFER attack (tag
   ``attack_transfer=true``) leaving fewer segments correct than a white-box gradient attack at an equal or
   larger L∞ budget (eps of an L∞ attack, else its mean L∞), beyond CI — PASS where such white-box runs exist and
   none is beaten, n/a where none does; (c) NOISE BEATING a gradient attack: uniform noise at the same L∞ eps
   (the "beats noise" pairing) keeps fewer segments correct than the attack, beyond CI (only FLAG rows; attacks
   without an L∞ eps are paired with LARGER noise there, which may legitimately win); (d) EOT
   or BPDA NEEDED BUT ABSENT, from the run tags of the defense contract: a gradient attack against a randomized
   defense (``defense_randomized=true``) with ``attack_eot`` ≤ 1, or against a non-differentiable one
   (``defense_differentiable=false``) with ``attack_bpda=false`` — FLAG, else PASS for runs against such a defense.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import collect, stats
from .aggregate import configs
from .format import attack_sort_key

BUDGET_KEYS = ("eps", "th", "gamma")
TIED = {"eps": ("eps_step",)}           # keys that a sweep moves together with the budget
ITER_KEY = "max_iter"
UNBOUNDED = ("deepfool", "cw_l2", "cw_linf", "jsma", "boundary")
SINGLE_STEP = ("fgsm",)
SPARSE = ("pixel",)                     # judged against sparse noise (attack.cells = th)
ITERATIVE = ("bim", "pgd", "autoattack")
LINF = ("fgsm", "bim", "pgd")           # checked against the reference
REFERENCE, NOISE = "autoattack", "noise"
NEAR_ZERO = 0.05
LARGE_EPS = 1.0
NOT_ATTACK_PARAMS = ("name", "_target_", "n_samples", "sample_seed", "seed", "batch_size", "verbose")
CHECKS = ("budget", "iterations", "unbounded → ~0", "iterative ≥ single-step", "beats noise", "reference",
          "gradient masking")
MASKING = "gradient masking"
GRADIENT = ("fgsm", "bim", "pgd", "autoattack", "deepfool", "cw_l2", "cw_linf", "jsma", "fmn")   # white-box
BLACK_BOX = ("boundary", "pixel", "square")
TRUE = ("true", "True", "1")
VERDICTS = ("PASS", "FLAG", "undecided", "n/a")


def counts(cl: pd.DataFrame) -> str:
    """'34 PASS, 7 FLAG, 2 undecided, 13 n/a'."""
    n = cl.verdict.value_counts()
    return ", ".join(f"{n.get(v, 0)} {v}" for v in VERDICTS)


def _num(v) -> float | None:
    f = collect._num(v)
    return f if isinstance(f, float) else None


def attack_params(p: dict) -> dict:
    """The attack's own parameters of a flattened config (no platform keys, no None)."""
    return {k[len("attack."):]: v for k, v in p.items() if k.startswith("attack.")
            and k[len("attack."):] not in NOT_ATTACK_PARAMS and v not in (None, "None")}


def _is_linf(a: pd.Series) -> bool:
    return str(attack_params(a.params).get("norm", "inf")) in ("inf", "np.inf")


def acc(r: pd.Series) -> float:
    """A configuration's robust accuracy (right before and after the attack); its adversarial accuracy where no
    robust accuracy is known (a run without per-segment data logged before the ``robust_acc`` metric)."""
    v = r.get("robust_acc", np.nan)
    return float(v) if v is not None and v == v else float(r.adv_acc)


def paired_diff(pooled: dict, a: pd.Series, b: pd.Series, col: str = "kept",
                m: pd.DataFrame | None = None) -> tuple[float, float, float, int]:
    """mean ``col`` of a - of b (default: robust accuracy) on the segments both attacked, with its
    speaker-level 95 % CI, and how many segments; unpaired (CI from both) when they share no segment.
    ``m``: ``paired_segments(pooled, a, b, col)`` when the caller has it already."""
    ta, tb = pooled.get(a.config_id), pooled.get(b.config_id)
    if ta is None or tb is None:
        of = {"kept": acc, "adv_ok": lambda r: r.adv_acc}.get(col)
        return (of(a) - of(b) if of else np.nan), np.nan, np.nan, 0
    if m is None:
        m = paired_segments(pooled, a, b, col)
    if not len(m):
        return (*stats.hier_gap_ci(ta, tb, col), 0)
    return (*stats.paired_ci(m, col), len(m))          # speakers, and each fold's seeds where it has several


def paired_segments(pooled: dict, a: pd.Series, b: pd.Series, col: str = "kept") -> pd.DataFrame | None:
    """The segments both configurations attacked: a's per-segment rows with b's ``col`` as ``<col>_b`` (and its
    per-seed columns as ``<col>_b@j``: ``stats.partner``); None when either has no per-segment data."""
    ta, tb = pooled.get(a.config_id), pooled.get(b.config_id)
    if ta is None or tb is None:
        return None
    return ta.merge(stats.partner(tb, col), on="key")


def correct_pairs(pooled: dict, x: pd.Series, y: pd.Series) -> pd.DataFrame | None:
    """The segments both configurations attacked that the model classified correctly, with ``flipped`` (1 when
    ``x``'s attack made the segment wrong) and ``flipped_b`` (the same for ``y``): every attack of a fold attacks
    the same segments with the same model, so the correct segments are the same for both. ``x`` paired with
    itself: its own success rate on the correctly classified segments (``flipped.mean()``; the report's first
    screen ranks attacks on it, recipes/study/findings.py tests the ranking with it)."""
    m = paired_segments(pooled, x, y, "kept")
    if m is None:
        return None
    m = m[m.clean_ok >= 0.5]
    m = stats.with_seeds(m, "flipped", lambda k, c: 1.0 - k / c.where(c > 0), "kept", "clean_ok")
    return stats.with_seeds(m, "flipped_b", lambda k, c: 1.0 - k / c.where(c > 0), "kept_b", "clean_ok")


def _kept(pooled: dict, r: pd.Series) -> float:
    """Share of the configuration's segments that are correct before AND after the attack."""
    t = pooled.get(r.config_id)
    return float(t.kept.mean()) if t is not None and len(t) else np.nan


def _d(d) -> str:
    diff, lo, hi, n = d
    s = f"Δ {diff:+.3f}"
    return s + (f" [{lo:+.2f}, {hi:+.2f}]" if lo == lo else " [no per-segment data]")


def _row(setting, attack, config, check, result, verdict) -> dict:
    return {"setting": setting, "attack": attack, "config": config, "check": check, "result": result,
            "verdict": verdict}


def _budget_series(sub: pd.DataFrame, key: str) -> list[pd.DataFrame]:
    """Configurations of one attack that differ only in ``key`` (and the keys tied to it), sorted by it."""
    ignore = {key, *TIED.get(key, ())}
    groups: dict[str, list] = {}
    for _, r in sub.iterrows():
        p = attack_params(r.params)
        if _num(p.get(key)) is None:
            continue
        rest = repr(sorted((k, v) for k, v in p.items() if k not in ignore))
        groups.setdefault(rest, []).append((_num(p[key]), r))
    out = []
    for items in groups.values():
        if len({v for v, _ in items}) > 1:
            out.append(pd.DataFrame([r for _, r in sorted(items, key=lambda x: x[0])])
                       .assign(budget=sorted(v for v, _ in items)))
    return out


def _budget_checks(setting, attack, sub, pooled) -> list[dict]:
    rows = []
    for key in BUDGET_KEYS + (ITER_KEY,):
        for series in _budget_series(sub, key):
            steps, flags = [], []
            for i in range(1, len(series)):
                lo_r, hi_r = series.iloc[i - 1], series.iloc[i]
                d = paired_diff(pooled, hi_r, lo_r)
                steps.append(f"{key} {lo_r.budget:g}→{hi_r.budget:g}: {acc(lo_r):.3f}→{acc(hi_r):.3f} ({_d(d)})")
                if d[1] > 0:
                    flags.append(f"accuracy rises beyond its CI from {key}={lo_r.budget:g} to {hi_r.budget:g}")
            if key == ITER_KEY:
                # convergence: the last step of the grid that at least doubles max_iter (1/5/20: 5 → 20) must not
                # change accuracy beyond its CI
                last = next((i for i in range(len(series) - 1, 0, -1)
                             if series.iloc[i].budget >= 2 * series.iloc[i - 1].budget), None)
                if last is not None:
                    lo_r, hi_r = series.iloc[last - 1], series.iloc[last]
                    d = paired_diff(pooled, hi_r, lo_r)
                    if d[1] == d[1] and (d[1] > 0 or d[2] < 0):
                        flags.append(f"{key} {lo_r.budget:g}→{hi_r.budget:g} (≥ 2x, the grid's last such step) "
                                     "changes accuracy beyond its CI (not converged)")
            if key != ITER_KEY and len(series) >= 3:       # a slow rise: no step beyond its CI, the whole range is
                first, last = series.iloc[0], series.iloc[-1]
                d = paired_diff(pooled, last, first)
                steps.append(f"overall {key} {first.budget:g}→{last.budget:g}: {acc(first):.3f}→{acc(last):.3f} "
                             f"({_d(d)})")
                if d[1] > 0 and not any(f.startswith("accuracy rises") for f in flags):
                    flags.append(f"accuracy rises beyond its CI from {key}={first.budget:g} to {last.budget:g}")
            accs = np.array([acc(r) for _, r in series.iterrows()])
            lo_col = "robust_acc_lo" if "robust_acc_lo" in series and series.robust_acc_lo.notna().all() \
                else "adv_acc_lo"
            lows = series[lo_col].to_numpy(float) if lo_col in series else np.full(len(series), np.nan)
            if key != ITER_KEY and len(series) >= 3 and np.ptp(accs) == 0 and np.nanmin(
                    np.where(np.isnan(lows), accs, lows)) > NEAR_ZERO:
                flags.append(f"accuracy identical ({accs[0]:.3f}, lower bound above {NEAR_ZERO}) at every {key}: "
                             "the budget has no effect")
            others = ", ".join(f"{k}={v}" for k, v in sorted(attack_params(series.iloc[0].params).items())
                               if k not in (key, *TIED.get(key, ())))
            rows.append(_row(setting, attack, others or "default", "iterations" if key == ITER_KEY else "budget",
                             "; ".join(steps) + (". " + "; ".join(flags) if flags else ""),
                             "FLAG" if flags else "PASS"))
            rises = [f for f in flags if f.startswith("accuracy rises")]
            if key == "eps" and rises:                # (a) gradient masking: accuracy not monotone in eps
                rows.append(_row(setting, attack, others or "default", MASKING,
                                 "(a) accuracy not monotone in eps: " + "; ".join(rises) + " — the signature of "
                                 "gradient masking: attack through the defense (BPDA / EOT), more iterations, "
                                 "random restarts", "FLAG"))
    return rows


def _unbounded(setting, attack, sub, pooled) -> list[dict]:
    cand = sub if attack in UNBOUNDED else sub[[(_num(attack_params(p).get("eps")) or 0) >= LARGE_EPS
                                                and attack in ITERATIVE + SINGLE_STEP for p in sub.params]]
    rows = []
    best = None
    for _, r in cand.iterrows():
        t = pooled.get(r.config_id)
        if t is None or t.clean_ok.sum() == 0:
            continue
        res = stats.table_ci(t, "kept", "clean_ok")
        if best is None or res[0] < best[1][0]:
            best = (r, res, int(round(t.clean_ok.sum())))
    if best is not None:
        r, (v, lo, hi), n = best
        if hi <= NEAR_ZERO:
            verdict, note = "PASS", ""
        elif lo > NEAR_ZERO:
            verdict, note = "FLAG", ": suspect gradient masking or too few iterations"
        else:
            verdict, note = "undecided", f": the interval straddles {NEAR_ZERO} (too few segments to decide)"
        rows.append(_row(setting, attack, r.config, "unbounded → ~0",
                         f"{v:.3f} [{lo:.2f}, {hi:.2f}] of the {n} correctly classified segments stay correct "
                         f"(≤ {NEAR_ZERO} expected; decided on the interval)" + note, verdict))
    elif attack in UNBOUNDED and len(sub):
        rows.append(_row(setting, attack, "", "unbounded → ~0", "no correctly classified segment (or no "
                         "per-segment data)", "n/a"))
    return rows


def _eps(r) -> float | None:
    return _num(attack_params(r.params).get("eps"))


def _most_iterations(rows: pd.DataFrame) -> pd.Series:
    it = [(_num(attack_params(p).get(ITER_KEY)) or 0) for p in rows.params]
    return rows.iloc[int(np.argmax(it))]


def _iterative_checks(setting, attack, sub, by_attack, pooled) -> list[dict]:
    """An iterative attack is at least as strong as a single-step one at the same L∞ eps."""
    rows = []
    for _, r in sub.iterrows():
        e = _eps(r)
        single = [x for a in SINGLE_STEP if a in by_attack for _, x in by_attack[a].iterrows()
                  if _eps(x) == e and _is_linf(x)]
        for x in single[:1]:
            d = paired_diff(pooled, r, x)
            bad = d[1] > 0
            rows.append(_row(setting, attack, r.config, "iterative ≥ single-step",
                             f"{attack} {acc(r):.3f} vs {x.attack} {acc(x):.3f} at eps={e:g} ({_d(d)})"
                             + (": the iterative attack is weaker; step size or iterations too small?"
                                if bad else ""), "FLAG" if bad else "PASS"))
    return rows


def _cells(r) -> float | None:
    return _num(attack_params(r.params).get("cells"))


def _noise_checks(setting, attack, sub, noise, pooled) -> list[dict]:
    """Each configuration beats random noise: L∞ attacks uniform noise of the same L∞ budget (its eps, else its
    mean L∞); Pixel sparse noise changing as many cells (``attack.cells`` = its ``th``)."""
    rows = []
    dense = noise[[_cells(n) is None for _, n in noise.iterrows()]] if noise is not None else None
    sparse = noise[[_cells(n) is not None for _, n in noise.iterrows()]] if noise is not None else None
    for _, r in sub.iterrows():
        if attack in SPARSE:
            th = _num(attack_params(r.params).get("th"))
            match = [n for _, n in sparse.iterrows() if _cells(n) == th] if sparse is not None and th else []
            if not match:
                rows.append(_row(setting, attack, r.config, "beats noise",
                                 f"not judged: no sparse-noise run with cells={th:g} (attack=noise attack.cells="
                                 f"{th:g}); Pixel changes at most th cells, so dense noise is not its reference"
                                 if th else "not judged: no th", "n/a"))
                continue
            rows.append(_noise_row(setting, attack, r, match[0], pooled, f"sparse noise, cells={th:g}", None))
            continue
        e = _eps(r) if _is_linf(r) else None
        budget = e if e is not None else r.get("linf", np.nan)
        if dense is None or not len(dense) or budget != budget:
            rows.append(_row(setting, attack, r.config, "beats noise", "no attack=noise run in this setting"
                             if dense is None or not len(dense) else "no L∞ budget", "n/a"))
            continue
        ne = [(_eps(n), n) for _, n in dense.iterrows() if _eps(n) is not None]
        match = [n for v, n in ne if v == budget] if e is not None else \
            [n for v, n in sorted(ne, key=lambda t: t[0]) if v >= budget][:1]
        if not match:
            rows.append(_row(setting, attack, r.config, "beats noise",
                             f"no attack=noise run at eps {'=' if e is not None else '≥'} {budget:.4g}", "n/a"))
            continue
        d = paired_diff(pooled, r, match[0], "kept")
        rows.append(_noise_row(setting, attack, r, match[0], pooled, f"eps={_eps(match[0]):g}",
                               None if e is not None else budget, d))
        if attack in GRADIENT and e is not None and not _is_transfer(r) and d[1] > 0:    # (c) at the same eps
            rows.append(_row(setting, attack, r.config, MASKING,
                             f"(c) noise beats the gradient attack: correct and kept {_kept(pooled, r):.3f} vs noise "
                             f"{_kept(pooled, match[0]):.3f} (eps={_eps(match[0]):g}, {_d(d)}) — its gradients do "
                             "not point to the adversarial examples (masked or obfuscated)", "FLAG"))
    return rows


def _noise_row(setting, attack, r, n, pooled, what: str, mean_linf, d=None) -> dict:
    """On the correctly classified segments: attacks that move away from the prediction (DeepFool) may also
    fix wrong ones. PASS when the attack keeps fewer segments correct than the noise beyond the CI; FLAG when it keeps
    at least as many as the noise on these very segments (no better than noise, observed); undecided when it keeps
    fewer but the CI reaches 0 (with two speakers, 0 of 8 vs noise's 5 of 8 is not "beyond its CI")."""
    d = paired_diff(pooled, r, n, "kept") if d is None else d
    ka, kn = _kept(pooled, r), _kept(pooled, n)
    floor = max(ka, kn) <= NEAR_ZERO          # both ~0: nothing to tell apart, no verdict either way
    verdict = "PASS" if d[2] < 0 else "n/a" if floor else "FLAG" if d[0] >= 0 else "undecided"
    return _row(setting, attack, r.config, "beats noise",
                f"correct and kept {ka:.3f} vs noise {kn:.3f} ({what})"
                + ("" if mean_linf is None else f" (attack's mean L∞ {mean_linf:.3g})") + f" ({_d(d)})"
                + {"PASS": "", "n/a": ": both ~0, the budget is too large to tell",
                   "FLAG": ": no better than random noise on these segments",
                   "undecided": ": better than noise here, not beyond its CI (too few speakers or segments)"}[verdict],
                verdict)


def _reference_checks(setting, attack, sub, ref, pooled) -> list[dict]:
    """An L∞ attack agrees with the strong reference (AutoAttack, most iterations) at the same eps."""
    rows = []
    for _, r in sub.iterrows():
        e = _eps(r)
        if e is None or not _is_linf(r):
            continue
        match = [x for _, x in ref.iterrows() if _eps(x) == e] if ref is not None else []
        if not match:
            rows.append(_row(setting, attack, r.config, "reference", f"no attack=autoattack run at eps={e:g}", "n/a"))
            continue
        x = _most_iterations(pd.DataFrame(match))
        d = paired_diff(pooled, r, x)
        if d[1] > 0:
            verdict, note = "FLAG", f": weaker than AutoAttack; {attack}'s accuracy overstates robustness"
        elif d[2] < 0:
            verdict, note = "FLAG", ": stronger than the reference; AutoAttack under-converged"
        else:
            verdict, note = "PASS", ""
        rows.append(_row(setting, attack, r.config, "reference",
                         f"{acc(r):.3f} vs AutoAttack {acc(x):.3f} at eps={e:g} ({_d(d)}){note}", verdict))
    return rows


def _is_transfer(r) -> bool:
    return str(r.get("attack_transfer", "")) in TRUE


def _linf_budget(r) -> float:
    """A run's L∞ budget: its eps for an L∞ attack with one, else its mean L∞ (NaN if neither)."""
    e = _eps(r) if _is_linf(r) else None
    return e if e is not None else float(r.get("linf", np.nan))


def _blackbox_checks(setting, attack, sub, S, pooled) -> list[dict]:
    """(b) A black-box or transfer attack is no stronger than the white-box gradient attacks at an equal or larger
    L∞ budget."""
    rows = []
    white = [w for _, w in S.iterrows() if w.attack in GRADIENT and not _is_transfer(w)]
    for _, r in sub.iterrows():
        if not (attack in BLACK_BOX or _is_transfer(r)):
            continue
        kind = "transfer" if _is_transfer(r) else "black-box"
        b = _linf_budget(r)
        match = [w for w in white if b == b and _linf_budget(w) >= b]
        if not match:
            rows.append(_row(setting, attack, r.config, MASKING,
                             f"(b) {kind}: no white-box gradient attack at an L∞ budget ≥ {b:.4g}" if b == b else
                             f"(b) {kind}: no L∞ budget to compare", "n/a"))
            continue
        beaten = []
        for w in match:
            d = paired_diff(pooled, w, r)
            if d[1] > 0:
                beaten.append(f"{w.attack} {w.config} {acc(w):.3f} (L∞ {_linf_budget(w):.3g}, {_d(d)})")
        rows.append(_row(setting, attack, r.config, MASKING,
                         f"(b) {kind} {acc(r):.3f} at L∞ {b:.3g} vs {len(match)} white-box gradient run(s) at an "
                         "equal or larger budget" + (": it beats " + "; ".join(beaten) + " — the gradients mislead "
                                                     "the white-box attacks (masking)" if beaten else ""),
                         "FLAG" if beaten else "PASS"))
    return rows


def _eot_bpda_checks(setting, attack, sub) -> list[dict]:
    """(d) A gradient attack on a randomized defense uses EOT; on a non-differentiable one, BPDA (run tags)."""
    rows = []
    if attack not in GRADIENT:
        return rows
    for _, r in sub.iterrows():
        if _is_transfer(r):
            continue
        name = r.get("defense", "") or "the defense"
        if str(r.get("defense_randomized", "")) in TRUE:
            eot = _num(r.get("attack_eot", "")) or 1.0
            rows.append(_row(setting, attack, r.config, MASKING,
                             f"(d) randomized defense {name}: attack_eot={eot:g}" +
                             (" — gradients of a single noise draw; rerun with defense.eot=k (EOT)" if eot <= 1
                              else ""), "FLAG" if eot <= 1 else "PASS"))
        if str(r.get("defense_differentiable", "")).lower() == "false":
            bpda = str(r.get("attack_bpda", "")).lower()
            rows.append(_row(setting, attack, r.config, MASKING,
                             f"(d) non-differentiable defense {name}: attack_bpda={bpda or '?'}" +
                             (" — no gradient through the transform; rerun with defense.bpda=true (BPDA)"
                              if bpda == "false" else ""), "FLAG" if bpda == "false" else "PASS"))
    return rows


def checklist(cf: pd.DataFrame, pooled: dict) -> pd.DataFrame:
    """One row per (setting, attack, configuration, check): the numbers and a verdict."""
    rows = []
    for setting, S in cf.groupby("setting", sort=True):
        by_attack = {a: sub for a, sub in S.groupby("attack")}
        for attack, sub in by_attack.items():
            if attack == NOISE:
                continue
            rows += _budget_checks(setting, attack, sub, pooled)
            rows += _unbounded(setting, attack, sub, pooled)
            if attack in ITERATIVE:
                rows += _iterative_checks(setting, attack, sub, by_attack, pooled)
            rows += _noise_checks(setting, attack, sub, by_attack.get(NOISE), pooled)
            if attack in LINF:
                rows += _reference_checks(setting, attack, sub, by_attack.get(REFERENCE), pooled)
            rows += _blackbox_checks(setting, attack, sub, S, pooled)
            rows += _eot_bpda_checks(setting, attack, sub)
    out = pd.DataFrame(rows, columns=["setting", "attack", "config", "check", "result", "verdict"])
    if len(out):
        out["_c"] = [CHECKS.index(c) for c in out.check]
        out["_a"] = [attack_sort_key(a) for a in out.attack]
        out = out.sort_values(["setting", "_c", "_a", "config"], kind="stable").drop(columns=["_c", "_a"])
    return out.reset_index(drop=True)


def flag_lines(cl: pd.DataFrame) -> list[str]:
    """One line per FLAG, for the report's summary and the sweep's closing summary."""
    return [f"FLAG {r.setting} · {r.attack} {r.config} · {r.check}: {r.result}" for r in cl.itertuples()
            if r.verdict == "FLAG"]


def sweep_flags(uri: str, experiment: str, sweep_id: str) -> list[str]:
    """The checklist FLAGs of one sweep's attack runs (read back from MLflow), for its closing summary."""
    runs = collect.collect(uri, experiment, [sweep_id])
    if not len(runs):
        return []
    cf, pooled = configs(runs, collect.load_samples(runs.uri, runs.df.run_id))
    cl = checklist(cf, pooled)
    if cl.empty:
        return ["Robustness checklist: nothing to check in this sweep's runs alone (python -m ser_attacks.report "
                "checks them with the other runs of their dataset)"]
    return [f"Robustness checklist: {counts(cl)}"] + flag_lines(cl)
