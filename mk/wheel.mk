# `make wheel-check` (part of `make test`): the patched wheel of the newest release, built without
# --from (pip download into an isolated cache), installed the way lockfiles install it: with pip
# --require-hashes over stock livekit-agents' dependencies, and with uv from a [tool.uv.sources]
# path source; then pip check, RECORD, status/apply/revert, verify and the real-package property
# test on it. See tests/test_wheel_install.py.
WHEEL_VENV := $(VENVS)/wheel-$(NEWEST)
POETRY_VENV := $(VENVS)/poetry
EXTRA_VENVS += $(WHEEL_VENV)/.ok $(POETRY_VENV)/.ok

.PHONY: wheel-check

# stock livekit-agents and its dependencies, and this package's dev tools (pytest, hypothesis)
$(WHEEL_VENV)/.ok: pyproject.toml
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install $(PIP_QUIET) 'livekit-agents==$(NEWEST)' httpx
	$(WHEEL_VENV)/bin/python -m pip install $(PIP_QUIET) -e '.[dev]'
	touch $@

# poetry in a venv of its own (its dependencies stay out of dev): the README's poetry block locks
$(POETRY_VENV)/.ok: mk/wheel.mk
	rm -rf $(POETRY_VENV)
	$(PYTHON) -m venv $(POETRY_VENV)
	$(POETRY_VENV)/bin/python -m pip install $(PIP_QUIET) 'poetry>=2,<3'
	touch $@

wheel-check: $(VENVS)/dev/.ok $(WHEEL_VENV)/.ok $(POETRY_VENV)/.ok
	LIVEKIT_AGENTS_PATCH_WHEEL_VENV=$(WHEEL_VENV) LIVEKIT_AGENTS_PATCH_POETRY=$(abspath $(POETRY_VENV))/bin/poetry \
	  $(DEV) -m pytest -q -p no:cacheprovider tests/test_wheel_install.py

test-extra:: wheel-check
