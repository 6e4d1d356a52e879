"""Monitoring: windows over the prediction log, calculators, stored results, offline compare.

``compare(reference, current, ...)`` monitors two frames; ``livemodel monitor run`` the
prediction log of a registered model (see :mod:`livemodel.monitor.runner`). The package
imports its statistics lazily, so the CLI's light modules load fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livemodel.monitor.compare import Report, compare

__all__ = ["Report", "compare"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'livemodel.monitor' has no attribute {name!r}")
    import importlib

    module = importlib.import_module("livemodel.monitor.compare")
    # Importing the submodule bound the package attribute ``compare`` to the module:
    # rebind both names to the API objects.
    globals().update(Report=module.Report, compare=module.compare)
    return globals()[name]
