# The #5359 scenario end to end (tests/e2e): `make real` runs its tests; this adds the report.
E2E_REPORT := docs/e2e-report.md
E2E_DATA := .cache/e2e-report

# per release, stock and patched, both audio outputs: seconds from the interrupt to the tool's
# wait ending, the interrupted speech being done and the second reply's first audio frame
e2e-report: venvs $(VENVS)/dev/.ok
	@mkdir -p $(E2E_DATA)
	@set -e; for r in $(RELEASES); do \
	  echo "== livekit-agents $$r: stock, patched"; \
	  $(VENVS)/lk-$$r/bin/python tests/e2e/report.py measure stock $(E2E_DATA)/$$r-stock.json; \
	  PYTHONPATH=$(VENVS)/lk-$$r/patched $(VENVS)/lk-$$r/bin/python tests/e2e/report.py \
	    measure patched $(E2E_DATA)/$$r-patched.json; \
	done
	$(DEV) tests/e2e/report.py render $(E2E_REPORT) \
	  $(foreach r,$(RELEASES),$(E2E_DATA)/$(r)-stock.json $(E2E_DATA)/$(r)-patched.json)
	@cat $(E2E_REPORT)
