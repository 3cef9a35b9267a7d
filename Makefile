# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install the project with every tracker first (once).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# torch first and pinned: the CPU build that lies on disk here (a plain `torch` pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	# DS_BUILD_OPS=0: DeepSpeed (an OpenRLHF dependency) builds no CUDA ops on a CPU machine.
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e ".[dev]"
	# OpenRLHF's own requirements pull flash-attn and vllm, which need CUDA: install it alone.
	$(BIN)/pip install -q --no-deps openrlhf==0.11.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rldk-track demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/log_overhead.py

clean:
	rm -rf $(VENV) rldk_runs
