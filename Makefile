# ser-attacks — every entry point a researcher needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TF_EXTRA ?= cpu
UI_PORT ?= 5000
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_TRACKING_URI

.PHONY: help install demo sweep test test-fast lint ui screenshots clean-outputs lock

# `make help` lists the targets with a `## text`, under the `##@ Section` line above them; sections with the same
# title are listed together, in the order they first appear: the order of the headers just below.
##@ Start here
##@ Experiments: the paper grid, the study, model selection
##@ Results: MLflow, reports, figures
##@ Tests and code quality
##@ Benchmarks and data
##@ Containers and clusters
##@ Housekeeping
##@ Start here
help:  ## this list, by purpose
	@awk 'BEGIN { FS = ":.*## " } \
		/^##@ / { sec = substr($$0, 5); if (!(sec in seen)) { seen[sec] = 1; order[++n] = sec }; next } \
		/^[a-zA-Z0-9_-]+:.*## / { if (sec == "") sec = "Other"; if (!(sec in seen)) { seen[sec] = 1; order[++n] = sec }; \
			rows[sec] = rows[sec] sprintf("  make %-20s %s\n", $$1, $$2) } \
		END { for (i = 1; i <= n; i++) printf "%s%s:\n%s", (i > 1 ? "\n" : ""), order[i], rows[order[i]] }' $(MAKEFILE_LIST)
	@echo; echo "One job or sweep directly: python -m ser_attacks --help"

$(VENV)/.installed: pyproject.toml constraints.txt constraints-gpu.txt
	@command -v $(PYTHON) >/dev/null || { echo "Need $(PYTHON) (Python 3.11). Set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -c constraints-gpu.txt -e ".[$(TF_EXTRA),test]"
	touch $@

install: $(VENV)/.installed  ## create .venv and install the pinned dependencies

demo: install  ## embedded corpus → train the default model once → FGSM/BIM sweep → MLflow + report
	$(PY) -m ser_attacks -m experiment=demo $(ARGS)
	@echo; echo "Done. Browse the runs with: make ui   (the sweep's report.html is also in its parent run's artifacts)"

##@ Tests and code quality
test: install  ## every test, as CI runs it (tiny configs, embedded corpus); prints the 20 slowest
	$(PY) -m pytest -q --durations=20 $(ARGS)

test-fast: install  ## the inner loop: unit tests only (no e2e / integration markers; < 3 min on 2 cores)
	$(PY) -m pytest -q -m "not e2e and not integration" --durations=10 $(ARGS)

lint: install  ## ruff check of the whole repository (rules: pyproject.toml [tool.ruff]); CI runs it first
	$(VENV)/bin/ruff check .

##@ Results: MLflow, reports, figures
ui: install  ## MLflow UI on 127.0.0.1 for the local sqlite DB (prints the link to the runs table)
	@$(PY) -m ser_attacks.tracking --port $(UI_PORT)
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --default-artifact-root ./mlruns \
		--host 127.0.0.1 --port $(UI_PORT) --workers 1

screenshots: install  ## README images: the runs table + report of a sweep, in headless Chromium (ARGS="--sweep <id>")
	$(PY) -m ser_attacks.browser --out docs/img $(ARGS)

##@ Housekeeping
lock:  ## re-pin constraints.txt from the current venv
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean-outputs:  ## delete run outputs (multirun/, outputs/, mlruns/, mlflow.db) — not the caches
	rm -rf multirun outputs mlruns mlflow.db

.PHONY: bench-features bench-memory describe-real
##@ Benchmarks and data
bench-features: install  ## cold vs warm feature extraction on the shared EmoDB (fresh temp cache)
	$(PY) benchmarks/features.py $(ARGS)

bench-memory: install  ## peak memory of an attack job's data stage: memory-mapped vs all rows (shared EmoDB)
	$(PY) benchmarks/data_memory.py $(ARGS)

describe-real: install  ## Tables 8-10 equivalents for the shared real corpora (../shared/data)
	@for d in emodb emovo ravdess; do $(PY) -m ser_attacks.data describe dataset=$$d $(ARGS); done

# ---- attack grid and estimator benchmark ----------------------------------------------------
DATASET ?= synthetic

.PHONY: paper-grid bench-estimator bench-grid bench-attack-memory bench-min-norm bench-model

##@ Experiments: the paper grid, the study, model selection
paper-grid: install  ## the paper's whole attack grid as ONE sweep, one parent run (DATASET=..., ARGS=attack.n_samples=40)
	$(PY) -m ser_attacks -m experiment=paper_grid dataset=$(DATASET) $(ARGS)

##@ Benchmarks and data
bench-estimator: install  ## stock vs compiled ART estimator on the final model (ARGS="--n 16 --repeats 5")
	$(PY) benchmarks/estimator.py $(ARGS)

bench-model: install  ## the final model, stock vs fast form: profile, training step, forward(+backward) (ARGS="--repeats 7")
	$(PY) benchmarks/model_speed.py $(ARGS)

bench-grid: install  ## the paper grid, stock ART vs ours, trained model + shared EmoDB (ARGS="--n 2 --repeats 1"; --model-form: stock vs fast model form)
	$(PY) benchmarks/grid.py $(ARGS)

bench-attack-memory: install  ## peak RSS of each attack at two test sizes, same attack.batch_size
	$(PY) benchmarks/attack_memory.py $(ARGS)

bench-min-norm: install  ## one FMN curve vs the five-budget BIM sweep, same segments: time ratio + validation (ARGS="--n 24")
	$(PY) benchmarks/min_norm.py $(ARGS)

# ---- containers and the shared tracking server (docker/) -------------------------------------
# Compose v2 (`docker compose`); POSTGRES_PASSWORD must be set (no default). PYTHON_IMAGE=... builds on
# another base (a registry mirror's python:3.11 image); POSTGRES_IMAGE=... for the database likewise.
COMPOSE := docker compose -f docker/compose.yaml
DOCKER_BUILD_ARGS = $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE))
.PHONY: docker-build docker-gpu docker-cpu server-up server-down docker-smoke docker-gpu-image docker-tools

##@ Containers and clusters
docker-build:  ## build the GPU image (ser-attacks:gpu) and the CPU image used by the server
	docker build -f docker/Dockerfile --build-arg TF_EXTRA=gpu $(DOCKER_BUILD_ARGS) -t ser-attacks:gpu .
	docker build -f docker/Dockerfile --build-arg TF_EXTRA=cpu $(DOCKER_BUILD_ARGS) -t ser-attacks:cpu .

docker-gpu:  ## run a sweep in the GPU container against the shared server (ARGS="-m attack=fgsm,bim ...")
	$(COMPOSE) --profile gpu run --rm runner $(ARGS)

docker-cpu:  ## the same in the CPU container (no GPU needed)
	$(COMPOSE) --profile cpu run --rm runner-cpu $(ARGS)

docker-smoke:  ## build the CPU image, run a sweep in it, then in the compose stack against the server (docker/smoke.sh)
	bash docker/smoke.sh

docker-gpu-image:  ## build the GPU image (TF_EXTRA=gpu) and run a sweep in it: on the GPU with --gpus all where the host has one, else on the CPU (not in CI: 8 GB, see docs/scaling-out.md)
	SMOKE_VARIANT=gpu bash docker/smoke.sh

docker-tools:  ## root, Debian: docker.io, debootstrap and Compose v2 for docker-smoke (docker/install-tools.sh)
	PYTHON=$(if $(wildcard $(PY)),$(PY),python3) bash docker/install-tools.sh

server-up:  ## PostgreSQL + MLflow server; UI on http://127.0.0.1:5000; then MLFLOW_TRACKING_URI=http://127.0.0.1:5000
	$(COMPOSE) up -d --wait postgres mlflow

server-down:  ## stop the server (data stays in the named volumes)
	$(COMPOSE) down

# ---- cross-run report (ser_attacks/report) ---------------------------------------------------
.PHONY: report
##@ Results: MLflow, reports, figures
report: install  ## tables + figures + statistics from MLflow runs (ARGS="--sweep <parent_run_id> --out reports/x")
	$(PY) -m ser_attacks.report $(ARGS)

# ---- Ray launcher, installed beside the venv (it pins ray<3 and cloudpickle<3) -----------------
RAY_PKGS ?= .ray-pkgs
.PHONY: ray-pkgs
##@ Containers and clusters
ray-pkgs: install  ## hydra-ray-launcher + ray into .ray-pkgs/ (use: PYTHONPATH=.ray-pkgs python -m ser_attacks -m hydra/launcher=ray_local ...)
	@# The project's pins hold here too (an unpinned hydra-core 1.3.8 in .ray-pkgs shadowed the venv's
	@# 1.3.2 and refused hydra's own sweeper); only cloudpickle differs (ray needs <3).
	grep -v '^cloudpickle==' constraints.txt > $(RAY_PKGS).constraints.txt
	$(PY) -m pip install -q --target $(RAY_PKGS) -c $(RAY_PKGS).constraints.txt "hydra-ray-launcher==1.2.2" "ray[default]==2.60.0" "cloudpickle==2.2.1"
	rm -f $(RAY_PKGS).constraints.txt

# ---- model selection (models, training, Optuna) -------------------------------------------------
.PHONY: architecture-study normalization-study tune
##@ Experiments: the paper grid, the study, model selection

architecture-study: install  ## paper Table 2: m1-m7 x datasets x 3 seeds, training only (ARGS="dataset=emodb ...")
	$(PY) -m ser_attacks -m experiment=architecture_study $(ARGS)

normalization-study: install  ## paper Table 1: 8 normalizations x datasets x 3 seeds with m1, training only
	$(PY) -m ser_attacks -m experiment=normalization_study $(ARGS)

tune: install  ## Optuna search (sqlite optuna.db, resumable) → conf/hparams/<study>.yaml (ARGS="dataset=emodb tune.n_trials=30")
	$(PY) -m ser_attacks.tune $(ARGS)

# ---- the study (issue 17): one corpus at a time, all speaker folds, the paper grid + references -----
# DATASET=emodb|emovo|ravdess; ROOT=<corpus folder> (default: the dataset config's root); N=attack.n_samples
# per fold (default: the whole test split of each fold; recipes/study/README.md budgets it).
STUDY_OUT ?= results/study/$(DATASET)
STUDY_ROOT_ARG = $(if $(ROOT),dataset.root=$(ROOT))
STUDY_N_ARG = $(if $(N),attack.n_samples=$(N))
STUDY_EXPERIMENT ?= study
# study (protocol v2, issue 26): ser_attacks.split.STUDY_FOLDS (EMOVO leave-one-speaker-out) x SEEDS; study-v1: DEFAULT_FOLDS
SEEDS ?= 42,43,44
STUDY_K = $(shell $(PY) -c "from ser_attacks.split import STUDY_FOLDS as F; print(F.get('$(DATASET)', 0))")
# every fold by default; FOLDS=2 SEEDS=42: one piece (a fold and seed: its model, its attacks), merged into the committed files
FOLDS ?= $(shell $(PY) -c "from ser_attacks.split import STUDY_FOLDS as F; print(','.join(map(str, range(F.get('$(DATASET)', 0)))))")
# the study's normalization where not the default (ser_attacks.normalization.STUDY_NORMALIZATION: EMOVO speaker_std)
STUDY_NORM_NAME = $(shell $(PY) -c "from ser_attacks.normalization import STUDY_NORMALIZATION as N; print(N.get('$(DATASET)', ''))")
STUDY_NORM = $(if $(STUDY_NORM_NAME),normalization=$(STUDY_NORM_NAME))
STUDY_DISK = tracking.save_x_adv=false   # ~10 MB per run of x_adv, ~30 GB over the study; no report reads it
STUDY_MODELS_EXPERIMENT = study-models$(if $(STUDY_NORM_NAME),-$(subst _,-,$(STUDY_NORM_NAME)))
STUDY_V1_FOLDS = $(shell $(PY) -c "from ser_attacks.split import DEFAULT_FOLDS as F; print(','.join(map(str, range(F.get('$(DATASET)', 0)))))")
.PHONY: study study-v1 study-models study-leaky study-leaky-v1 study-export study-report study-v2-findings
##@ Experiments: the paper grid, the study, model selection

study: install  ## the study (v2): all speaker folds x SEEDS x the study grid (conf/experiment/study.yaml), then export to results/study_v2/DATASET (DATASET=emodb N=24 ROOT=...)
	@test "$(DATASET)" != synthetic || { echo "make study needs DATASET=emodb|emovo|ravdess"; exit 2; }
	$(PY) -m ser_attacks -m experiment=study dataset=$(DATASET) +hparams=$(DATASET)_paper split.n_folds=$(STUDY_K) \
		split.fold=$(FOLDS) seed=$(SEEDS) $(STUDY_NORM) $(STUDY_DISK) $(STUDY_ROOT_ARG) $(STUDY_N_ARG) $(ARGS)
	$(MAKE) study-export DATASET=$(DATASET) STUDY_EXPERIMENT=study-v2 STUDY_OUT=results/study_v2/$(DATASET) EXPORT_MERGE=--merge

study-v1: install  ## study v1 as in results/study (validation fold, val_loss, one seed, EMOVO 3 folds), then export
	@test "$(DATASET)" != synthetic || { echo "make study-v1 needs DATASET=emodb|emovo|ravdess"; exit 2; }
	$(PY) -m ser_attacks -m experiment=study_v1 dataset=$(DATASET) +hparams=$(DATASET)_paper split.fold=$(STUDY_V1_FOLDS) \
		$(STUDY_ROOT_ARG) $(STUDY_N_ARG) $(ARGS)
	$(MAKE) study-export DATASET=$(DATASET)

# the table adds this store's models to the committed ones (--from): a machine that lost its MLflow store adds its piece
study-models: install  ## the study's models alone (v2 rule): folds x SEEDS, clean accuracy + curves → recipes/speaker_independent/DATASET
	@test "$(DATASET)" != synthetic || { echo "make study-models needs DATASET=emodb|emovo|ravdess"; exit 2; }
	$(PY) -m ser_attacks -m experiment=study_models dataset=$(DATASET) +hparams=$(DATASET)_paper split.n_folds=$(STUDY_K) \
		split.fold=$(FOLDS) seed=$(SEEDS) $(STUDY_NORM) tracking.experiment=$(STUDY_MODELS_EXPERIMENT) $(STUDY_ROOT_ARG) $(ARGS)
	$(PY) scripts/speaker_independent.py --experiment $(STUDY_MODELS_EXPERIMENT) --dataset $(DATASET) --out recipes/speaker_independent/$(DATASET) \
		$(if $(wildcard recipes/speaker_independent/$(DATASET)/models.csv),--from recipes/speaker_independent/$(DATASET))

study-leaky: install  ## study v2's leaky comparison (split=paper), strongest config per attack x SEEDS, then export to results/study_v2/DATASET
	@test "$(DATASET)" != synthetic || { echo "make study-leaky needs DATASET=emodb|emovo|ravdess"; exit 2; }
	$(PY) -m ser_attacks -m experiment=study_leaky dataset=$(DATASET) +hparams=$(DATASET)_paper seed=$(SEEDS) \
		$(STUDY_NORM) $(STUDY_DISK) $(STUDY_ROOT_ARG) $(STUDY_N_ARG) $(ARGS)
	$(MAKE) study-export DATASET=$(DATASET) STUDY_EXPERIMENT=study-v2 STUDY_OUT=results/study_v2/$(DATASET) EXPORT_MERGE=--merge

study-leaky-v1: install  ## study v1's leaky comparison as in results/study (v1 training config, one seed), then export
	@test "$(DATASET)" != synthetic || { echo "make study-leaky-v1 needs DATASET=emodb|emovo|ravdess"; exit 2; }
	$(PY) -m ser_attacks -m experiment=study_leaky_v1 dataset=$(DATASET) +hparams=$(DATASET)_paper \
		$(STUDY_ROOT_ARG) $(STUDY_N_ARG) $(ARGS)
	$(MAKE) study-export DATASET=$(DATASET)

# v2 merges into the committed export (EXPORT_MERGE=--merge): a machine that lost its MLflow store adds its piece
study-export: install  ## per-segment export of every FINISHED study run of DATASET → results/study/DATASET/{runs.csv,segments.csv.gz,models.csv}
	$(PY) -m ser_attacks.report.export --experiment $(STUDY_EXPERIMENT) --dataset $(DATASET) --out $(STUDY_OUT) $(EXPORT_MERGE)

##@ Results: MLflow, reports, figures
study-report: install  ## the study's report from the committed files alone (no MLflow): results/study/*/ → reports/study
	$(PY) -m ser_attacks.report --from-results $(dir $(wildcard results/study/*/runs.csv)) --out reports/study $(ARGS)

# study v2's analysis, from the committed files alone; the committed report leaves out report.html (its figures
# embedded: >2 MB) and tables/runs.csv (results/study_v2/*/runs.csv again)
STUDY_V2_RESULTS = $(patsubst %/runs.csv,%,$(wildcard results/study_v2/*/runs.csv))
study-v2-findings: install  ## study v2's report, tables.md and findings.md (planned vs exploratory, v1 → v2 verdicts) from results/study_v2/*/ → recipes/study_v2
	$(PY) -m ser_attacks.report --from-results $(STUDY_V2_RESULTS) --plan recipes/study_v2/plan.yaml --out recipes/study_v2/report $(ARGS)
	rm -f recipes/study_v2/report/report.html recipes/study_v2/report/tables/runs.csv
	$(PY) recipes/study/tables.py --report recipes/study_v2/report --results results/study_v2 --out recipes/study_v2/tables.md
	$(PY) recipes/study/findings.py $(STUDY_V2_RESULTS) --plan recipes/study_v2/plan.yaml --verdicts recipes/study_v2/verdicts.csv \
		--compare recipes/study/verdicts_v1.csv --out recipes/study_v2/findings.md

.PHONY: defenses-table
defenses-table: install  ## the defenses recipe's table, curves and verdicts from experiment `defenses` → recipes/defenses/DATASET (DATASET=emodb)
	$(PY) -m ser_attacks.report.defenses --experiment defenses --dataset $(DATASET) --out recipes/defenses/$(DATASET) $(ARGS)
