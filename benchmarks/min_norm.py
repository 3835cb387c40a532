"""A robustness curve from ONE minimum-norm run vs the five-budget BIM sweep, on the same segments: time ratio,
and the validation of the minimal perturbations against BIM (issue 25).

    # = make bench-min-norm
    python benchmarks/min_norm.py --json recipes/min_norm/bench_min_norm_emodb.json -- <model overrides>

Model: the platform's own trained model for the config given after ``--`` (``benchmarks/grid.py``'s loader;
trained once and cached under ``SER_ATTACKS_CACHE``). Segments: ``--n`` test segments as ``grid.py`` picks
them (``--n 0``: the whole test split), normalized as the attack job does, the estimator's per-band box.

- BIM at the budgets ``--below`` the paper grid (eps_step = ε / 10), for the validation only: the paper's
  budgets are far above the minimal perturbations, so BIM succeeds on every segment there.
- FMN (``attack=fmn``, L∞, its config's defaults) once: the minimal L∞ perturbation r_i of every segment
  (0 where the model is already wrong, +inf where none was found), i.e. the whole curve.
- BIM (``attack=bim``, its config's defaults: eps_step 0.1, max_iter 100) at the paper grid's five budgets
  (``conf/experiment/paper_grid.yaml``: ε = 0.25 ... 1.25 σ).
Each is preceded by an untimed one-step warm-up (graph tracing); with ``--repeats`` >= 2 the FMN run and
the BIM sweep alternate (FMN, BIM; BIM, FMN; ...) and the medians are compared. Reported: seconds of each,
the ratio BIM sweep / FMN run (wall clock, and process CPU seconds: the work done, less sensitive to a
shared host's load), and per ε: BIM's success (share of the clean-correct segments whose
prediction it changed) and the share of the clean-correct segments with r_i ≤ ε (FMN's curve at ε), which
must be at least BIM's (``ok``), plus the segments BIM flipped at ε although r_i > ε (``bim_only``): where
FMN's minimum is not minimal. ``--segments FILE.csv.gz``: the per-segment outcomes (FMN's minimal perturbation, BIM's
prediction at every budget) in the columns of an export's ``segments.csv.gz``, which
``python -m ser_attacks.report.min_norm_questions FILE.csv.gz`` reads.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grid  # noqa: E402  (benchmarks/grid.py: model loader and attack helpers)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PAPER_EPS = (0.25, 0.5, 0.75, 1.0, 1.25)
DEFAULT_MODEL = ["dataset=emodb", "dataset.root=/work/shared/data/emodb", "split=speaker_cv", "split.fold=0",
                 "model=final", "+hparams=emodb_paper", "augment=none", "train=fast"]


def write_segments(path: Path, cfg, tm, picked, y, clean_pred, x, fmn_pred, fmn_cols, out_bim, clf) -> None:
    """One row per segment and run (FMN once; BIM at each budget, config ``eps=<ε>``) in the columns of an
    export's ``segments.csv.gz`` that the minimal-perturbation questions read."""
    from ser_attacks.min_norm import segment_columns
    classes = np.asarray(tm.classes)
    base = {"dataset": cfg.dataset.name, "model": cfg.model.name, "split": cfg.split.mode,
            "fold": int(cfg.split.get("fold") or 0), "seed": cfg.seed, "recording_id": picked.recording_id.astype(str),
            "speaker": picked.speaker.astype(str), "gender": picked.gender.astype(str),
            "test_index": picked.test_index.to_numpy(), "label": y, "emotion": classes[y], "clean_pred": clean_pred}
    parts = [pd.DataFrame({**base, "run_id": "bench-fmn", "attack": "fmn", "config": "norm=inf",
                           "adv_pred": fmn_pred, **fmn_cols})]
    for e, out in sorted(out_bim.items()):
        pred = np.argmax(clf.predict(out), 1)
        parts.append(pd.DataFrame({**base, "run_id": f"bench-bim-{e:g}", "attack": "bim", "config": f"eps={e:g}",
                                   "adv_pred": pred, **segment_columns(x, out, y, clean_pred, pred, minimal=False)}))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False, float_format="%.6g")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=0, help="test segments (0: the whole test split)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each side (alternating)")
    ap.add_argument("--fmn", default="", help="extra FMN overrides, comma-separated (e.g. attack.max_iter=50)")
    ap.add_argument("--bim", default="", help="extra BIM overrides, comma-separated (smoke runs only)")
    ap.add_argument("--below", default="0.005,0.01,0.02,0.05,0.1",
                    help="extra budgets below the paper grid, validated too (BIM eps_step = eps / 10), not timed")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--segments", type=Path, default=None,
                    help="per-segment results (.csv.gz, the columns of an export's segments.csv.gz): FMN's minimal "
                         "perturbation and BIM's outcome at every budget, for recipes/study/min_norm_questions.py")
    ap.add_argument("model", nargs="*", help="config overrides of the trained model (after --)")
    args = ap.parse_args(argv)
    overrides = args.model or DEFAULT_MODEL
    from ser_attacks.estimator import make_classifier
    from ser_attacks.machine import device_name
    cfg, tm, x, y, _, picked = grid.trained_model(overrides, args.n if args.n > 0 else 10 ** 9, rows=True)
    n_classes = len(tm.classes)
    clf = make_classifier(tm.model, n_classes, tm.normalizer.clip_values, "compiled", cfg.estimator.batch_size)
    clean_right = np.argmax(clf.predict(x), 1) == y
    fmn_over = [o for o in args.fmn.split(",") if o]
    fmn_cfg = grid.attack_cfg(overrides, "fmn", fmn_over, stock=False)
    bim_over = [o for o in args.bim.split(",") if o]
    bim_cfgs = {e: grid.attack_cfg(overrides, "bim", [f"attack.eps={e}", *bim_over], stock=False) for e in PAPER_EPS}
    # untimed warm-up: traces the graphs each side uses
    grid.run_attack(grid.attack_cfg(overrides, "fmn", ["attack.max_iter=1"], False), clf, x[:1], y[:1], n_classes, 0)
    grid.run_attack(grid.attack_cfg(overrides, "bim", ["attack.max_iter=1"], False), clf, x[:1], y[:1], n_classes, 0)

    times = {"fmn": [], "bim": []}
    cpu = {"fmn": [], "bim": []}        # process CPU seconds (all threads): the work, whatever the host's load
    out_fmn, out_bim = None, {}

    def fmn_side():
        nonlocal out_fmn
        c0 = time.process_time()
        out_fmn, s = grid.run_attack(fmn_cfg, clf, x, y, n_classes, cfg.seed)
        times["fmn"].append(s)
        cpu["fmn"].append(time.process_time() - c0)

    def bim_side():
        total, c0 = 0.0, time.process_time()
        for e, c in bim_cfgs.items():
            out_bim[e], s = grid.run_attack(c, clf, x, y, n_classes, cfg.seed)
            total += s
        times["bim"].append(total)
        cpu["bim"].append(time.process_time() - c0)

    for k in range(args.repeats):
        for side in ((fmn_side, bim_side) if k % 2 == 0 else (bim_side, fmn_side)):
            side()
            print(f"repeat {k}: fmn {times['fmn']} s, bim sweep {times['bim']} s", flush=True)

    below = [float(e) for e in args.below.split(",") if e]
    for e in below:          # validation only: where the paper grid is saturated
        c = grid.attack_cfg(overrides, "bim", [f"attack.eps={e}", f"attack.eps_step={e / 10}", *bim_over], False)
        out_bim[e], _ = grid.run_attack(c, clf, x, y, n_classes, cfg.seed)
    from ser_attacks.min_norm import segment_columns
    clean_pred = np.argmax(clf.predict(x), 1)
    adv_pred = np.argmax(clf.predict(out_fmn), 1)
    fmn_cols = segment_columns(x, out_fmn, y, clean_pred, adv_pred, minimal=True)
    r = fmn_cols["min_linf"]
    if args.segments:
        write_segments(args.segments, cfg, tm, picked, y, clean_pred, x, adv_pred, fmn_cols, out_bim, clf)
    rows = []
    for e in sorted(out_bim):
        flipped = clean_right & (np.argmax(clf.predict(out_bim[e]), 1) != y)
        bim_success = float(flipped.sum() / clean_right.sum())
        fmn_share = float(((r <= e) & clean_right).sum() / clean_right.sum())
        rows.append({"eps": e, "paper_grid": e in PAPER_EPS, "bim_success": round(bim_success, 4),
                     "fmn_share_min_linf_le_eps": round(fmn_share, 4),
                     "ok": fmn_share >= bim_success, "bim_only": int((flipped & (r > e)).sum()),
                     "bim_max_linf": round(float(np.abs((out_bim[e] - x).reshape(len(x), -1)).max()), 4)})
    fin = r[clean_right & np.isfinite(r)]
    result = {
        "command": "python benchmarks/min_norm.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.node()}: {device_name()}, load average {grid.load_avg():.1f}",
        "model": f"{cfg.model.name}, {cfg.dataset.name} split={cfg.split.mode} fold={cfg.split.get('fold')}, "
                 f"{tm.meta['epochs']} epochs, test acc {tm.meta['test_acc']:.3f}, key {tm.key}",
        "n_segments": int(len(x)), "n_clean_right": int(clean_right.sum()),
        "fmn": {k: v for k, v in fmn_cfg.items() if k not in ("_target_", "verbose")},
        "bim": {k: bim_cfgs[PAPER_EPS[0]][k] for k in ("eps_step", "max_iter")},
        "seconds_fmn": times["fmn"], "seconds_bim_sweep": times["bim"],
        "median_s_fmn": statistics.median(times["fmn"]), "median_s_bim_sweep": statistics.median(times["bim"]),
        "ratio_bim_sweep_over_fmn": round(statistics.median(times["bim"]) / statistics.median(times["fmn"]), 2),
        "cpu_s_fmn": cpu["fmn"], "cpu_s_bim_sweep": cpu["bim"],
        "cpu_ratio_bim_sweep_over_fmn": round(statistics.median(cpu["bim"]) / statistics.median(cpu["fmn"]), 2),
        "fmn_found": int(np.isfinite(r[clean_right]).sum()),
        "fmn_min_linf_median": float(np.median(r[clean_right])) if clean_right.any() else float("nan"),
        "fmn_min_linf_quartiles": [float(np.quantile(fin, q)) for q in (0.25, 0.75)] if len(fin) else [],
        "validation": rows, "all_ok": all(row["ok"] for row in rows),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
