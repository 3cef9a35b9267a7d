# Entry points on a fresh machine: `make demo` (the main job), `make ui` (open its runs), `make test`.
# Each creates .venv first (once) and installs what it needs: the demo only its trackers and TRL,
# the tests every tracker, OpenRLHF and the test tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.base-installed
DEMO_STAMP := $(VENV)/.demo-installed
STAMP := $(VENV)/.installed

.PHONY: install demo ui test bench clean

$(BASE):
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# torch first and pinned: the CPU build that lies on disk here (a plain `torch` pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	touch $(BASE)

# The demo's trackers (MLflow, TensorBoard) and TRL: no W&B, Ray, DeepSpeed or OpenRLHF.
$(DEMO_STAMP): pyproject.toml | $(BASE)
	$(BIN)/pip install -q -e ".[demo]"
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BASE)
	# DS_BUILD_OPS=0: DeepSpeed (an OpenRLHF dependency) builds no CUDA ops on a CPU machine.
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e ".[dev]"
	# OpenRLHF's own requirements pull flash-attn and vllm, which need CUDA: install it alone.
	$(BIN)/pip install -q --no-deps openrlhf==0.11.2
	touch $(STAMP) $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/rldk-track demo

ui: $(DEMO_STAMP)
	$(BIN)/rldk-track ui

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/log_overhead.py

clean:
	rm -rf $(VENV) rldk_runs
