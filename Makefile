# The pipeline's stages as real file targets: each reruns only when its inputs changed.
#   make run-all            data -> train (with gradient probes) -> report, for EXP (default);
#                           prints the report's abstract and where the report is
#   make run-all EXP=quick  the same for experiments/quick.yaml
#   make status EXP=quick   where each run of quick stands (finished, stale, failed, ...)
#   make run-all EXP=default SET="training.max_steps=500 seeds=[0]"
#                           the same for default.yaml with those settings, written to its own
#                           file experiments/default-set-<checksum of SET>.yaml and run by name
#   make install            .venv with the pinned dependencies: PyTorch's CPU build on Linux,
#                           PyPI's torch on macOS; TORCH=cuda for PyTorch's CUDA build
#   make clean EXP=quick    remove quick's data/, results/ and reports/ (plain make clean removes
#                           every experiment's and the tracking store mlruns/, with every run)
# Make refuses a variable on its command line that it does not take (below), naming it.
# Run `make help` for every target and variable.

# The variables make takes from its command line, each with what it does (make help prints
# these lines). Make refuses any other, naming it: a misspelt JOBS=3 is never silently ignored.
## EXP=name                    the experiment file experiments/<name>.yaml (default: default)
## SET="path=value ..."        EXP's settings changed: the stages run EXP's file with these
##                             settings, written to experiments/<EXP>-set-<checksum of SET>.yaml
## JOBS=n                      worker processes of train and replicate (default: the cores)
## EXECUTOR=local|ray          where runs execute (default: local)
## CLAIM=name                  make replicate: this claim (or part, claim.part) only, whatever its
##                             estimated time
## ALL=1                       make replicate: every claim and part, whatever its estimated time
## BUDGET=minutes              make replicate: minutes of training (default: 15) for the claims,
##                             then the parts, cheapest first, each whose estimate here fits
## PLAN=1                      make replicate: print the estimates and what would run; run nothing
## TORCH=cpu|cuda              make install: PyTorch's CPU build (default) or its CUDA build (Linux)
## TORCH_INDEX=url             make install: the index to take that build from (default: PyTorch's
##                             https://download.pytorch.org/whl/cpu, or .../cu130 with TORCH=cuda)
## OS=name                     make install: the system to install for (default: uname -s)
## PYTHON=python3              the Python 3.11+ that makes .venv and reads pipeline/stages.py
## EXTRAS=dev                  make install: the optional dependencies to add
## VENV=.venv                  the virtual environment every target installs into and runs from
## HOST=127.0.0.1              make mlflow-ui and mlflow-server: the address to serve on
## PORT=5000                   make mlflow-ui and mlflow-server: the port to serve on
## BACKEND_STORE_URI=uri       make mlflow-server: where the server keeps runs
## ARTIFACTS_DESTINATION=path  make mlflow-server: where the server keeps artifacts
## ALLOWED_HOSTS=list          make mlflow-server: the Host headers it answers
## WORKERS=n                   make mlflow-server: its worker processes
VARIABLES := $(shell sed -n 's/^## \([A-Z_]*\)=.*/\1/p' $(lastword $(MAKEFILE_LIST)))
UNKNOWN   := $(sort $(filter-out $(VARIABLES),$(foreach v,$(.VARIABLES),\
	$(if $(findstring command line,$(origin $(v))),$(v)))))
# a lower-case name is an experiment's setting (training.max_steps=500), which goes in SET
SETTINGS  := $(foreach v,$(filter $(foreach c,a b c d e f g h i j k l m n o p q r s t u v w x y z,\
	$(c)%),$(UNKNOWN)),$(v)=$(value $(v)))
HINT      := $(if $(SETTINGS),; an experiment's settings go in SET: SET="$(strip $(SETTINGS))")
ifneq ($(UNKNOWN),)
$(error unknown variable$(if $(word 2,$(UNKNOWN)),s) on the command line: $(UNKNOWN); \
	make takes $(VARIABLES) (make help says what each does)$(HINT))
endif

EXP      ?= default
CLAIM    ?=
ALL      ?=
BUDGET   ?=
PLAN     ?=
JOBS     ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
EXECUTOR ?= local
HOST     ?= 127.0.0.1
PORT     ?= 5000
PYTHON   ?= python3

VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
RAY      := $(VENV)/.installed-ray
SERVER   := $(VENV)/.installed-server
TESTDEPS := $(VENV)/.installed-test
EXTRAS   ?= dev
# which torch build make install puts in .venv (the version is constraints.txt's): TORCH=cpu
# (default) takes PyTorch's CPU build on Linux, TORCH=cuda its CUDA build; on macOS (OS=Darwin)
# PyPI's own wheel is the only build (CPU and Apple's GPU). TORCH_INDEX: the index of PyTorch's
# builds to take it from; torch 2.13's CUDA builds are cu130 (stable: Turing to Blackwell), cu126
# (for GPUs older than Turing) and cu132 (experimental)
OS          ?= $(shell uname -s)
TORCH       ?= cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/$(if $(filter cuda,$(TORCH)),cu130,cpu)
# make mlflow-server: where the tracking server keeps runs and artifacts, which Host headers it
# answers (MLflow's default: localhost and private IP addresses), how many worker processes it
# runs (MLflow's default: 4). A PostgreSQL BACKEND_STORE_URI installs the driver (the server
# extra); leave its password out and export PGPASSWORD: the URI reaches the server through its
# environment, never a command line.
BACKEND_STORE_URI     ?= sqlite:///$(CURDIR)/mlruns/server.db
ARTIFACTS_DESTINATION ?= $(CURDIR)/mlruns/server-artifacts
ALLOWED_HOSTS         ?=
WORKERS               ?=

# the experiment the stages run: EXP, or with SET a file derived from EXP's, named by EXP and a
# checksum of SET (POSIX cksum, in hex: Make knows the name before .venv exists)
quote = '$(subst ','\'',$(1))'
BASE_FILE := experiments/$(EXP).yaml
ifeq ($(strip $(SET)),)
EXP_NAME  := $(EXP)
else
EXP_NAME  := $(notdir $(EXP))-set-$(shell printf '%s' $(call quote,$(strip $(SET))) | cksum | \
	{ read crc size; printf '%08x' "$$crc"; })
endif
EXP_FILE  := experiments/$(EXP_NAME).yaml

DATA     := data/$(EXP_NAME)/.done
RESULTS  := results/$(EXP_NAME)/sweep.json
REPORT   := reports/$(EXP_NAME)/report.html

# what each stage's output depends on (besides the experiment file and the stage before): the
# lists in pipeline/stages.py, which the sweep's code version reads too
stage_code = $(wildcard $(shell $(PYTHON) -m pipeline.stages $(1)))
DATA_CODE   := $(call stage_code,data)
TRAIN_CODE  := $(call stage_code,train)
REPORT_CODE := $(call stage_code,report)

.DEFAULT_GOAL := help
.PHONY: FORCE help install data train probe report run-all status replicate test test-fast lint \
        bench mlflow-ui mlflow-server clean

help: ## list the targets and the variables make takes
	@echo "usage: make <target> [VARIABLE=value ...]   (EXP=name picks experiments/<name>.yaml)"
	@echo "targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | \
		awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "variables (make refuses any other on its command line):"
	@sed -n 's/^## /  /p' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv and install the pinned dependencies (only when they changed; TORCH=cuda: PyTorch's CUDA build)

TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints.txt)
ifeq ($(filter cpu cuda,$(TORCH)),)
$(error TORCH=$(TORCH): expected cpu (default) or cuda)
endif
ifeq ($(OS),Darwin)
ifeq ($(TORCH),cuda)
$(error TORCH=cuda: PyTorch has no CUDA build for macOS (OS=Darwin); leave TORCH out for PyPI's torch)
endif
TORCH_SOURCE := pypi
else
TORCH_SOURCE := $(TORCH) $(TORCH_INDEX)
endif
# torch alone (--no-deps): the main install then takes its dependencies from PyPI, pinned by
# constraints.txt, whose torch==X accepts the local builds X+cpu and X+cu130 too
PIP_TORCH = $(PY) -m pip install --quiet --no-deps -c constraints.txt \
	$(if $(TORCH_CHANGED),--force-reinstall)
# Linux CPU build: first from pip's configured sources only (a machine whose pip config holds
# the wheel, as a find-links folder, needs no other index; elsewhere pip refuses at once, as PyPI
# has no X+cpu), then from PyTorch's index, which only then is ever asked
ifeq ($(TORCH_SOURCE),pypi)
INSTALL_TORCH = $(PIP_TORCH) "torch==$(TORCH_VERSION)"
else ifeq ($(TORCH),cpu)
INSTALL_TORCH = $(PIP_TORCH) "torch==$(TORCH_VERSION)+cpu" 2>/dev/null || \
	{ echo "torch $(TORCH_VERSION)+cpu: not among pip's sources; from $(TORCH_INDEX)"; \
	  $(PIP_TORCH) --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"; }
else
INSTALL_TORCH = $(PIP_TORCH) --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
endif
# the stamp holds the torch build installed: another choice (TORCH, TORCH_INDEX, OS) reinstalls
# torch, never left in place silently
TORCH_CHOICE  := torch $(TORCH_VERSION) $(TORCH_SOURCE)
ifneq ($(strip $(shell cat $(STAMP) 2>/dev/null)),$(TORCH_CHOICE))
TORCH_CHANGED := yes
endif

$(STAMP): pyproject.toml constraints.txt $(if $(TORCH_CHANGED),FORCE)
	test -x $(PY) || { $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is older than Python 3.11: set PYTHON=python3.11 (or newer)" >&2; \
		  exit 2; }; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(INSTALL_TORCH)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	echo '$(TORCH_CHOICE)' > $@

FORCE:

$(BASE_FILE):
	@echo "error: no experiment file $(BASE_FILE) (EXP=$(EXP)); see experiments/" >&2; exit 2

# SET: EXP's file with those settings, validated like any experiment file, written again when
# EXP's file or the code that writes it changes
ifneq ($(EXP_FILE),$(BASE_FILE))
$(EXP_FILE): $(BASE_FILE) $(call stage_code,derive) | $(STAMP)
	$(PY) -m pipeline derive --experiment $(BASE_FILE) --set $(call quote,$(SET)) --output $@
endif

data: $(DATA) ## write the task data for EXP (or EXP with SET's settings) under data/

$(DATA): $(EXP_FILE) $(DATA_CODE) | $(STAMP)
	$(PY) -m pipeline data --experiment $(EXP_FILE)
	touch $@

train: $(RESULTS) ## train every run of EXP (skips finished runs; JOBS=n workers)

$(RESULTS): $(DATA) $(TRAIN_CODE) | $(STAMP) $(if $(filter ray,$(EXECUTOR)),$(RAY))
	$(PY) -m pipeline train --experiment $(EXP_FILE) --jobs $(JOBS) --executor $(EXECUTOR)

probe: $(RESULTS) ## gradient probes (taken inside each training run: same as train)

report: $(REPORT) ## write reports/EXP/ (report.html, report.md, CSVs, figures) and print its abstract
	@cat $(dir $(REPORT))abstract.txt
	@echo "report: $(abspath $(REPORT))"

$(REPORT): $(RESULTS) $(REPORT_CODE) | $(STAMP)
	$(PY) -m pipeline report --experiment $(EXP_FILE)

run-all: $(REPORT) ## every stage for EXP: data, train, report, then its abstract (SET="path=value ...": EXP's file with those settings)
	@cat $(dir $(REPORT))abstract.txt
	@echo "report: $(abspath $(REPORT))"

# a question, not a stage: it reads the result files and the tracking store (never creating one)
status: $(EXP_FILE) | $(STAMP) ## say where each run of EXP stands: finished, stale (and why), failed, missing or planned; trains nothing
	$(PY) -m pipeline status --experiment $(EXP_FILE)

# each claim's stages skip finished work (data folders, runs), so a rerun resumes; the claims'
# files are validated before any work starts, and every claim's time here is estimated and
# printed before any runs
replicate: | $(STAMP) $(if $(filter ray,$(EXECUTOR)),$(RAY)) ## estimate the published claims in experiments/replications/ and their parts here, run those that fit BUDGET (CLAIM=name: one; ALL=1: all; PLAN=1: estimates only)
	$(PY) -m pipeline replicate $(if $(CLAIM),--claim $(CLAIM)) $(if $(ALL),--all) \
		$(if $(BUDGET),--budget $(BUDGET)) $(if $(PLAN),--plan) --jobs $(JOBS) --executor $(EXECUTOR)
	$(if $(PLAN),,@echo "report: $(abspath reports/replications/report.html)")

# the optional extras: Ray for EXECUTOR=ray, the PostgreSQL driver for a tracking server on
# PostgreSQL, and both for the complete test suite, which covers them
$(RAY): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),ray]"
	touch $@

$(SERVER): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),server]"
	touch $@

$(TESTDEPS): $(STAMP)  # both extras: their own stamps are current too
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),ray,server]"
	touch $@ $(RAY) $(SERVER)

test: $(TESTDEPS) ## the complete test suite, as CI runs it (installs the ray and server extras)
	$(PY) -m pytest

test-fast: $(STAMP) ## the fast tier for the edit-test loop: no training, no sweeps, no Ray
	$(PY) -m pytest -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check pipeline tests
	$(VENV)/bin/ruff format --check pipeline tests

bench: $(STAMP) ## benchmarks: pipeline vs plain PyTorch, sweep scaling, probe cost
	$(PY) -m pipeline bench

# the UI opens an experiment in model-training mode only from such an address (README)
UI_ADDRESS = http://$(if $(filter 0.0.0.0 ::,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

# the store reaches the UI through its environment: a password in MLFLOW_TRACKING_URI stays off
# every command line
mlflow-ui: $(STAMP) ## serve the MLflow UI on HOST:PORT (default 127.0.0.1:5000); prints each experiment's address
	mkdir -p mlruns
	@$(PY) -m pipeline links --address $(UI_ADDRESS)
	MLFLOW_BACKEND_STORE_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns/mlflow.db}" \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
		--default-artifact-root "$(CURDIR)/mlruns/artifacts" --host $(HOST) --port $(PORT) --workers 1

mlflow-server: export MLFLOW_BACKEND_STORE_URI = $(BACKEND_STORE_URI)
mlflow-server: $(STAMP) $(if $(filter postgresql%,$(BACKEND_STORE_URI)),$(SERVER)) ## a tracking server on HOST:PORT for Ray workers (BACKEND_STORE_URI, ARTIFACTS_DESTINATION)
	mkdir -p mlruns
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server \
		--serve-artifacts --artifacts-destination "$(ARTIFACTS_DESTINATION)" \
		--host $(HOST) --port $(PORT) $(if $(ALLOWED_HOSTS),--allowed-hosts "$(ALLOWED_HOSTS)") \
		$(if $(WORKERS),--workers $(WORKERS))

# Plain make clean removes every output, the tracking store with every run and the derived
# experiment files; committed records sit in reports/ itself. With EXP (given on the command line
# or in the environment), only that experiment's folders, named by its file's stem as the
# pipeline names them: the tracking store is shared by every experiment, so its runs stay there.
# Folders only (a trailing /): rm leaves a file of that name alone, such as reports/README.md.
CLEAN_NAME := $(notdir $(EXP_NAME))
clean: ## remove every experiment's outputs AND the tracking store mlruns/ with all runs (not .venv); EXP=name: only that experiment's data/, results/, reports/
ifeq ($(origin EXP),file)
	rm -rf data results reports/*/ mlruns experiments/*-set-*.yaml
	@echo "removed every experiment's data/, results/ and reports/, the derived experiment files \
	(experiments/*-set-*.yaml) and the tracking store mlruns/ with all its runs"
else
	$(if $(or $(filter-out 1,$(words $(CLEAN_NAME))),$(filter . ..,$(CLEAN_NAME))),\
		$(error EXP="$(EXP)" names no experiment to clean))
	rm -rf data/$(CLEAN_NAME)/ results/$(CLEAN_NAME)/ reports/$(CLEAN_NAME)/ $(if $(strip $(SET)),$(EXP_FILE))
	@echo "removed $(CLEAN_NAME)'s data/, results/ and reports/; its runs stay in the tracking \
	store mlruns/, which every experiment shares (plain make clean removes it, with every run)"
endif
