# Two commands a newcomer needs: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Coverage floor per package, in percent. Measured at the start of session 2 (742 tests):
# runtime 99, link 95, firmware_protocol 100, dynamics 99, reporting 98, recording 95, app 90,
# cli 88, plant_server 94, controller_client 86. Much code landed since (numba kernel bodies
# count as unexecuted lines), so the packages that grew most start below those figures until
# a clean run measures them again; the real-time core and the wire format stay at 95.
COVERAGE_FLOORS := hil/runtime:95 firmware_protocol:95 hil/link:85 hil/recording:85 \
	hil/dynamics:85 hil/reporting:80 hil/app:80 plant_server:80 hil/cli:75 controller_client:75

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
