# lightning-gans — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
EXP ?= toy_grid25_default
ARGS ?=
DATA_DIR ?= ./data
export LIGHTNING_GANS_DATA := $(DATA_DIR)
export WANDB_MODE ?= offline

.DEFAULT_GOAL := help
.PHONY: help install train test bench bench-step bench-fid bench-toy bench-quality bench-seeds bench-progress bench-translation bench-age bench-ddp bench-precision gpu-check compare extractor lint format clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'
	@echo "  variables: EXP=<experiments/NAME.yaml> ARGS=\"--trainer.max_epochs=3\" DATA_DIR=./data"

# The venv is (re)built only when pyproject.toml or this Makefile changed since the last install.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH_PIN)
	@$(PY) -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1'), torch.__version__"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the package (automatic for the other targets)

# MNIST experiments score FID/IS with lenet-mnist: train it once (≈1 CPU minute) when it is not cached yet.
train: $(STAMP) ## train EXP (default toy_grid25_default): make train EXP=dcgan_mnist DATA_DIR=… ARGS="…"
	@case "$(EXP)" in *mnist*) $(PY) -c "from lightning_gans.metrics import check_extractor as c; c('lenet-mnist')" \
		2>/dev/null || $(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR);; esac
	$(VENV)/bin/lightning-gans fit --config experiments/$(EXP).yaml $(ARGS)

test: $(STAMP) ## run the test suite
	$(PY) -m pytest -q --durations=15 tests $(ARGS)

bench: bench-step bench-fid ## all benchmarks (prints tables; real MNIST under DATA_DIR for bench-fid)

bench-step: $(STAMP) ## per-step time of DCGAN in lightning-gans vs a plain PyTorch loop
	$(PY) benchmarks/bench_step.py $(ARGS)

# Real MNIST under DATA_DIR; ~10 min on 2 cores. The old path runs from a git worktree of a0813fa under /tmp.
bench-ddp: $(STAMP) ## 2-process gloo step time and collectives: old find-unused path vs gan_ddp vs 1 process
	$(PY) benchmarks/bench_ddp.py --data_dir $(DATA_DIR) $(ARGS)

bench-toy: $(STAMP) ## toy GAN mode coverage per loss × dataset (ring8, grid25) × seeds: ARGS="--seeds 1"
	$(PY) benchmarks/bench_toy.py $(ARGS)

# Real MNIST under DATA_DIR; trains lenet-mnist first if it is not cached. ~10 runs × 15 CPU-min, 2 at a time.
bench-quality: $(STAMP) ## book vs recommended MNIST recipes, 15 CPU-min each: FID/IS/class coverage table
	@$(PY) -c "from lightning_gans.metrics import check_extractor as c; c('lenet-mnist')" 2>/dev/null \
		|| $(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR)
	$(PY) benchmarks/bench_quality.py --data_dir $(DATA_DIR) $(ARGS)

bench-seeds: $(STAMP) ## one MNIST recipe over seeds 0,1,2: FID and the smallest class share every 250 steps (EXP)
	@$(PY) -c "from lightning_gans.metrics import check_extractor as c; c('lenet-mnist')" 2>/dev/null \
		|| $(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR)
	$(PY) benchmarks/bench_seeds.py --data_dir $(DATA_DIR) --experiment $(if $(filter $(origin EXP),command line),$(EXP),dcgan_mnist_recommended) $(ARGS)

bench-progress: $(STAMP) ## MNIST recipes (ProGAN vs DCGAN) under one CPU budget: FID and classes vs CPU-minutes plot
	@$(PY) -c "from lightning_gans.metrics import check_extractor as c; c('lenet-mnist')" 2>/dev/null \
		|| $(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR)
	$(PY) benchmarks/bench_progress.py --data_dir $(DATA_DIR) $(ARGS)

# Real MNIST under DATA_DIR (edges ↔ digits set written once); 3 runs × 16 CPU-min, 2 at a time (~40 min).
bench-translation: $(STAMP) ## CycleGAN vs DiscoGAN (chapter, recommended) on MNIST edges <-> digits: label agreement
	@$(PY) -c "from lightning_gans.metrics import check_extractor as c; c('lenet-mnist')" 2>/dev/null \
		|| $(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR)
	$(PY) benchmarks/bench_translation.py --data_dir $(DATA_DIR) $(ARGS)

# Synthetic faces (no download); stage 1, 2 and 3 with a trained identity network, one thread (~30 min).
bench-age: $(STAMP) ## Age-cGAN stages 1-3 on synthetic faces: age accuracy, identity cosine before/after stage 3
	$(PY) benchmarks/bench_age_cgan.py $(or $(ARGS),--steps 1500 --minutes 15 --encoder-steps 600 --identity-steps 400)

bench-fid: $(STAMP) ## one FID evaluation (N=10k): our callback core vs torchmetrics directly, and the cache
	$(PY) benchmarks/bench_fid.py $(ARGS)

# CPU: DCGAN-MNIST b64 (and CelebA-64 b8) steps in fp32, bf16-mixed, 16-mixed (fp16 autocast), compiled; ~3 min.
bench-precision: $(STAMP) ## precision/compile step-time table on this CPU, ratios to fp32 eager
	$(PY) benchmarks/bench_precision.py $(ARGS)

# Generated CelebA-like and CycleGAN-like JPEGs (no download); ~5 min on 2 cores.
bench-data: $(STAMP) ## loader images/s: decode vs decoded cache, 0/1/2/auto workers, vs the training step rate
	$(PY) benchmarks/bench_data.py $(ARGS)

# Factory MNIST and the toy mixture (no download); ~6 min on 2 cores.
bench-faults: $(STAMP) ## SIGKILL at random steps + resume == uninterrupted (bit-identical); the bad-input matrix
	$(PY) benchmarks/bench_faults.py $(ARGS)

# On a CUDA machine with only torch, torchvision, lightning, torchmetrics (no .venv needed); < 5 min, no network.
gpu-check: ## GPU table: 3 GANs x fp32/bf16/16-mixed/compiled/CUDA graphs + 10k FID -> runs/gpu_check.txt
	PYTHONPATH=. $(if $(wildcard $(PY)),$(PY),python3) benchmarks/gpu_check.py --out runs/gpu_check.txt $(ARGS)

compare: $(STAMP) ## leaderboard of runs by FID, one table per eval protocol: make compare RUNS="runs/"
	$(VENV)/bin/lightning-gans compare $(or $(RUNS),runs) --out $(or $(OUT),compare)

extractor: $(STAMP) ## train the offline lenet-mnist feature extractor (FID/IS on digits) from DATA_DIR
	$(VENV)/bin/lightning-gans train-extractor mnist --data_dir $(DATA_DIR)

lint: $(STAMP) ## ruff lint + format check + the layer contract (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP) ## ruff autofix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove runs/ and caches (keeps .venv and data/)
	rm -rf runs lightning_logs wandb .pytest_cache .ruff_cache
