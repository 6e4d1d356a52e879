"""Helpers of the serving benchmark ``benchmarks/serve.py``."""
