#!/usr/bin/env bash
# Adversarial audio on shared EmoDB (issue 18): waveform attacks at 20/30/40 dB SNR, and spectrogram attacks
# resynthesized as sound (realized accuracy, SNR). Reuses the EmoDB final model trained with
# train.max_epochs=12 seed=0 when $SER_ATTACKS_CACHE holds it (else trains it once, ~30 min on 2 cores).
# Iteration counts are cut for a shared 2-core CPU (PGD/BIM 20 steps, C&W 5 binary-search steps).
#   SER_ATTACKS_CACHE=/work/cache MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db nice -n 19 scripts/audio_emodb.sh
# then:  python -m ser_attacks.report --dataset emodb --out reports/audio_emodb
set -euo pipefail
PY=${PYTHON:-python}
ROOT=${EMODB_ROOT:-/work/shared/data/emodb}
COMMON=(dataset=emodb "dataset.root=$ROOT" train.max_epochs=12 seed=0 attack.n_samples=40 progress=false
        features.n_jobs=1 attack.verbose=false train.verbose=0)
run() { echo "== $*"; "$PY" -m ser_attacks -m "$@" "${COMMON[@]}"; }
# waveform attacks, budget as SNR (dB); PGD: 20 steps of 2.5 eps / 20 (Madry et al.'s rule), random start
run input=waveform attack=fgsm attack.snr_db=20,30,40
# spectrogram attacks (the paper's), each resynthesized as audio and re-classified (input.realize=true)
run attack=fgsm attack.eps=0.05,0.25
run attack=deepfool
run input=waveform attack=pgd attack.snr_db=20,30,40 attack.max_iter=20 input.step_ratio=0.125
run attack=bim attack.eps=0.05,0.25 attack.eps_step=0.0125 attack.max_iter=20
run attack=cw_l2 attack.binary_search_steps=5 attack.initial_const=0.01,1   # the paper's 0.01 barely moves
run attack=jsma
