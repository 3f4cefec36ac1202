# The #5359 scenario end to end (tests/e2e): `make real` runs its tests; this adds the report.
E2E_REPORT := docs/e2e-report.md
E2E_DATA := .cache/e2e-report

E2E_ROOM_RELEASE := $(lastword $(RELEASES))

# per release, stock and patched, both SDK paths (pipeline; realtime model, two orders) and both
# audio outputs, on the virtual clock: seconds from the interrupt to the tool's wait ending, the
# interrupted speech being done, the second reply asked for and heard, the call's chat-context
# items, truncate(). Then, on the newest release, RoomIO's own output on a real rtc.AudioSource
# (wall clock, a few runs: ~30 s)
e2e-report: venvs $(VENVS)/dev/.ok
	@mkdir -p $(E2E_DATA)
	@set -e; for r in $(RELEASES); do \
	  echo "== livekit-agents $$r: stock, patched"; \
	  $(VENVS)/lk-$$r/bin/python tests/e2e/report.py measure stock $(E2E_DATA)/$$r-stock.json; \
	  PYTHONPATH=$(VENVS)/lk-$$r/patched $(VENVS)/lk-$$r/bin/python tests/e2e/report.py \
	    measure patched $(E2E_DATA)/$$r-patched.json; \
	done
	@echo "== livekit-agents $(E2E_ROOM_RELEASE), RoomIO output (wall clock): stock, patched"
	$(VENVS)/lk-$(E2E_ROOM_RELEASE)/bin/python tests/e2e/report.py measure-room stock \
	  $(E2E_DATA)/room-$(E2E_ROOM_RELEASE)-stock.json
	PYTHONPATH=$(VENVS)/lk-$(E2E_ROOM_RELEASE)/patched $(VENVS)/lk-$(E2E_ROOM_RELEASE)/bin/python \
	  tests/e2e/report.py measure-room patched $(E2E_DATA)/room-$(E2E_ROOM_RELEASE)-patched.json
	$(DEV) tests/e2e/report.py render $(E2E_REPORT) \
	  $(foreach r,$(RELEASES),$(E2E_DATA)/$(r)-stock.json $(E2E_DATA)/$(r)-patched.json) \
	  $(foreach p,stock patched,$(E2E_DATA)/room-$(E2E_ROOM_RELEASE)-$(p).json)
	@cat $(E2E_REPORT)
