# `make bench-scan`: `livekit-agents-patch scan` on a generated tree of 10,000 files (target:
# under 10 s on 2 cores), into bench/scan-results.md. Not part of `make test`.
.PHONY: bench-scan

bench-scan: $(VENVS)/dev/.ok
	$(DEV) bench/scan.py
