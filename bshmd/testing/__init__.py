"""Fixtures for tests and benchmarks; nothing here is used by the daemon itself."""
