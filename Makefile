# Two commands a newcomer needs: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Modules that keep the plant safe or define a wire format: held to a higher coverage floor.
CRITICAL := hil/runtime/watchdog.py,hil/runtime/deadline_gates.py,hil/reporting/scoring.py,hil/link/messages.py,plant_server/safety.py,firmware_protocol/*.py

.PHONY: run test lint bench clean firmware

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hil run --config configs/default.yaml $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report --fail-under=85
	@for floor in $(COVERAGE_FLOORS); do \
		pkg=$${floor%%:*}; min=$${floor##*:}; \
		printf 'coverage floor %s%% for %s: ' "$$min" "$$pkg"; \
		$(BIN)/coverage report --include="$$pkg/*" --fail-under=$$min --format=total || exit 1; \
	done

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The reference rig firmware: host, QEMU (mps2-an386) and board (Nucleo-F401RE) builds of
# one core; prints the board image's flash and RAM. firmware_protocol/firmware/Makefile.
firmware:
	$(MAKE) -C firmware_protocol/firmware all

clean:
	rm -rf $(VENV) .coverage .coverage.* .pytest_cache
