# The two README commands: `make demo` and `make test`. Both create and use .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AP := $(BIN)/autopneumo
DATA ?= $(AUTOPNEUMO_DATA)
# where this project's machines keep the Kermany set (the tests' default too)
SHARED_DATA ?= ../shared/data/chest_xray
DEMO_RUNS ?= runs/demo
DEMO_OUT ?= reports/demo

.PHONY: venv demo test lint bench clean browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# A short real search (two policies of the classroom CNN, 2 trials each, 48 px, 3 epochs)
# and a report. Data: DATA=... or AUTOPNEUMO_DATA, else SHARED_DATA where that folder
# exists, else PneumoniaMNIST is downloaded.
demo: $(STAMP)
	@data="$(DATA)"; \
	if [ -z "$$data" ] && [ -d "$(SHARED_DATA)" ]; then data="$(SHARED_DATA)"; echo "demo: data from $$data"; fi; \
	if [ -z "$$data" ]; then data=$$($(AP) data download) || exit 2; fi; \
	for policy in none flip; do \
	  $(AP) search --family base_cnn --augment $$policy --data "$$data" --image-size 48 \
	    --tuner random --max-trials 2 --epochs 3 --runs-dir $(DEMO_RUNS) || exit $$?; \
	done; \
	$(AP) leaderboard --runs-dir $(DEMO_RUNS) && \
	$(AP) report --runs-dir $(DEMO_RUNS) --out $(DEMO_OUT)

# Debian's chromium for the report's headless-browser test (skipped where it is absent):
# installed only when missing, as root, with apt-get; never fails the build.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || true

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests

lint: $(STAMP)
	$(BIN)/ruff check autopneumo tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
