# make demo: set up .venv (once), then run the twin demo headless (robots, twins, bridge, policy).
# make test: set up .venv (once), lint, and run the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sern-installed

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

# mlagents-envs declares pins older than this environment: installed without them, and its
# protobuf modules regenerated for this protobuf (tools/regenerate_mlagents_protos.py).
# tf2_msgs (for /tf) has no wheel: tools/generate_interfaces.py builds it with the rosidl
# wheels into the venv (installing cmake/g++/make with apt-get if missing; idempotent).
$(STAMP): requirements.txt requirements-nodeps.txt tools/regenerate_mlagents_protos.py setup.py setup.cfg package.xml tools/generate_interfaces.py tools/interfaces/*/msg/*.msg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python -r requirements-nodeps.txt
	$(BIN)/python tools/regenerate_mlagents_protos.py
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python tools/generate_interfaces.py
	touch $@

demo: setup
	$(BIN)/sern demo --world navigation --seconds 60 --out runs/demo

test: setup lint
	$(BIN)/python -m pytest -n 2 --dist worksteal

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python benchmarks/backend_overhead.py
	$(BIN)/python benchmarks/twin_sync.py
	$(BIN)/python benchmarks/site_link.py
	$(BIN)/python benchmarks/engine_vs_vmas.py
	$(BIN)/python benchmarks/learned_vs_scripted.py
	$(BIN)/python benchmarks/coverage_view.py
	$(BIN)/python benchmarks/train_vs_sb3.py

clean:
	rm -rf $(VENV) build install log runs *.egg-info
