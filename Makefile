# Two commands a newcomer needs: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv and installs the project itself. torch is pinned to the CPU build that
# these machines carry on disk; elsewhere pip fetches the matching wheel from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean mypy-tree

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/lnn-control demo lane-keeping --condition rain:2 --out demo_lane_keeping.mp4

# mypy sees envs/ and policies/ where they install (lnn_control.envs, .policies) through links
mypy-tree:
	mkdir -p build/mypy_tree/lnn_control
	ln -sfn ../../../envs build/mypy_tree/lnn_control/envs
	ln -sfn ../../../policies build/mypy_tree/lnn_control/policies

test: $(STAMP) mypy-tree
	$(BIN)/ruff check .
	$(BIN)/mypy
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python -m pytest -q

# the quick tier for a change in progress: everything not marked slow (the full suite is `make test`)
test-fast: $(STAMP)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python -m pytest -q -m "not slow" -x

lint: $(STAMP) mypy-tree
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
