#!/usr/bin/env bash
# Adversarial audio on shared EmoDB (issue 18): waveform attacks at 20/30/40 dB SNR, and spectrogram attacks
# resynthesized as sound (realized accuracy, SNR), then the report. Reuses the EmoDB final model trained with
# train.max_epochs=12 seed=0 when $SER_ATTACKS_CACHE holds it (else trains it once, ~30 min on 2 cores).
#   SER_ATTACKS_CACHE=/work/cache MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db nice -n 19 scripts/audio_emodb.sh
set -euo pipefail
PY=${PYTHON:-python}
ROOT=${EMODB_ROOT:-/work/shared/data/emodb}
COMMON=(dataset=emodb "dataset.root=$ROOT" train.max_epochs=12 seed=0 attack.n_samples=40 progress=false
        features.n_jobs=1 attack.verbose=false train.verbose=0)
run() { echo "== $*"; "$PY" -m ser_attacks -m "$@" "${COMMON[@]}"; }
# waveform attacks, budget as SNR (dB)
run input=waveform attack=pgd attack.snr_db=20,30,40
run input=waveform attack=fgsm attack.snr_db=20,30,40
# spectrogram attacks (the paper's), each resynthesized as audio and re-classified (input.realize=true)
run attack=fgsm attack.eps=0.05,0.25
run attack=bim attack.eps=0.05,0.25 attack.eps_step=0.01
run attack=deepfool
run attack=cw_l2
run attack=jsma
