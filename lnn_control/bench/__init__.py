"""Benchmarks behind ``lnn-control bench``: speed is measured here, never in timed tests."""
