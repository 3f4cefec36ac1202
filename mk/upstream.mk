# The upstream PR (livekit/agents): the series in patches/upstream/, its test module
# (tests/upstream/, run here against the newest release, patched and stock) and its text
# (docs/upstream-pr.md). Checked by tests/upstream/check.py; see its docstring.
UPSTREAM_VENV := $(VENVS)/lk-$(NEWEST)
UPSTREAM_CHECK := $(UPSTREAM_VENV)/bin/python tests/upstream/check.py
UPSTREAM_OUT := build/upstream-pr

.PHONY: upstream-check upstream-series upstream-tests upstream-lint upstream-am upstream-am-mirror \
	upstream-regen

test-extra:: upstream-check

upstream-check: upstream-series upstream-tests upstream-lint

# 0001 gives the release patch's code on the newest release; 0002 is tests/upstream's module
upstream-series: $(UPSTREAM_VENV)/.patched.ok
	$(UPSTREAM_CHECK) series --patched $(UPSTREAM_VENV)/patched

# the module passes on the patched release, and fails as expected on stock and on mutants
upstream-tests: $(UPSTREAM_VENV)/.patched.ok
	$(UPSTREAM_CHECK) outcomes --patched $(UPSTREAM_VENV)/patched

# upstream's ruff and mypy strict settings: the patch adds no finding; the module is clean
upstream-lint: $(UPSTREAM_VENV)/.patched.ok
	$(UPSTREAM_CHECK) lint --patched $(UPSTREAM_VENV)/patched
	$(UPSTREAM_VENV)/bin/python -m mypy tests/upstream/check.py tests/upstream/conftest.py

# print the git-am-ready series and the PR text; both are also written to $(UPSTREAM_OUT)/
upstream-pr:
	@mkdir -p $(UPSTREAM_OUT)
	@cat patches/upstream/*.patch > $(UPSTREAM_OUT)/series.mbox
	@sed -n '/^<!-- pr:start -->$$/,/^<!-- pr:end -->$$/p' docs/upstream-pr.md \
	  | sed '1d;$$d' > $(UPSTREAM_OUT)/pr.md
	@test -s $(UPSTREAM_OUT)/pr.md || { echo "no PR text in docs/upstream-pr.md" >&2; exit 1; }
	@cat $(UPSTREAM_OUT)/series.mbox
	@echo "==== PR title and body ($(UPSTREAM_OUT)/pr.md; first line is the title) ===="
	@cat $(UPSTREAM_OUT)/pr.md
	@echo "==== apply with: git am $(CURDIR)/$(UPSTREAM_OUT)/series.mbox ===="

# apply the series to a checkout of upstream's default branch and run the module there:
#   make upstream-am UPSTREAM=/path/to/livekit/agents [UPSTREAM_REF=origin/main]
# (needs an environment with livekit-agents' dependencies for pytest: UPSTREAM_PYTHON=<python>;
# the checkout's livekit-agents/ goes first on PYTHONPATH, and the run fails unless that is the
# livekit.agents imported). With UPSTREAM_PYTHON, upstream's own tests of tool outputs under
# interruption (UPSTREAM_ALSO, which the PR text cites) run too, and the module must fail on
# UPSTREAM_REF's own files (the series' fix taken out again): it tests the fix, not the setup.
UPSTREAM_REF ?= origin/main
UPSTREAM_ALSO ?= tests/test_tool_output_per_call.py tests/test_tool_results_preserved_on_interruption.py
UPSTREAM_PYTEST = PYTHONPATH=$$PWD/livekit-agents $(UPSTREAM_PYTHON) -m pytest --unit -q \
	  -p no:cacheprovider tests/test_wait_for_playout_interrupt.py
upstream-am:
	@test -n "$(UPSTREAM)" || { echo "usage: make upstream-am UPSTREAM=<git dir or url>" >&2; exit 2; }
	rm -rf $(UPSTREAM_OUT)/agents
	git clone -q --no-checkout $(UPSTREAM) $(UPSTREAM_OUT)/agents
	cd $(UPSTREAM_OUT)/agents && git checkout -q -b upstream-pr $(UPSTREAM_REF) \
	  && git -c user.name=upstream-pr -c user.email=upstream-pr@invalid am -q \
	     $(CURDIR)/patches/upstream/*.patch \
	  && git log --oneline -3 && git diff --stat $(UPSTREAM_REF)..HEAD
	@if [ -n "$(UPSTREAM_PYTHON)" ]; then set -e; cd $(UPSTREAM_OUT)/agents; \
	  imported=$$(PYTHONPATH=$$PWD/livekit-agents $(UPSTREAM_PYTHON) -c \
	    'import livekit.agents.voice.speech_handle as m; print(m.__file__)'); \
	  case "$$imported" in "$$PWD"/*) ;; *) echo "upstream-am: imported $$imported, not the \
	    checkout's livekit-agents" >&2; exit 1;; esac; \
	  echo "== the module and $(UPSTREAM_ALSO) on $(UPSTREAM_REF) + the series ($$imported)"; \
	  $(UPSTREAM_PYTEST) $(UPSTREAM_ALSO); \
	  echo "== control: the module on $(UPSTREAM_REF)'s own voice/ files (must fail)"; \
	  git checkout -q $(UPSTREAM_REF) -- livekit-agents/livekit/agents/voice; \
	  if $(UPSTREAM_PYTEST) > control.log 2>&1; then cat control.log; \
	    echo "upstream-am: the module passes without the fix" >&2; exit 1; fi; \
	  grep -m1 "SpeechInterruptedError" control.log; tail -1 control.log; \
	  git checkout -q HEAD -- livekit-agents/livekit/agents/voice; \
	  echo "upstream-am: ok"; fi

# the same against the local mirror of livekit/agents, with the newest release's venv for the
# dependencies. Not part of `make test`: CI has no mirror.
UPSTREAM_MIRROR ?= /work/.mirror/livekit+agents/repo
upstream-am-mirror: $(UPSTREAM_VENV)/.ok
	@test -d "$(UPSTREAM_MIRROR)" || { echo "no livekit/agents mirror at $(UPSTREAM_MIRROR):" \
	  "set UPSTREAM_MIRROR=<git dir or url>" >&2; exit 2; }
	$(MAKE) --no-print-directory upstream-am UPSTREAM=$(UPSTREAM_MIRROR) \
	  UPSTREAM_PYTHON=$(abspath $(UPSTREAM_VENV))/bin/python

# after editing tests/upstream/test_wait_for_playout_interrupt.py (or rebasing), rewrite the
# series from a checkout of upstream's default branch: 0001 as it is, 0002 with the module
#   make upstream-regen UPSTREAM=/path/to/livekit/agents [UPSTREAM_REF=origin/main]
upstream-regen:
	@test -n "$(UPSTREAM)" || { echo "usage: make upstream-regen UPSTREAM=<git dir or url>" >&2; exit 2; }
	rm -rf $(UPSTREAM_OUT)/regen
	git clone -q --no-checkout $(UPSTREAM) $(UPSTREAM_OUT)/regen
	cd $(UPSTREAM_OUT)/regen && git checkout -q -b upstream-pr $(UPSTREAM_REF) \
	  && git -c user.name=upstream-pr -c user.email=upstream-pr@invalid am -q \
	     $(CURDIR)/patches/upstream/*.patch \
	  && cp $(CURDIR)/tests/upstream/test_wait_for_playout_interrupt.py tests/ \
	  && git -c user.name=upstream-pr -c user.email=upstream-pr@invalid commit -q -a --amend \
	     --no-edit --allow-empty \
	  && rm -f $(CURDIR)/patches/upstream/*.patch \
	  && git format-patch -q --zero-commit -o $(CURDIR)/patches/upstream $(UPSTREAM_REF)..HEAD
	@ls patches/upstream
