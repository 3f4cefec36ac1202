"""The patch on an installed livekit-agents or on upstream's wheel: find it, judge its files, write
them all or nothing, build patched wheels, run the contract's checks in the target interpreter.

May import ``exits`` and ``contract`` (``lint-imports`` checks it); never ``scan`` or the CLI.
"""
