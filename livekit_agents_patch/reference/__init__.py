"""Vendored minimal copy of livekit-agents' speech state machine, with the fix applied.

Mirrors upstream's module layout (``llm``, ``voice/speech_handle.py``, ``voice/events.py``) so
that the methods the patch adds or changes can be compared with the patched upstream files
statement for statement. Standard library only; imports nothing else of this package
(``lint-imports`` checks it), and runs on Python 3.9.
"""
