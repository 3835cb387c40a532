"""The paper's attack grid, stock ART vs ours, on a TRAINED model and real test segments.

    # = make bench-grid
    python benchmarks/grid.py --n 2 --repeats 1 --json recipes/attack_speed_grid/bench_grid_emodb.json

Model: the platform's own trained model for the config given after ``--`` (default: the final model on the
shared EmoDB copy, ``train.max_epochs=12``; trained once and cached under ``SER_ATTACKS_CACHE``). Samples:
``--n`` test segments chosen as an attack job chooses them (``select_samples``), normalized as the job does.

For each of the 26 configurations of ``conf/experiment/paper_grid.yaml`` (FGSM, BIM eps 0.25..1.25;
DeepFool max_iter 1/5/20; JSMA theta +-0.5/+-1; C&W-L2; C&W-L-inf; pixel th 1/5/10 x DE/CMA-ES;
Boundary) at its paper settings (``conf/attack/*.yaml``):

- **stock**: ART's class with ART's ``TensorFlowV2Classifier`` (eager; ``estimator=stock``). Boundary: ART's
  class seeded (``SeededBoundaryAttack``: ART's loop, one seeded generator per sample; ART's own is
  unseeded, so it cannot be compared run to run); pixel: ``SpectrogramPixelAttack`` (ART's PixelAttack
  is wrong on float spectrograms, see ``ser_attacks/attacks/pixel.py``).
- **ours**: the config's ``_target_`` as the platform runs it, with the compiled estimator.

Stock and ours alternate (stock, ours; then ours, stock; ...), each after one untimed warm-up of both
estimators with a one-step version of the attack (graph tracing, measured and reported separately: a
job pays it once). Reported per configuration: median seconds per segment, the ratio, the largest
|x_adv(stock) - x_adv(ours)|, the number of samples whose outputs differ by more than 1e-4, and the
success rates (correctly classified segments whose prediction changed) of both; with ``--repeats`` >= 2
also whether ours gave the same output again (seeded: it must). Results are written after every
configuration (``--json``), and ``--resume`` skips the configurations already there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*PyTorch not found.*")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

# (label, attack, overrides): the paper grid, as conf/experiment/paper_grid.yaml lists it
GRID = ([(f"fgsm eps={e}", "fgsm", [f"attack.eps={e}"]) for e in (0.25, 0.5, 0.75, 1, 1.25)]
        + [(f"bim eps={e}", "bim", [f"attack.eps={e}"]) for e in (0.25, 0.5, 0.75, 1, 1.25)]
        + [(f"deepfool max_iter={m}", "deepfool", [f"attack.max_iter={m}"]) for m in (1, 5, 20)]
        + [(f"jsma theta={t}", "jsma", [f"attack.theta={t}"]) for t in (-1, -0.5, 0.5, 1)]
        + [("cw_l2", "cw_l2", []), ("cw_linf", "cw_linf", [])]
        + [(f"pixel th={th} es={es}", "pixel", [f"attack.th={th}", f"attack.es={es}"]) for th in (1, 5, 10)
           for es in (1, 0)]
        + [("boundary", "boundary", [])])

# stock ART's class where ours is another one (None: the same class, only the estimator differs)
# the noise baselines of the study (conf/experiment/study.yaml): no gradient, no model call (--model-form only)
NOISE = ([(f"noise eps={e}", "noise", [f"attack.eps={e}"]) for e in (0.25, 0.5, 0.75, 1, 1.25)]
         + [(f"noise cells={k}", "noise", [f"attack.cells={k}"]) for k in (1, 5, 10)])

STOCK_TARGET = {"jsma": "art.attacks.evasion.SaliencyMapMethod", "cw_linf": "art.attacks.evasion.CarliniLInfMethod",
                "cw_l2": "art.attacks.evasion.CarliniL2Method",
                "boundary": "ser_attacks.attacks.boundary.SeededBoundaryAttack"}
STOCHASTIC = {"boundary", "pixel"}
# a one-step version of each attack for the untimed warm-up (traces every graph the attack uses)
WARM = {"fgsm": [], "bim": ["attack.max_iter=1"], "deepfool": ["attack.max_iter=1"],
        "jsma": ["attack.gamma=0.0001"], "cw_l2": ["attack.max_iter=1", "attack.binary_search_steps=1"],
        "cw_linf": ["attack.max_iter=1", "attack.largest_const=0.0002"],
        "pixel": ["attack.max_iter=1"], "boundary": ["attack.max_iter=1", "attack.init_size=2"], "noise": []}
DEFAULT_MODEL = ["dataset=emodb", "dataset.root=/work/shared/data/emodb", "train.max_epochs=12", "seed=0"]
# --model-form: a study fold-0 model (conf/experiment/study_models.yaml, seed 42, augment=none), EmoDB originals
STUDY_MODEL = ["experiment=study_models", "augment=none", "dataset=emodb", "dataset.root=/work/shared/data/emodb",
               "+hparams=emodb_paper", "split.n_folds=5", "split.fold=0", "seed=42"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ser_attacks import schema
    from ser_attacks.app import CONF_DIR
    schema.register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def trained_model(model_overrides: list[str], n: int, rows: bool = False):
    """(cfg, TrainedModel, x normalized (n, ...), labels, genders) as an attack job would have them (``rows``:
    + the picked segments' table: speaker, recording_id, ...)."""
    from ser_attacks.attacks import select_samples
    from ser_attacks.data import prepare
    from ser_attacks.train import get_or_train
    cfg = compose([*model_overrides, "progress=false"])
    data = prepare(cfg, progress=False)
    tm = get_or_train(cfg, data, None)
    X, y, segs = data.part("test")
    idx = select_samples(segs.gender.to_numpy(), n, cfg.seed)
    out = cfg, tm, tm.normalizer.transform(np.asarray(X[idx])), np.asarray(y)[idx], segs.gender.to_numpy()[idx]
    return (*out, segs.iloc[idx].reset_index(drop=True).assign(test_index=idx)) if rows else out


def attack_cfg(base: list[str], attack: str, overrides: list[str], stock: bool):
    from omegaconf import OmegaConf, open_dict
    cfg = compose([*base, f"attack={attack}", "attack.verbose=false", *overrides]).attack
    if stock:
        with open_dict(cfg):
            if attack in STOCK_TARGET:
                cfg._target_ = STOCK_TARGET[attack]
            cfg.per_sample = None                          # a key of our classes only
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def run_attack(cfg, clf, x, y, n_classes: int, seed: int):
    from ser_attacks.attacks import attack_labels, build_attack
    attack = build_attack(cfg, clf)
    labels, _ = attack_labels(attack, y, n_classes, seed)
    np.random.seed(seed)                                   # as the attack job does
    t0 = time.perf_counter()
    out = np.asarray(attack.generate(x=x, y=labels), dtype=np.float32)
    return out, time.perf_counter() - t0


def success_rate(clf, x, x_adv, y) -> float:
    right = np.argmax(clf.predict(x), 1) == y
    flipped = right & (np.argmax(clf.predict(x_adv), 1) != y)
    return float(flipped.sum() / right.sum()) if right.any() else float("nan")


def load_avg() -> float:
    return os.getloadavg()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2, help="test segments attacked (one batch)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per side and configuration")
    ap.add_argument("--only", default="", help="comma list of substrings: run only matching configurations")
    ap.add_argument("--json", type=Path, default=None, help="write results here after every configuration")
    ap.add_argument("--resume", action="store_true", help="skip configurations already in --json")
    ap.add_argument("--profile", default="", help="a configuration label (e.g. 'boundary'): cProfile stock and ours "
                    "once each and print the share of time inside TensorFlow's calls, instead of the benchmark")
    ap.add_argument("--model-form", action="store_true", help="instead of stock ART vs ours: the model's stock form "
                    "vs its fast form (ser_attacks.fast_model), both with our attack classes and the compiled "
                    "estimator, one segment at a time (per-segment times), the paper grid plus the noise baselines")
    ap.add_argument("--segment-cap", type=float, default=None, help="--model-form: seconds; one side's attack on one "
                    "segment is interrupted after this and recorded as cut (JSMA's heavy tail)")
    ap.add_argument("--config-budget", type=float, default=None, help="--model-form: seconds; once both sides spent "
                    "this much on one configuration, its remaining segments are skipped and recorded as skipped")
    ap.add_argument("--batched", action="store_true", help="--model-form: attack the --n segments in one call per "
                    "side (as a job does for FGSM, BIM, DeepFool, C&W-L2), --repeats runs alternated; seconds per "
                    "segment = the call's time / n")
    ap.add_argument("model", nargs="*", help="config overrides of the trained model (after --)")
    args = ap.parse_args(argv)
    model_overrides = args.model or (STUDY_MODEL if args.model_form else DEFAULT_MODEL)

    import tensorflow as tf

    from ser_attacks.estimator import make_classifier
    from ser_attacks.machine import device_name

    cfg, tm, x, y, genders = trained_model(model_overrides, args.n)
    n_classes = len(tm.classes)
    clfs = {k: make_classifier(tm.model, n_classes, tm.normalizer.clip_values, k, cfg.estimator.batch_size)
            for k in ("stock", "compiled")}
    clean_right = int((np.argmax(clfs["compiled"].predict(x), 1) == y).sum())
    header = {"model": f"{cfg.model.name} ({tm.model.count_params():,} params), {cfg.dataset.name}, "
                       f"{tm.meta['epochs']} epochs, test acc {tm.meta['test_acc']:.3f}, key {tm.key}",
              "model_overrides": model_overrides, "n_segments": len(x), "genders": genders.tolist(),
              "correctly_classified": clean_right, "repeats": args.repeats, "device": device_name(),
              "tensorflow": tf.__version__, "python": platform.python_version(), "command": " ".join(sys.argv)}
    print(f"# {header['model']}; {len(x)} test segments ({clean_right} correctly classified), "
          f"{args.repeats} timed run(s) per side, {header['device']}, TF {tf.__version__}", flush=True)
    if args.profile:
        return profile(args.profile, model_overrides, clfs, x, y, n_classes, cfg.seed)
    if args.model_form:
        header["load_before"] = list(os.getloadavg())
        forms = {k: make_classifier(tm.model, n_classes, tm.normalizer.clip_values, "compiled",
                                    cfg.estimator.batch_size, fast=(k == "fast")) for k in FORMS}
        return model_form(args, header, model_overrides, forms, x, y, n_classes, cfg.seed)
    results = {"header": header, "rows": []}
    if args.resume and args.json and args.json.exists():
        results["rows"] = json.loads(args.json.read_text())["rows"]
    done = {r["config"] for r in results["rows"]}
    base = list(model_overrides)
    only = [s for s in args.only.split(",") if s]
    warmed: set[str] = set()

    for label, attack, overrides in GRID:
        if label in done or (only and not any(s in label for s in only)):
            continue
        cfgs = {"stock": attack_cfg(base, attack, overrides, True), "ours": attack_cfg(base, attack, overrides, False)}
        if attack not in warmed:                         # trace graphs once per attack class (untimed)
            trace = {}
            for side, kind in (("stock", "stock"), ("ours", "compiled")):
                wcfg = attack_cfg(base, attack, overrides + WARM[attack], side == "stock")
                trace[side] = run_attack(wcfg, clfs[kind], x[:1], y[:1], n_classes, cfg.seed)[1]
            warmed.add(attack)
        else:
            trace = {}
        times = {"stock": [], "ours": []}
        outs = {"stock": [], "ours": []}
        loads = [load_avg()]
        for rep in range(args.repeats):
            order = ("stock", "ours") if rep % 2 == 0 else ("ours", "stock")
            for side in order:
                out, dt = run_attack(cfgs[side], clfs["stock" if side == "stock" else "compiled"], x, y, n_classes,
                                     cfg.seed)
                times[side].append(dt / len(x))
                outs[side].append(out)
                loads.append(load_avg())
                print(f"  {label}: {side} {dt / len(x):.2f} s/segment", flush=True)
        s, o = statistics.median(times["stock"]), statistics.median(times["ours"])
        diff = np.abs(outs["stock"][0] - outs["ours"][0]).reshape(len(x), -1).max(1)
        row = {"config": label, "attack": attack, "stochastic": attack in STOCHASTIC,
               "stock_target": cfgs["stock"]["_target_"], "ours_target": cfgs["ours"]["_target_"],
               "stock_s_per_segment": s, "ours_s_per_segment": o, "ratio": s / o,
               "stock_times": times["stock"], "ours_times": times["ours"], "trace_s": trace,
               "max_abs_diff": float(diff.max()), "n_differing": int((diff > 1e-4).sum()),
               "success_stock": success_rate(clfs["compiled"], x, outs["stock"][0], y),
               "success_ours": success_rate(clfs["compiled"], x, outs["ours"][0], y),
               "ours_rerun_identical": (bool(all(np.array_equal(outs["ours"][0], r) for r in outs["ours"][1:]))
                                        if args.repeats > 1 else None),
               "load_avg": [min(loads), max(loads)]}
        results["rows"].append(row)
        print(f"{label}: stock {s:.2f} s, ours {o:.2f} s per segment, x{s / o:.1f}, max|diff| {diff.max():.1e}, "
              f"success {row['success_stock']:.2f} / {row['success_ours']:.2f}", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    return 0


FORMS = ("stock", "fast")


class SegmentCut(Exception):
    """One side's attack on one segment ran past ``--segment-cap``."""


def run_capped(cfg, clf, x, labels, seed: int, cap: float | None):
    """(x_adv or None if cut, seconds): our attack on ``x`` with ``labels`` (already the generate ``y``), stopped
    by SIGALRM after ``cap`` seconds (checked between Python bytecodes: within one compiled call)."""
    import signal

    from ser_attacks.attacks import build_attack

    def alarm(signum, frame):
        raise SegmentCut()
    attack = build_attack(cfg, clf)
    np.random.seed(seed)
    old = signal.signal(signal.SIGALRM, alarm)
    if cap:
        signal.setitimer(signal.ITIMER_REAL, cap)
    t0 = time.perf_counter()
    try:
        out = np.asarray(attack.generate(x=x, y=labels), dtype=np.float32)
    except SegmentCut:
        out = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return out, time.perf_counter() - t0


def model_form(args, header, base, forms, x, y, n_classes: int, seed: int) -> int:
    """The grid (+ noise baselines), the model's stock form vs its fast form, segment by segment: for segment i
    the two forms run one after the other (order alternating with i), each with the same labels and seed.
    Per configuration: per-segment median seconds of each form, the median of the per-segment ratios, the
    adversarial predictions compared, the outputs' largest difference and the segments / cells that differ,
    the segments cut (``--segment-cap``) or skipped (``--config-budget``). JSON after every configuration."""
    from ser_attacks.attacks import attack_labels, build_attack
    header = {**header, "mode": "model_form_batched" if args.batched else "model_form",
              "segment_cap_s": args.segment_cap, "config_budget_s": args.config_budget}
    results = {"header": header, "rows": []}
    if args.resume and args.json and args.json.exists():
        results["rows"] = json.loads(args.json.read_text())["rows"]
    done = {r["config"] for r in results["rows"]}
    only = [s for s in args.only.split(",") if s]
    warmed: set[str] = set()
    clean = {k: np.argmax(c.predict(x), 1) for k, c in forms.items()}
    header["clean_predictions_equal"] = bool(np.array_equal(clean["stock"], clean["fast"]))
    for label, attack, overrides in GRID + NOISE:
        if label in done or (only and not any(s in label for s in only)):
            continue
        cfg = attack_cfg(base, attack, overrides, False)
        labels = attack_labels(build_attack(cfg, forms["stock"]), y, n_classes, seed)[0]
        trace = {}
        if attack not in warmed:                         # trace graphs once per attack class (untimed)
            wcfg = attack_cfg(base, attack, overrides + WARM[attack], False)
            for k in FORMS:
                trace[k] = run_capped(wcfg, forms[k], x[:1], labels[:1], seed, None)[1]
            warmed.add(attack)
        times = {k: [] for k in FORMS}
        outs = {k: [] for k in FORMS}
        loads = [load_avg()]
        spent = 0.0
        units = ([slice(0, len(x))] * max(args.repeats, 1) if args.batched
                 else [slice(i, i + 1) for i in range(len(x))])
        for j, sl in enumerate(units):
            if args.config_budget and spent > args.config_budget:
                break
            for k in (FORMS if j % 2 == 0 else FORMS[::-1]):
                out, dt = run_capped(cfg, forms[k], x[sl], labels[sl], seed, args.segment_cap)
                times[k].append(dt / (sl.stop - sl.start))
                outs[k].append(out)
                spent += dt
            loads.append(load_avg())
            note = {k: " (cut)" if outs[k][-1] is None else "" for k in FORMS}
            print(f"  {label} {'run' if args.batched else 'segment'} {j}: stock {times['stock'][-1]:.2f} "
                  f"s/segment{note['stock']}, fast {times['fast'][-1]:.2f} s/segment{note['fast']}", flush=True)
        if args.batched:        # the first run's outputs, segment by segment; ratios per run
            outs = {k: [None if v[0] is None else v[0][i:i + 1] for i in range(len(x))] for k, v in outs.items()}
        n_run = len(outs["stock"])
        both = [i for i in range(n_run) if outs["stock"][i] is not None and outs["fast"][i] is not None]
        cut = {k: [i for i in range(n_run) if outs[k][i] is None] for k in FORMS}
        seg = []
        for i in both:
            a, b = outs["stock"][i], outs["fast"][i]
            pa, pb = (int(np.argmax(forms["stock"].predict(v), 1)[0]) for v in (a, b))
            d = np.abs(a - b)
            seg.append({"segment": i, "max_abs_diff": float(d.max()), "cells_differing": int((d > 0).sum()),
                        "pred_stock": pa, "pred_fast": pb,
                        "flipped_stock": bool(clean["stock"][i] == y[i] and pa != y[i]),
                        "flipped_fast": bool(clean["fast"][i] == y[i] and pb != y[i])})
        med = {k: statistics.median(times[k]) if times[k] else float("nan") for k in FORMS}
        ratios = [a / b for a, b in zip(times["stock"], times["fast"])] if args.batched else [
            times["stock"][i] / times["fast"][i] for i in both]
        right = [i for i in both if clean["stock"][i] == y[i]]
        row = {"config": label, "attack": attack, "stochastic": attack in STOCHASTIC | {"noise"},
               "target": cfg["_target_"], "segments_run": n_run, "segments_skipped": len(x) - n_run,
               "runs": len(times["stock"]),
               "segments_cut": cut, "stock_s_median": med["stock"], "fast_s_median": med["fast"],
               "stock_s_total": sum(times["stock"]), "fast_s_total": sum(times["fast"]),
               "ratio_median": statistics.median(ratios) if ratios else float("nan"),
               "ratio_of_totals": sum(times["stock"]) / sum(times["fast"]) if sum(times["fast"]) else float("nan"),
               "stock_times": times["stock"], "fast_times": times["fast"], "trace_s": trace,
               "predictions_equal": all(s["pred_stock"] == s["pred_fast"] for s in seg),
               "max_abs_diff": max((s["max_abs_diff"] for s in seg), default=0.0),
               "n_differing": sum(s["max_abs_diff"] > 0 for s in seg),
               "n_differing_1e-4": sum(s["max_abs_diff"] > 1e-4 for s in seg),
               "success_stock": (sum(seg[both.index(i)]["flipped_stock"] for i in right) / len(right)
                                 if right else float("nan")),
               "success_fast": (sum(seg[both.index(i)]["flipped_fast"] for i in right) / len(right)
                                if right else float("nan")),
               "segments": seg, "load_avg": [min(loads), max(loads)]}
        results["rows"].append(row)
        print(f"{label}: stock {med['stock']:.2f} s, fast {med['fast']:.2f} s per segment (median of {n_run}), "
              f"x{row['ratio_median']:.2f}, predictions equal {row['predictions_equal']}, max|diff| "
              f"{row['max_abs_diff']:.1e} ({row['n_differing']} segments differ), cut {cut}, "
              f"skipped {row['segments_skipped']}", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            results["header"]["load_after"] = list(os.getloadavg())
            args.json.write_text(json.dumps(results, indent=1))
    print()
    print(form_table(results))
    return 0


def form_table(results: dict) -> str:
    rows = results["rows"]
    lines = ["| configuration | segments (cut / skipped) | stock form s/segment | fast form s/segment | ratio "
             "(median of per-segment) | adversarial predictions equal | max abs diff | segments differing | "
             "success stock / fast |", "|---|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        cut = sum(len(v) for v in r["segments_cut"].values())
        lines.append(f"| {r['config']} | {r['segments_run']} ({cut} / {r['segments_skipped']}) "
                     f"| {r['stock_s_median']:.2f} | {r['fast_s_median']:.2f} | **{r['ratio_median']:.2f}x** "
                     f"| {'yes' if r['predictions_equal'] else 'NO'} | {r['max_abs_diff']:.1e} | {r['n_differing']} "
                     f"| {r['success_stock']:.2f} / {r['success_fast']:.2f} |")
    s = sum(r["stock_s_median"] for r in rows)
    f = sum(r["fast_s_median"] for r in rows)
    if rows:
        lines.append(f"| **whole grid ({len(rows)} configurations), sum of medians** | | **{s:.1f}** | **{f:.1f}** "
                     f"| **{s / f:.2f}x** | | | | |")
    return "\n".join(lines)


def profile(label: str, base: list[str], clfs, x, y, n_classes: int, seed: int) -> int:
    """cProfile one configuration, stock then ours (after a warm-up of each): where the time goes."""
    import cProfile
    import pstats
    match = [g for g in GRID if g[0] == label]
    if not match:
        raise SystemExit(f"--profile: no configuration {label!r}; one of: {', '.join(g[0] for g in GRID)}")
    _, attack, overrides = match[0]
    for side, kind in (("stock", "stock"), ("ours", "compiled")):
        cfg = attack_cfg(base, attack, overrides, side == "stock")
        run_attack(attack_cfg(base, attack, overrides + WARM[attack], side == "stock"), clfs[kind], x[:1], y[:1],
                   n_classes, seed)
        prof = cProfile.Profile()
        prof.enable()
        run_attack(cfg, clfs[kind], x, y, n_classes, seed)
        prof.disable()
        stats = pstats.Stats(prof).stats
        tf_calls = [v for k, v in stats.items() if k[2] in ("<built-in method tensorflow.python._pywrap_tfe."
                                                           "TFE_Py_Execute>",)]
        tf_time, n_calls = sum(v[2] for v in tf_calls), sum(v[1] for v in tf_calls)
        total = pstats.Stats(prof).total_tt
        print(f"{label} {side}: {total:.2f} s for {len(x)} segment(s), {tf_time / total:.0%} inside TensorFlow "
              f"({n_calls} compiled-graph executions, {tf_time:.2f} s)", flush=True)
    return 0


def table(results: dict) -> str:
    rows = results["rows"]
    lines = ["| configuration | stock s/segment | ours s/segment | ratio | max abs diff | segments differing > 1e-4 "
             "| success stock / ours |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['config']}{' (seeded)' if r['stochastic'] else ''} | {r['stock_s_per_segment']:.2f} "
                     f"| {r['ours_s_per_segment']:.2f} | **{r['ratio']:.1f}x** | {r['max_abs_diff']:.1e} "
                     f"| {r['n_differing']} | {r['success_stock']:.2f} / {r['success_ours']:.2f} |")
    s = sum(r["stock_s_per_segment"] for r in rows)
    o = sum(r["ours_s_per_segment"] for r in rows)
    if rows:
        lines.append(f"| **whole grid ({len(rows)} configurations)** | **{s:.1f}** | **{o:.1f}** | **{s / o:.1f}x** "
                     "| | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
