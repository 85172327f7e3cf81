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

sweep: $(VENV)/.installed-core ## run the offline RINE grid (8 short CPU runs) and collect it into experiments/rine_grid
	$(BIN)/python -m pixelproof.train -m experiment=rine_grid_offline hydra.sweep.dir=$(call sweep_dir,rine_grid_offline) $(ARGS)
	$(BIN)/python experiments/collect.py $(call sweep_dir,rine_grid_offline) --out experiments/rine_grid \
		--title "rine_grid_offline: RINE, random TinyCLIP towers at 32x32, embedded data"

cross-family: $(VENV)/.installed-core ## train the default with each generator family held out, and ldm_tconv alone (6 runs) -> experiments/cross_family
	$(BIN)/python -m pixelproof.train -m experiment=cross_family hydra.sweep.dir=$(call sweep_dir,cross_family) $(ARGS)
	$(BIN)/python experiments/collect.py $(call sweep_dir,cross_family) --out experiments/cross_family \
		--title "Leave one generator family out: the default detector"

generalisation: $(VENV)/.installed-core ## recipes x held-out families (40 runs, ~45 min) -> experiments/generalisation
	$(BIN)/python -m pixelproof.train -m experiment=generalisation hydra.sweep.dir=$(call sweep_dir,generalisation) $(ARGS)
	$(BIN)/python experiments/collect.py $(call sweep_dir,generalisation) --out experiments/generalisation \
		--title "Generalisation ablations: held-out generator families, wavefreq_small, 3 epochs"

SEEDED ?= journey
selection: $(VENV)/.installed-core ## recipes x held-out families with the journey, ranked by the worst (~45 min) -> experiments/selection
	$(BIN)/python -m pixelproof.train -m experiment=selection hydra.sweep.dir=$(call sweep_dir,selection) $(ARGS)
	$(BIN)/python -m pixelproof.train -m experiment=selection_seeds hydra.sweep.dir=$(call sweep_dir,selection) \
		'hydra.sweep.subdir=seed_$${hydra.job.num}' recipe=$(SEEDED) $(ARGS)
	$(BIN)/python experiments/collect.py $(call sweep_dir,selection) --out experiments/selection \
		--title "Recipe selection: held-out families, the journey and unseen real sources"

time-to-accuracy: $(VENV)/.installed-core ## test AP/ACC against training seconds per detector (~40 min) -> experiments/time_to_accuracy
	$(BIN)/python -m pixelproof.train -m experiment=time_to_accuracy hydra.sweep.dir=$(call sweep_dir,time_to_accuracy) $(ARGS)
	$(BIN)/python -m pixelproof.train -m experiment=time_to_accuracy hydra.sweep.dir=$(call sweep_dir,time_to_accuracy) \
		'hydra.sweep.subdir=resnet50_$${hydra.job.num}' model=wavefreq_resnet50 trainer.max_epochs=1,2 $(ARGS)
	$(BIN)/python -m pixelproof.train -m experiment=time_to_accuracy hydra.sweep.dir=$(call sweep_dir,time_to_accuracy) \
		'hydra.sweep.subdir=rine_$${hydra.job.num}' model=rine_tinyclip trainer.max_epochs=2,4 \
		model.input_size=32 model.backbone.pretrained=false $(ARGS)
	$(BIN)/python experiments/collect.py $(call sweep_dir,time_to_accuracy) --out experiments/time_to_accuracy \
		--x train/seconds --title "Time to accuracy on 2 CPU cores (embedded data)"

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
