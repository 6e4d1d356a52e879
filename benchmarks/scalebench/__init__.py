"""Pieces of ``benchmarks/scale.py``: the data it generates and the child processes it times."""
