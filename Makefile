# pixelproof — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train sweep cross-family generalisation selection time-to-accuracy generators bench app test lint format clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the declared dependencies change. Training needs the core package only;
# the tests, linters and demo need the dev extra (ONNX, Gradio, Playwright, pytest, ruff).
$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip "setuptools<82" wheel
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip "setuptools<82" wheel
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@ $(VENV)/.installed-core

install: $(VENV)/.installed ## create .venv and install pixelproof with its dev tools

train: $(VENV)/.installed-core ## train the default detector on the embedded offline dataset (extra overrides: ARGS="...")
	$(BIN)/python -m pixelproof.train $(ARGS)

# a sweep's directory, named like Hydra's own (PIXELPROOF_ROOT moves logs/, as for any run)
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
sweep_dir = $(or $(PIXELPROOF_ROOT),.)/logs/$(1)/multiruns/$(STAMP)

# run_sweep,<experiments>,<sweep name>: each experiment's multirun (its grid is in its YAML) into
# one sweep directory, then collect it into experiments/<sweep name>
define run_sweep
	for e in $(1); do $(BIN)/python -m pixelproof.train -m experiment=$$e \
		hydra.sweep.dir=$(call sweep_dir,$(2)) $(ARGS) || exit 1; done
endef

sweep: $(VENV)/.installed-core ## run the offline RINE grid (8 short CPU runs) and collect it into experiments/rine_grid
	$(call run_sweep,rine_grid_offline,rine_grid_offline)
	$(BIN)/python experiments/collect.py $(call sweep_dir,rine_grid_offline) --out experiments/rine_grid \
		--title "rine_grid_offline: RINE, random TinyCLIP towers at 32x32, embedded data"

cross-family: $(VENV)/.installed-core ## train the default with each generator family held out, and ldm_tconv alone (6 runs) -> experiments/cross_family
	$(call run_sweep,cross_family,cross_family)
	$(BIN)/python experiments/collect.py $(call sweep_dir,cross_family) --out experiments/cross_family \
		--title "Leave one generator family out: the default detector"

GENERALISATION := generalisation generalisation_simulations generalisation_ema generalisation_branches
generalisation: $(VENV)/.installed-core ## augmentations, simulated traces, EMA, wavefreq branches x held-out families (40 runs, ~45 min) -> experiments/generalisation
	$(call run_sweep,$(GENERALISATION),generalisation)
	$(BIN)/python experiments/collect.py $(call sweep_dir,generalisation) --out experiments/generalisation \
		--title "Generalisation ablations: held-out generator families, wavefreq_small, 3 epochs"

SELECTION := selection selection_ema selection_seeds selection_ema_seeds
selection: $(VENV)/.installed-core ## augmentations and EMA x held-out families with the journey, ranked by the worst, + 2 seeds of the top two (~60 min) -> experiments/selection
	$(call run_sweep,$(SELECTION),selection)
	$(BIN)/python experiments/collect.py $(call sweep_dir,selection) --out experiments/selection \
		--title "Recipe selection: held-out families, the journey and unseen real sources"

time-to-accuracy: $(VENV)/.installed-core ## test AP/ACC against training seconds per detector (~40 min) -> experiments/time_to_accuracy
	$(call run_sweep,time_to_accuracy time_to_accuracy_resnet50 time_to_accuracy_rine,time_to_accuracy)
	$(BIN)/python experiments/collect.py $(call sweep_dir,time_to_accuracy) --out experiments/time_to_accuracy \
		--x train/seconds --title "Time to accuracy on 2 CPU cores (embedded data)"

bench: install ## CPU latency/throughput/FLOPs/memory of every detector vs Team 91's pipeline (ARGS="threads=8 ...")
	$(BIN)/python -m pixelproof.benchmarks.latency $(ARGS)

app: install ## serve the browser demo of a checkpoint (ARGS="ckpt_path=<ckpt> ...")
	$(BIN)/python -m pixelproof.app $(ARGS)

# two xdist workers (one thread each), a test file to a worker: a file's module fixtures are
# built once (ARGS="-n 0" runs in this process, e.g. for a debugger); then the tests that fork
# this process (DDP), which a threaded xdist worker cannot do safely
test: install ## run the whole test suite (in 2 processes)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial" $(ARGS)
	$(BIN)/python -m pytest -m serial $(ARGS)

lint: install ## ruff: lint and check formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff: fix imports and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove run outputs, caches and the generated dataset (keeps .venv)
	rm -rf outputs multirun logs data wandb lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

# train_generator writes into its run directory unless told otherwise: this target installs the
# new weights into the package, replacing the shipped zoo (git shows what changed)
ZOO_WEIGHTS := pixelproof/generators/weights

generators: $(VENV)/.installed-core ## retrain the generator zoo and install it into the package (CPU, minutes per model; ARGS="threads=1 ...")
	$(BIN)/python -m pixelproof.train_generator generator=dcgan weights_dir=$(ZOO_WEIGHTS) $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=ddpm weights_dir=$(ZOO_WEIGHTS) $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=vae weights_dir=$(ZOO_WEIGHTS) $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=pixelcnn weights_dir=$(ZOO_WEIGHTS) $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=ldm weights_dir=$(ZOO_WEIGHTS) $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=ldm_tconv weights_dir=$(ZOO_WEIGHTS) $(ARGS)
