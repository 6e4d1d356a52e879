"""Pieces of ``benchmarks/drift.py``: data generation, child processes, measurement, report.

The ``child_*.py`` modules run as scripts in fresh interpreters (some in the peers' own
virtual environments), so they import nothing from this package or from livemodel except
``child_livemodel.py``, which runs in the project's environment.
"""
