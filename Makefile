# pixelproof — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install train sweep bench app test lint format clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip "setuptools<82" wheel
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install pixelproof with its dev tools

train: install ## train the default detector on the embedded offline dataset (extra overrides: ARGS="...")
	$(BIN)/python -m pixelproof.train $(ARGS)

# the sweep's directory, named like Hydra's own (PIXELPROOF_ROOT moves logs/, as for any run)
SWEEP_DIR := $(or $(PIXELPROOF_ROOT),.)/logs/rine_grid_offline/multiruns/$(shell date +%Y-%m-%d_%H-%M-%S)

sweep: install ## run the offline RINE grid (8 short CPU runs) and collect it into experiments/rine_grid
	$(BIN)/python -m pixelproof.train -m experiment=rine_grid_offline hydra.sweep.dir=$(SWEEP_DIR) $(ARGS)
	$(BIN)/python experiments/collect.py $(SWEEP_DIR) --out experiments/rine_grid \
		--title "rine_grid_offline: RINE, random TinyCLIP towers at 32x32, embedded data"

bench: install ## CPU latency/throughput/FLOPs/memory of every detector vs Team 91's pipeline (ARGS="threads=8 ...")
	$(BIN)/python -m pixelproof.benchmarks.latency $(ARGS)

app: install ## serve the browser demo of a checkpoint (ARGS="ckpt_path=<ckpt> ...")
	$(BIN)/python -m pixelproof.app $(ARGS)

test: install ## run the whole test suite
	$(BIN)/python -m pytest $(ARGS)

lint: install ## ruff: lint and check formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff: fix imports and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove run outputs, caches and the generated dataset (keeps .venv)
	rm -rf outputs multirun logs data wandb lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

.PHONY: generators
generators: install ## retrain the shipped generator zoo (CPU, minutes per model; ARGS="threads=1 ...")
	$(BIN)/python -m pixelproof.train_generator generator=dcgan $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=ddpm $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=vae $(ARGS)
	$(BIN)/python -m pixelproof.train_generator generator=pixelcnn $(ARGS)
