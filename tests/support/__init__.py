"""Helpers for the tests (not collected)."""
