# `verify` against the oldest Python the supported releases allow: livekit-agents 1.2.18 on Python
# 3.9, with the checks' own dependencies (livekit_agents_patch.contract.verify.REQUIREMENTS) and nothing of
# this package installed (verify lends it). Skipped, saying so, where no Python 3.9 exists.
PY39 ?= $(firstword $(wildcard /root/.pyenv/versions/3.9.*/bin/python3.9) \
  $(shell command -v python3.9 2>/dev/null))
PY39_RELEASE := 1.2.18
PY39_VENV := $(VENVS)/py39-lk-$(PY39_RELEASE)
ifneq ($(PY39),)
EXTRA_VENVS += $(PY39_VENV)/.ok
endif

.PHONY: verify-py39 verify-real

# the tool's own environment has livekit-agents (the newest release's venv), the target has none
verify-real: $(VENVS)/dev/.ok $(VENVS)/lk-$(NEWEST)/.patched.ok
	LIVEKIT_AGENTS_PATCH_REQUIRE_REAL=1 $(DEV) -m pytest -q -p no:cacheprovider \
	  tests/test_verify_target.py -k tools_own

$(PY39_VENV)/.ok: pyproject.toml $(VENVS)/dev/.ok
	rm -rf $(PY39_VENV)
	$(PY39) -m venv $(PY39_VENV)
	$(PY39_VENV)/bin/python -m pip install $(PIP_QUIET) 'livekit-agents==$(PY39_RELEASE)' httpx \
	  $$($(DEV) -c 'from livekit_agents_patch.contract.verify import REQUIREMENTS; print(*REQUIREMENTS)')
	touch $@

ifeq ($(PY39),)
verify-py39:
	@echo "verify-py39: skipped, no Python 3.9 on this machine (set PY39=/path/to/python3.9)"
else
verify-py39: $(VENVS)/dev/.ok $(PY39_VENV)/.ok
	LIVEKIT_AGENTS_PATCH_REQUIRE_PY39=1 $(DEV) -m pytest -q -p no:cacheprovider \
	  tests/test_verify_target.py -k py39
endif

test-extra:: verify-real verify-py39
