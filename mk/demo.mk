# `make demo`: the CLI as a user meets it, in its own venv with the newest stock livekit-agents and
# this package installed non-editable: verify fails with a counterexample, apply, verify passes,
# status, revert. Exits 0 only if every step does what it should (verify must FAIL on stock).
#
# `cli-real` (part of `make test`): the CLI tests that need the real newest release (verify on
# stock and patched; --allow-unlisted on releases made from it), which `make unit` skips when
# that venv is not built yet.

DEMO := $(VENVS)/demo
DEMO_PY := $(abspath $(DEMO))/bin/python
DEMO_CLI := $(abspath $(DEMO))/bin/livekit-agents-patch
# run from outside the checkout, so nothing is imported from it by accident
DEMO_CWD := /tmp

.PHONY: cli-real

$(DEMO)/.ok: pyproject.toml
	rm -rf $(DEMO)
	$(PYTHON) -m venv $(DEMO)
	$(DEMO_PY) -m pip install $(PIP_QUIET) 'livekit-agents==$(NEWEST)' httpx '.[verify]'
	touch $@

demo: $(DEMO)/.ok
	@echo "== this package (non-editable, from this checkout) and a stock livekit-agents $(NEWEST)"
	$(DEMO_PY) -m pip install $(PIP_QUIET) --force-reinstall --no-deps .
	$(DEMO_PY) -m pip install $(PIP_QUIET) --force-reinstall --no-deps 'livekit-agents==$(NEWEST)'
	@echo; echo "== 1. status (expect exit 6: pristine)"
	@cd $(DEMO_CWD) && rc=0 && $(DEMO_CLI) status || rc=$$?; \
	  echo "(exit $$rc)"; test $$rc -eq 6
	@echo; echo "== 2. verify on stock (expect exit 1 and a counterexample)"
	@cd $(DEMO_CWD) && rc=0 && $(DEMO_CLI) verify || rc=$$?; echo "(exit $$rc)"; \
	  if [ $$rc -ne 1 ]; then echo "demo: verify must fail with exit 1 on stock $(NEWEST)"; exit 1; fi
	@echo; echo "== 3. check and apply"
	cd $(DEMO_CWD) && $(DEMO_CLI) check
	cd $(DEMO_CWD) && $(DEMO_CLI) apply
	@echo; echo "== 4. verify on patched (expect exit 0)"
	cd $(DEMO_CWD) && $(DEMO_CLI) verify
	@echo; echo "== 5. status (expect exit 0: patched), apply again (already applied)"
	cd $(DEMO_CWD) && $(DEMO_CLI) status
	cd $(DEMO_CWD) && $(DEMO_CLI) apply
	@echo; echo "== 6. revert, then status (expect exit 6: pristine again)"
	cd $(DEMO_CWD) && $(DEMO_CLI) revert
	@cd $(DEMO_CWD) && rc=0 && $(DEMO_CLI) --json status || rc=$$?; \
	  echo "(exit $$rc)"; test $$rc -eq 6
	@echo; echo "demo: ok"

cli-real: $(VENVS)/dev/.ok $(VENVS)/lk-$(NEWEST)/.patched.ok
	LIVEKIT_AGENTS_PATCH_REQUIRE_REAL=1 $(DEV) -m pytest -q -p no:cacheprovider \
	  tests/test_cli.py -k verify
	LIVEKIT_AGENTS_PATCH_REQUIRE_REAL=1 $(DEV) -m pytest -q -p no:cacheprovider \
	  tests/test_unlisted.py
	LIVEKIT_AGENTS_PATCH_REQUIRE_REAL=1 $(DEV) -m pytest -q -p no:cacheprovider \
	  tests/test_cli_edges.py tests/test_wheel_sources.py -k "answer_past or not_pinned"

test-extra:: cli-real
