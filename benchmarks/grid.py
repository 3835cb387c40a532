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
STOCK_TARGET = {"jsma": "art.attacks.evasion.SaliencyMapMethod", "cw_linf": "art.attacks.evasion.CarliniLInfMethod",
                "cw_l2": "art.attacks.evasion.CarliniL2Method",
                "boundary": "ser_attacks.attacks.boundary.SeededBoundaryAttack"}
STOCHASTIC = {"boundary", "pixel"}
# a one-step version of each attack for the untimed warm-up (traces every graph the attack uses)
WARM = {"fgsm": [], "bim": ["attack.max_iter=1"], "deepfool": ["attack.max_iter=1"],
        "jsma": ["attack.gamma=0.0001"], "cw_l2": ["attack.max_iter=1", "attack.binary_search_steps=1"],
        "cw_linf": ["attack.max_iter=1", "attack.largest_const=0.0002"],
        "pixel": ["attack.max_iter=1"], "boundary": ["attack.max_iter=1", "attack.init_size=2"]}
DEFAULT_MODEL = ["dataset=emodb", "dataset.root=/work/shared/data/emodb", "train.max_epochs=12", "seed=0"]


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
    ap.add_argument("model", nargs="*", help="config overrides of the trained model (after --)")
    args = ap.parse_args(argv)
    model_overrides = args.model or DEFAULT_MODEL

    import tensorflow as tf

    from ser_attacks.app import device_name
    from ser_attacks.estimator import make_classifier

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
