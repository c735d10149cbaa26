# Two commands a newcomer needs: `make run` and `make test`. Each sets up .venv itself.
# The Python .venv is made with: 3.12 or newer where this machine has one (tools/pick_python),
# else python3. Coverage follows the tests' subprocesses through 3.12's sys.monitoring, at
# about three quarters of the CPU 3.11's tracer costs the suite (docs/performance.md).
PYTHON ?= $(shell tools/pick_python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Test workers (pytest-xdist) for all but the realtime-marked tests, which then run alone
# (one process, nothing beside them) since they judge the machine's timing. One test
# process keeps a 2-core machine's cores ~65 % busy (the tests wait on real processes);
# two fill them. A test file's tests run on one worker, so its session fixtures (a C client,
# FMU or firmware build) are made once per worker at most.
PYTEST_WORKERS ?= 2
# Coverage floor per package, in percent: 2-3 points under what a full `make test` measured
# for that package, so a real drop in coverage fails the build while the run-to-run wobble
# of timing-dependent paths does not.
COVERAGE_FLOORS := hil/runtime:97 firmware_protocol:98 hil/link:93 hil/recording:90 \
	hil/dynamics:85 hil/reporting:93 hil/app:85 plant_server:90 hil/cli:84 controller_client:84 \
	hil/experiment:70

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
	@# Both parts run whatever the first gives; exit 5 is a part that ARGS left with no test.
	export COVERAGE_CORE=$$($(BIN)/python -c 'import sys; print("sysmon" if sys.version_info >= (3, 12) else "ctrace")'); \
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	    -m "not realtime" $(ARGS); \
	shared=$$?; $(BIN)/coverage run -m pytest -m realtime $(ARGS); alone=$$?; \
	[ $$shared$$alone != 55 ] && [ $$shared = 0 -o $$shared = 5 ] && [ $$alone = 0 -o $$alone = 5 ]
	$(BIN)/coverage combine --quiet
	rm -f .coverage.*  # a data file a SIGKILLed test process left unreadable (combine skips it)
	$(BIN)/coverage report --fail-under=90
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
