# Everything installs itself: a fresh machine needs only python3 (3.11), pip, git and make.
PYTHON ?= python3
VENVS := .venvs
DEV := $(VENVS)/dev/bin/python
# releases whose real package the suite runs: the oldest supported, 1.3.12 and the newest
OLDEST := 1.2.18
RELEASES := $(OLDEST) 1.3.12 1.8.9
NEWEST := 1.8.9
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: test test-extra lint unit unit-beside-venvs real matrix index deep demo bench e2e-report upstream-pr venvs clean

# the unit suite runs while the venvs install (network-bound beside CPU-bound); the tests that
# need those venvs are skipped in that phase and run once they exist (real, test-extra)
test: lint
	$(MAKE) -j2 unit-beside-venvs venvs
	$(MAKE) -j2 --output-sync=target real test-extra

# mk/*.mk add their own checks to `make test` with `test-extra:: <target>`
test-extra::

$(VENVS)/dev/.ok: pyproject.toml
	$(PYTHON) -m venv $(VENVS)/dev
	$(DEV) -m pip install $(PIP_QUIET) -e '.[dev,scan-formats]'
	touch $@

# one venv per release, stock livekit-agents in site-packages ...
$(VENVS)/lk-%/.ok: pyproject.toml
	rm -rf $(VENVS)/lk-$*
	$(PYTHON) -m venv $(VENVS)/lk-$*
	$(VENVS)/lk-$*/bin/python -m pip install $(PIP_QUIET) 'livekit-agents==$*' httpx
	$(VENVS)/lk-$*/bin/python -m pip install $(PIP_QUIET) -e '.[dev]'
	touch $@

# a venv is no intermediate file: make must not delete its marker after building the overlay
.PRECIOUS: $(VENVS)/lk-%/.ok

# ... and beside it `patched/`, a copy of its livekit/agents patched by our own `apply` (put it
# first on PYTHONPATH); rebuilt whenever the patch or the index changes
$(VENVS)/lk-%/.patched.ok: $(VENVS)/lk-%/.ok patches/index.json patches/*.patch
	$(VENVS)/lk-$*/bin/python tests/support/overlay.py $(VENVS)/lk-$*/patched
	touch $@

# mk/*.mk add the venvs their checks need with `EXTRA_VENVS += <dir>/.ok`: built in parallel here
EXTRA_VENVS :=

venvs:
	$(MAKE) -j4 $(VENVS)/dev/.ok $(foreach r,$(RELEASES),$(VENVS)/lk-$(r)/.patched.ok) $(EXTRA_VENVS)

lint: $(VENVS)/dev/.ok
	$(DEV) -m ruff format --check .
	$(DEV) -m ruff check .
	$(DEV) -m mypy livekit_agents_patch tests
	$(DEV) tests/support/py39.py
	$(VENVS)/dev/bin/lint-imports

# the vendored reference, its negative controls, the patch files, the matrix and the CLI
# spread over the cores (pytest-xdist): each test is independent and Hypothesis is derandomized
unit: $(VENVS)/dev/.ok
	$(DEV) -m pytest -q -n auto tests

unit-beside-venvs: $(VENVS)/dev/.ok
	LIVEKIT_AGENTS_PATCH_SKIP_REAL=1 $(DEV) -m pytest -q -n auto tests

# the same properties and the end-to-end scenario on each real release, stock and patched
REAL_TESTS := tests/test_contract.py tests/test_revision2.py tests/e2e
REAL_RUNS := $(foreach r,$(RELEASES),real-stock-$(r) real-patched-$(r))

# six independent processes (each release stock and patched): `make test` runs two at a time
# (pattern rules, so not .PHONY: make skips implicit rules for phony targets)
real: $(REAL_RUNS)

real-stock-%: venvs
	$(VENVS)/lk-$*/bin/python -m pytest -q -p no:cacheprovider $(REAL_TESTS) --expect stock

real-patched-%: venvs
	PYTHONPATH=$(VENVS)/lk-$*/patched $(VENVS)/lk-$*/bin/python -m pytest -q -p no:cacheprovider \
	  $(REAL_TESTS) --expect patched

matrix: $(VENVS)/dev/.ok
	$(DEV) -m livekit_agents_patch.install.matrix --pypi

index: $(VENVS)/dev/.ok
	$(DEV) -m livekit_agents_patch.install.matrix --write-index

deep: $(VENVS)/dev/.ok
	HYPOTHESIS_PROFILE=deep $(DEV) -m pytest -q tests/test_contract.py

-include mk/*.mk

clean:
	rm -rf $(VENVS) .cache .hypothesis .mypy_cache .ruff_cache .pytest_cache
