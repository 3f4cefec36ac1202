"""The fix's contract as executable checks: scenarios of external events, the model that decides
how each waiter must end, and ``verify``, which runs them inside the target interpreter.

Imports only ``reference`` and ``exits`` (``lint-imports`` checks it), and runs on Python 3.9.
"""
