"""``scan``: the adopter's static check of their own tools (standard library ``ast`` and
``tokenize``; the scanned code is never imported or run).

Imports only ``exits`` (``lint-imports`` checks it): nothing of ``install`` or ``contract``.
"""
