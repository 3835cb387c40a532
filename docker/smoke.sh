#!/usr/bin/env bash
# The container stack, built and run for real (make docker-smoke; CI runs it after the test suite).
#  1. base images: python:3.11-slim-bookworm and postgres:16-bookworm are pulled (with retries); where
#     they cannot be pulled, local stand-ins are built from Debian's packages (debootstrap with python3;
#     docker/postgres-standin from Debian's postgresql) and the script says so;
#  2. builds the CPU image (docker/Dockerfile, TF_EXTRA=cpu);
#  3. runs one small sweep in it (tiny model, embedded corpus, FGSM on 4 segments) with the three volumes
#     /work/data, /work/cache, /work/runs bind-mounted, and checks that its runs FINISHED and that the
#     model and the report landed in /work/runs;
#  4. brings up the compose stack (PostgreSQL + MLflow server), runs the same sweep in the CPU runner
#     against the server, and checks through the server that the runs FINISHED and that their artifacts
#     (the model, the sweep's report.html) arrived in the server's artifact store.
# SMOKE_VARIANT=gpu (make docker-gpu-image; not in CI: an 8 GB image, see docs/scaling-out.md): steps 1-3
# for the GPU image instead (TF_EXTRA=gpu, tag $GPU_IMAGE), no compose stack. Step 3 runs with --gpus all
# where the host has a GPU for containers (nvidia runtime in `docker info`, or nvidia-smi; SMOKE_GPUS=1/0
# decides otherwise) and checks that TensorFlow and the attack runs' `device` tag name the GPU; without
# one it checks the CPU fallback (the CUDA build of TensorFlow, no GPU found, the runs on the CPU).
# Starts dockerd (--storage-driver=vfs) when no daemon answers and stops it at the end; removes its
# containers, volumes and network whatever happens (trap). Images are kept (SMOKE_KEEP_IMAGES=0 removes
# them), so a rerun reuses Docker's build cache.
# Exit 0: passed; 77: skipped, with the reason (no Docker daemon could be reached or started, not enough
# free disk); anything else: failed.
# Settings (environment): SMOKE_MIN_FREE_GB (default 25; 30 for the GPU image), SMOKE_BUILD=0 (use the
# image as it is), CPU_IMAGE (ser-attacks:cpu), GPU_IMAGE (ser-attacks:gpu), SMOKE_START_DOCKERD=0 (never
# start a daemon), SMOKE_WORK (scratch folder),
# SMOKE_PROJECT (compose project name, ser-attacks-smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

CPU_IMAGE=${CPU_IMAGE:-ser-attacks:cpu}
GPU_IMAGE=${GPU_IMAGE:-ser-attacks:gpu}
VARIANT=${SMOKE_VARIANT:-cpu}
case "$VARIANT" in
  cpu) IMAGE=$CPU_IMAGE; MIN_FREE_DEFAULT=25 ;;
  # under vfs: the 7.6 GB pip layer, then two more full copies for the one container (init + rw layer)
  gpu) IMAGE=$GPU_IMAGE; MIN_FREE_DEFAULT=30 ;;
  *) echo "SMOKE_VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 2 ;;
esac
PY_OFFICIAL=python:3.11-slim-bookworm
PG_OFFICIAL=postgres:16-bookworm
PY_LOCAL=ser-attacks-base/python:3.11-bookworm
PG_LOCAL=ser-attacks-base/postgres:15-bookworm
PROJECT=${SMOKE_PROJECT:-ser-attacks-smoke}
MIN_FREE_GB=${SMOKE_MIN_FREE_GB:-$MIN_FREE_DEFAULT}
SKIP=77
T0=$(date +%s)
STARTED_DOCKERD=""
COMPOSE_UP=""
JOB_ARGS=(-m attack=fgsm attack.n_samples=4 model=tiny train=fast dataset.generate.n_speakers=4
          dataset.generate.n_sentences=3 progress=false features.n_jobs=1 attack.verbose=false train.verbose=0)

exec 3>&1   # the log goes to the script's stdout even from commands whose own output is silenced
log() { echo "[docker-smoke +$(( $(date +%s) - T0 ))s] $*" >&3; }
skip() { log "SKIPPED: $*"; exit "$SKIP"; }
die() { log "FAILED: $*"; exit 1; }
# timed <label> <seconds> cmd...: runs cmd under a time limit and logs how long it took
timed() {
  local label=$1 limit=$2 t rc=0; shift 2; t=$(date +%s)
  timeout --kill-after=30 "$limit" "$@" &   # in the background: a TERM to this script is handled at once
  CHILD=$!; wait "$CHILD" || rc=$?; CHILD=""
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then die "$label: no result after ${limit}s (time limit)"; fi
  [ "$rc" = 0 ] || die "$label: exit code $rc"
  log "$label: done in $(( $(date +%s) - t ))s"
}

cleanup() {
  local rc=$?
  set +e
  [ -n "${CHILD:-}" ] && { kill "$CHILD"; wait "$CHILD"; } 2>/dev/null
  if [ -n "$COMPOSE_UP" ]; then
    [ "$rc" = 0 ] || { log "server logs (last 40 lines):"; compose logs --no-color --tail=40 mlflow postgres 2>&1; }
    compose --profile cpu down -v --remove-orphans >/dev/null 2>&1
  fi
  [ -n "${JOB_CONTAINER:-}" ] && docker rm -f "$JOB_CONTAINER" >/dev/null 2>&1
  if [ "${SMOKE_KEEP_IMAGES:-1}" = 0 ]; then
    docker rmi -f "$IMAGE" "$PY_LOCAL" "$PG_LOCAL" >/dev/null 2>&1; docker image prune -f >/dev/null 2>&1
  fi
  if [ -n "${WORK:-}" ]; then   # an interrupted debootstrap leaves proc/sys mounted in its root
    awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null
    [ -z "${SMOKE_WORK:-}" ] && rm -rf "$WORK"
  fi
  if [ -n "$STARTED_DOCKERD" ]; then
    log "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
    kill "$STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- a daemon and the tools -------------------------------------------------------------------
command -v docker >/dev/null || skip "no docker client (Debian: apt-get install docker.io)"
if ! docker info >/dev/null 2>&1; then
  [ "${SMOKE_START_DOCKERD:-1}" = 1 ] || skip "no Docker daemon answers and SMOKE_START_DOCKERD=0"
  command -v dockerd >/dev/null || skip "no Docker daemon answers and dockerd is not installed (apt-get install docker.io)"
  [ "$(id -u)" = 0 ] || skip "no Docker daemon answers, and starting one needs root"
  DLOG=${TMPDIR:-/tmp}/ser-attacks-smoke-dockerd.log
  log "no Docker daemon answers: starting dockerd --storage-driver=vfs (log: $DLOG)"
  dockerd --storage-driver=vfs >"$DLOG" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    tail -5 "$DLOG" | sed 's/^/  dockerd: /'
    kill "$STARTED_DOCKERD" 2>/dev/null; STARTED_DOCKERD=""
    skip "no Docker daemon could be started (dockerd log above)"
  fi
fi
[ "$VARIANT" = gpu ] || docker compose version >/dev/null 2>&1 \
  || die "Compose v2 ('docker compose') is missing: docker/install-tools.sh installs it"
ROOTDIR=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)
d=$ROOTDIR; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
FREE_GB=$(( $(df -Pk "$d" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
[ "$FREE_GB" -ge "$MIN_FREE_GB" ] \
  || skip "needs about ${MIN_FREE_GB} GB free for Docker's storage ($ROOTDIR); ${FREE_GB} GB free"
log "docker $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}')), $(docker compose version --short 2>/dev/null || echo compose v2); ${FREE_GB} GB free in $ROOTDIR"

# BuildKit where the client has it (buildx, or Debian's docker.io CLI 20.10 with BuildKit built in): under
# vfs the legacy builder copies the whole image for every instruction, ENV and USER included (2-3 minutes
# each for a 670 MB image on a loaded 2-core machine); BuildKit makes no layer for those.
if docker buildx version >/dev/null 2>&1; then BUILDER=(env DOCKER_BUILDKIT=1 docker)
elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
  BUILDER=(env DOCKER_BUILDKIT=1 /usr/bin/docker)
else BUILDER=(docker); log "no BuildKit client: the legacy builder (slow under vfs)"; fi

# ---- base images: the official ones, else local stand-ins ----------------------------------------
pull() {  # pull <image>: 3 tries (transient failures), each under 10 minutes
  local i
  for i in 1 2 3; do
    timeout 600 docker pull -q "$1" >/dev/null 2>&1 && return 0
    [ "$i" = 3 ] || sleep $(( i * 5 ))
  done
  return 1
}
debian_mirror() {  # the machine's own Debian mirror (apt sources), else deb.debian.org
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
build_python_base() {  # Debian bookworm (Python 3.11) with a venv so that python and pip are on PATH
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  local root mirror; root=$WORK/rootfs; mirror=$(debian_mirror)
  log "building the local base $PY_LOCAL: debootstrap --variant=minbase bookworm from $mirror"
  local t; t=$(date +%s)
  timeout 1200 debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed (or ran past 1200s)"; }
  log "debootstrap: done in $(( $(date +%s) - t ))s"
  chroot "$root" python3 -m venv /opt/venv
  # the machine's CA bundle: pip inside the build verifies the package index with it (TLS-inspecting proxies)
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV VIRTUAL_ENV=/opt/venv LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    -c 'CMD ["python3"]' - "$PY_LOCAL" >/dev/null
  rm -rf "$root"
}

WORK=${SMOKE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ser-attacks-smoke.XXXXXX")}
mkdir -p "$WORK"
if docker image inspect "$PY_OFFICIAL" >/dev/null 2>&1 || pull "$PY_OFFICIAL"; then
  PYTHON_IMAGE=$PY_OFFICIAL
elif docker image inspect "$PY_LOCAL" >/dev/null 2>&1; then
  log "$PY_OFFICIAL cannot be pulled: using the local base $PY_LOCAL built earlier (docker rmi it to rebuild)"
  PYTHON_IMAGE=$PY_LOCAL
else
  log "$PY_OFFICIAL cannot be pulled: building a local stand-in from Debian's packages"
  build_python_base
  PYTHON_IMAGE=$PY_LOCAL
fi
if [ "$VARIANT" = gpu ]; then
  POSTGRES_IMAGE=""   # no compose stack for the GPU image
elif docker image inspect "$PG_OFFICIAL" >/dev/null 2>&1 || pull "$PG_OFFICIAL"; then
  POSTGRES_IMAGE=$PG_OFFICIAL
else
  log "$PG_OFFICIAL cannot be pulled: building a stand-in from Debian's postgresql (docker/postgres-standin)"
  # on the Python base (any Debian bookworm image with apt works)
  timed "postgres stand-in image" 1800 "${BUILDER[@]}" build -q -t "$PG_LOCAL" --build-arg BASE_IMAGE="$PYTHON_IMAGE" \
    docker/postgres-standin >/dev/null
  POSTGRES_IMAGE=$PG_LOCAL
fi
export PYTHON_IMAGE POSTGRES_IMAGE CPU_IMAGE

# ---- the image (CPU, or GPU with SMOKE_VARIANT=gpu) -----------------------------------------------
if [ "${SMOKE_BUILD:-1}" = 1 ]; then
  log "building $IMAGE (docker/Dockerfile, TF_EXTRA=$VARIANT, PYTHON_IMAGE=$PYTHON_IMAGE)"
  timed "${VARIANT^^} image build" 3600 "${BUILDER[@]}" build -q -f docker/Dockerfile --build-arg TF_EXTRA="$VARIANT" \
    --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" -t "$IMAGE" . >/dev/null
else
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "SMOKE_BUILD=0 but there is no image $IMAGE"
  log "SMOKE_BUILD=0: using $IMAGE as it is"
fi
log "$IMAGE: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"

# the GPU image: on the GPU where the host lends one to containers, else the CPU fallback is what is checked
RUN_GPU=()
EXPECT_DEVICE=""
if [ "$VARIANT" = gpu ]; then
  if [ -n "${SMOKE_GPUS:-}" ]; then use_gpu=$SMOKE_GPUS
  elif docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia || command -v nvidia-smi >/dev/null; then use_gpu=1
  else use_gpu=0; fi
  if [ "$use_gpu" = 1 ]; then
    RUN_GPU=(--gpus all); EXPECT_DEVICE=GPU
    log "a GPU for containers: the sweep runs with --gpus all and must run on it"
  else
    EXPECT_DEVICE=CPU
    log "no GPU for containers here (no nvidia runtime, no nvidia-smi): checking the CPU fallback only"
  fi
fi

# ---- the checks, run inside the image (its python, its mlflow) ------------------------------------
CHECK=$(cat <<'PYEOF'
import os, sys
import mlflow
from mlflow import MlflowClient
uri = os.environ["MLFLOW_TRACKING_URI"]
c = MlflowClient(uri)
exp = c.get_experiment_by_name("ser-attacks")
assert exp is not None, f"no experiment 'ser-attacks' in {uri}"
runs = c.search_runs([exp.experiment_id], max_results=100)
status = {r.info.run_id: r.info.status for r in runs}
bad = [f"{r.info.run_name}: {r.info.status}" for r in runs if r.info.status != "FINISHED"]
assert runs and not bad, f"runs not FINISHED in {uri}: {bad or 'no runs'}"
kinds = {r.data.tags.get("run_type", "?") for r in runs}
def files(run_id, path=None):
    out = []
    for f in c.list_artifacts(run_id, path):
        out += files(run_id, f.path) if f.is_dir else [f.path]
    return out
arts = {r.info.run_id: files(r.info.run_id) for r in runs}
reports = [p for a in arts.values() for p in a if p.endswith("report.html")]
assert reports, f"no report.html among the runs' artifacts in {uri}"
models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
assert models, f"no logged model in {uri}"
m = models[0]
mfiles = [f.path for f in c.list_logged_model_artifacts(m.model_id)]
assert mfiles, f"the logged model {m.model_id} has no artifacts in {uri}"
expect = os.environ.get("EXPECT_DEVICE")
if expect:   # the runs' `device` tag: "GPU: <name>" or "CPU: <model> (<n> cores)"
    devices = {r.data.tags["device"] for r in runs if "device" in r.data.tags}
    assert devices and all(d.startswith(expect) for d in devices), f"expected runs on the {expect}: {devices or 'no device tag'}"
    print(f"device of the attack runs: {sorted(devices)}")
n_files = sum(map(len, arts.values()))
print(f"OK {uri}: {len(runs)} runs FINISHED (types {sorted(kinds)}), {n_files} run artifacts "
      f"incl. {reports[0]}, logged model {m.name} ({m.model_id}) with {len(mfiles)} files")
PYEOF
)

# ---- 3. one small sweep in the image, the three volumes bind-mounted -------------------------------
# with EXPECT_DEVICE (the GPU image), TensorFlow's own view first: CUDA build, the devices it finds
TFCHECK=$(cat <<'PYEOF'
import os, tensorflow as tf
info = tf.sysconfig.get_build_info()
gpus = tf.config.list_physical_devices("GPU")
print(f"tensorflow {tf.__version__}, CUDA build {info.get('is_cuda_build')} (CUDA {info.get('cuda_version')}, "
      f"cuDNN {info.get('cudnn_version')}); devices {[d.name for d in tf.config.list_physical_devices()]}")
assert info.get("is_cuda_build"), "the GPU image's TensorFlow is not a CUDA build"
assert bool(gpus) == (os.environ["EXPECT_DEVICE"] == "GPU"), f"GPUs found: {gpus}; expected the {os.environ['EXPECT_DEVICE']}"
PYEOF
)
for v in data cache runs; do mkdir -p "$WORK/$v"; done
chown -R 1000:1000 "$WORK/data" "$WORK/cache" "$WORK/runs" 2>/dev/null || chmod -R a+rwX "$WORK/data" "$WORK/cache" "$WORK/runs"
JOB_CONTAINER=ser-attacks-smoke-job-$$
log "sweep in $IMAGE ${RUN_GPU[*]} with -v …:/work/data -v …:/work/cache -v …:/work/runs: ${JOB_ARGS[*]}"
timed "sweep in the container" 1800 docker run --rm --name "$JOB_CONTAINER" "${RUN_GPU[@]}" \
  -v "$WORK/data:/work/data" -v "$WORK/cache:/work/cache" -v "$WORK/runs:/work/runs" \
  -e CHECK="$CHECK" -e TFCHECK="$TFCHECK" -e EXPECT_DEVICE="$EXPECT_DEVICE" \
  -e MLFLOW_TRACKING_URI=sqlite:////work/runs/mlflow.db --entrypoint sh "$IMAGE" -c \
  'if [ -n "$EXPECT_DEVICE" ]; then python -c "$TFCHECK" 2>/work/runs/tfcheck.log || { tail -20 /work/runs/tfcheck.log; exit 1; }; fi
   python -m ser_attacks "$@" > /work/runs/sweep.log 2>&1 || { tail -30 /work/runs/sweep.log; exit 1; }
   python -c "$CHECK"' sh "${JOB_ARGS[@]}"
JOB_CONTAINER=""
[ -f "$WORK/runs/mlflow.db" ] && ls "$WORK"/runs/multirun/*/*/report/report.html >/dev/null 2>&1 \
  || die "the sweep's tracking DB or report is not in the /work/runs volume on the host ($WORK/runs)"
[ -n "$(ls -A "$WORK/cache")" ] || die "nothing was cached in the /work/cache volume ($WORK/cache)"
log "the host's volumes hold the results: runs/mlflow.db, runs/multirun/…/report/report.html, cache/$(ls "$WORK/cache" | head -1)"
if [ "$VARIANT" = gpu ]; then
  log "PASSED ($IMAGE on the $EXPECT_DEVICE; the compose stack is checked with the CPU image: make docker-smoke) in $(( $(date +%s) - T0 ))s"
  exit 0
fi

# ---- 4. the compose stack: PostgreSQL + MLflow server, a sweep in the CPU runner -------------------
compose() { docker compose -p "$PROJECT" -f docker/compose.yaml "$@"; }
export POSTGRES_PASSWORD
POSTGRES_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
MLFLOW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MLFLOW_PORT SER_DATA=$WORK/compose-data SER_RUNS=$WORK/compose-runs
mkdir -p "$SER_DATA" "$SER_RUNS"; chown 1000:1000 "$SER_RUNS" 2>/dev/null || chmod a+rwX "$SER_RUNS"
COMPOSE_UP=1
log "compose stack up: postgres ($POSTGRES_IMAGE) + mlflow ($CPU_IMAGE) on 127.0.0.1:$MLFLOW_PORT"
timed "compose up --wait" 900 docker compose -p "$PROJECT" -f docker/compose.yaml up -d --no-build --wait postgres mlflow
python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MLFLOW_PORT/health', timeout=10)" \
  || die "the server's UI does not answer on 127.0.0.1:$MLFLOW_PORT"
log "sweep in the runner against http://mlflow:5000 (corpus generated in /work/runs: /work/data is read-only there)"
timed "sweep in the compose runner" 1800 docker compose -p "$PROJECT" -f docker/compose.yaml --profile cpu run --rm --no-deps \
  -T -e CHECK="$CHECK" -e MLFLOW_HTTP_REQUEST_MAX_RETRIES=2 -e MLFLOW_HTTP_REQUEST_TIMEOUT=60 \
  --entrypoint sh runner-cpu -c \
  'python -m ser_attacks "$@" > /work/runs/sweep.log 2>&1 || { tail -30 /work/runs/sweep.log; exit 1; }
   python -c "$CHECK"' sh "${JOB_ARGS[@]}" paths.data_dir=/work/runs/data
n=$(compose exec -T mlflow sh -c 'find /mlartifacts -type f | wc -l')
compose exec -T mlflow sh -c 'find /mlartifacts -name report.html | grep -q .' \
  || die "no report.html in the server's artifact store (/mlartifacts)"
log "the server's artifact store (volume on /mlartifacts) holds $n files, the report among them"
log "PASSED in $(( $(date +%s) - T0 ))s"
