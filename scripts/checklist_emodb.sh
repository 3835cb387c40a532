#!/usr/bin/env bash
# The robustness-checklist study on the shared EmoDB copy (README, "Robustness checklist"): speaker-fold
# cross-validation (split=speaker_cv, 5 folds of one female + one male speaker), the final model with a
# modest training budget, and per fold the attacks the checklist needs at three L-inf budgets:
#   FGSM and BIM (10 iterations, step eps/4), uniform noise and AutoAttack (APGD-CE + APGD-DLR, 20 iterations)
#   at eps 0.01, 0.05, 0.25; BIM with 20 iterations at eps 0.05 (doubling check); DeepFool (20 iterations).
# Every job attacks the same 24 test segments of its fold (stratified by gender x emotion, attack.sample_seed=0).
# Usage: FOLDS="0 1 2 3 4" scripts/checklist_emodb.sh   (then python -m ser_attacks.report --dataset emodb ...)
set -euo pipefail
ROOT=${EMODB:-/work/shared/data/emodb}
FOLDS=${FOLDS:-0 1 2 3 4}
COMMON="dataset=emodb dataset.root=$ROOT split=speaker_cv model=final train.max_epochs=${EPOCHS:-4}
        attack.n_samples=${N:-24} progress=false attack.verbose=false train.verbose=2 features.n_jobs=1"
run() { python -m ser_attacks -m $COMMON ${HYDRA_EXTRA:-} "$@"; }
for f in $FOLDS; do
  for e in 0.01 0.05 0.25; do
    step=$(python -c "print($e / 4)")
    run split.fold=$f attack=fgsm,bim attack.eps=$e attack.eps_step=$step attack.max_iter=10
  done
  run split.fold=$f attack=noise,autoattack attack.eps=0.01,0.05,0.25 attack.max_iter=20
  run split.fold=$f attack=bim attack.eps=0.05 attack.eps_step=0.0125 attack.max_iter=20
  run split.fold=$f attack=deepfool attack.max_iter=20
done
