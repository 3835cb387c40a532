#!/usr/bin/env bash
# The robustness-checklist study (recipes/emodb_checklist/README.md): speaker-fold cross-validation (split=speaker_cv, folds of one
# female + one male speaker on EmoDB and the embedded corpus), the final model with a modest training budget, and
# per fold the attacks the checklist needs at three L-inf budgets (standardized log-Mel units):
#   FGSM and BIM (10 iterations, step eps/4), uniform noise and AutoAttack (APGD-CE + APGD-DLR, 20 iterations) at
#   eps 0.01, 0.05, 0.25; BIM with 20 iterations at eps 0.05 (doubling check); DeepFool (20 iterations); noise at
#   eps 2 (the budget DeepFool's mean L-inf is compared with).
# Every job of a fold attacks the same N test segments (stratified by gender x emotion, attack.sample_seed=0).
#   scripts/checklist_study.sh                                   # shared EmoDB (default), folds 0-4
#   DATA="dataset=synthetic" N=20 EPOCHS=10 scripts/checklist_study.sh   # the embedded corpus
# then: python -m ser_attacks.report --dataset emodb --out reports/emodb_checklist (recipes/emodb_checklist/README.md).
# HYDRA_EXTRA: more overrides for every sweep (e.g. tracking.artifact_root=..., hydra.sweep.dir=...).
set -euo pipefail
DATA=${DATA:-dataset=emodb dataset.root=${EMODB:-/work/shared/data/emodb}}
FOLDS=${FOLDS:-0 1 2 3 4}
COMMON="$DATA split=speaker_cv model=final train.max_epochs=${EPOCHS:-4}
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
  run split.fold=$f attack=noise attack.eps=2.0 attack.max_iter=20     # max_iter: as the other noise runs (unused)
done
