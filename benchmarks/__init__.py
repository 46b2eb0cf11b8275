"""Benchmarks of sepkit (pytest-benchmark); not part of the default test run (``make bench``)."""
