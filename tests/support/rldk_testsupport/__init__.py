"""Fixtures and helpers shared by the test suite (each module is a pytest plugin)."""
