"""The synthetic-data tests use the session's seeded server (tests/conftest.py)."""
