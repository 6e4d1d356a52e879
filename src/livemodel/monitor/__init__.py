"""Monitoring: windows over the prediction log, calculators, stored results, offline compare.

``compare(reference, current, ...)`` monitors two frames; ``livemodel monitor run`` the
prediction log of a registered model (see :mod:`livemodel.monitor.runner`).
"""

from livemodel.monitor.compare import Report, compare

__all__ = ["Report", "compare"]
