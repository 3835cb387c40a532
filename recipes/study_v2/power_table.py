"""What study v2's design can decide on each corpus: the table behind recipes/study_v2/plan.yaml's smallest
detectable effects (ser_attacks.report.power; inputs and their sources: recipes/study_v2/README.md).

    python recipes/study_v2/power_table.py            # writes recipes/study_v2/power.csv and power.md
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from ser_attacks.report import power  # noqa: E402

SEEDS = 3
MARGIN = 0.10
SEED_COUNTS = HERE / "pilot" / "emodb_speakers_folds01.csv"
# clean accuracy: SD between speakers assumed 0.10 (the pilots cannot estimate it: README); the accuracy rate
# (v2 models so far for EmoDB, v1 for the others) and the test segments per speaker of a whole test split
CLEAN = {"emodb": {"n_folds": 5, "rate": 0.72, "segments": 38},
         "emovo": {"n_folds": 6, "rate": 0.24, "segments": 78},
         "ravdess": {"n_folds": 6, "rate": 0.49, "segments": 40}}
SD_BETWEEN_CLEAN = 0.10
# FMN's minimal L-inf perturbation (sigma): SD of the speaker medians in recipes/min_norm/results_recording
SD_MIN_LINF = 0.0157


def rows() -> list[dict]:
    seed_sd = power.seed_sd_from_counts(SEED_COUNTS)
    out = []
    for corpus, c in CLEAN.items():
        d = power.design(corpus, c["n_folds"])
        sd = power.projected_sd(SD_BETWEEN_CLEAN, c["rate"], c["segments"], seed_sd, SEEDS)
        sd_linf = SD_MIN_LINF           # conservative: its within-speaker sampling noise is kept
        half = power.equivalence_halfwidth(d, sd)
        out.append({
            "corpus": corpus, "folds (F+M per fold)": " ".join(f"{f}+{m}" for f, m in d.folds),
            "relabellings": d.relabellings, "min p two-sided": round(d.min_p("two-sided"), 5),
            "min p one-sided": round(d.min_p("greater"), 5),
            "SD speaker mean, clean acc": round(sd, 3),
            "gender_clean: smallest detectable (two-sided)": power.smallest_detectable(d, sd, "two-sided"),
            "gender_clean: expected CI half-width": round(half, 3),
            f"'negligible' (±{MARGIN:g}) reachable": "yes" if half < MARGIN else "no",
            "gender_vulnerability: smallest detectable min_linf (one-sided), σ":
                power.smallest_detectable(d, sd_linf, "greater", top=0.2)})
    return out


def main() -> None:
    t = pd.DataFrame(rows())
    t.to_csv(HERE / "power.csv", index=False)
    head = "| " + " | ".join(t.columns) + " |\n|" + "---|" * len(t.columns) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in r) + " |\n" for r in t.itertuples(index=False))
    (HERE / "power.md").write_text(head + body)
    sys.stdout.write(head + body)


if __name__ == "__main__":
    main()
