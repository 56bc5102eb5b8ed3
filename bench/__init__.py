"""Benchmarks: fsml against stock Feast on the same data, in the same run (``make bench``)."""
