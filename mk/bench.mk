# `make bench`: stock vs patched livekit-agents $(NEWEST) (and the vendored reference), side by
# side in one run, into bench/results.md and bench/results.json. Not part of `make test`.
# pyperf is installed with `pip --target` beside the release's venv, which stays untouched.
.PHONY: bench-profile

BENCH_PY := $(VENVS)/lk-$(NEWEST)/bin/python
BENCH_TOOLS := $(VENVS)/bench-tools
# e.g. `make bench BENCH_ARGS="--rounds 1 --cycles 10000"` for a quick look (keep the defaults
# for the committed results)
BENCH_ARGS ?=

$(BENCH_TOOLS)/.ok: $(VENVS)/lk-$(NEWEST)/.ok
	rm -rf $(BENCH_TOOLS)
	$(BENCH_PY) -m pip install $(PIP_QUIET) --target $(BENCH_TOOLS) 'pyperf==2.10.0'
	touch $@

bench: $(VENVS)/lk-$(NEWEST)/.patched.ok $(BENCH_TOOLS)/.ok
	PYTHONPATH=$(BENCH_TOOLS) $(BENCH_PY) bench/run.py --python $(BENCH_PY) \
	  --overlay $(VENVS)/lk-$(NEWEST)/patched --tools $(BENCH_TOOLS) $(BENCH_ARGS)

# the patched wait's cost statement by statement (also run, into bench/profile.md, by `bench`)
bench-profile: $(VENVS)/lk-$(NEWEST)/.patched.ok
	PYTHONPATH=$(VENVS)/lk-$(NEWEST)/patched $(BENCH_PY) bench/profile_hotpath.py --subject patched
