"""livemodel: keep machine-learning models healthy after training.

The short way in::

    import livemodel
    version = livemodel.register("flights", model, train, target="late", alias="production")
    livemodel.connect().load("flights@production").model
    report = livemodel.compare(reference_frame, current_frame, target="late")
    ref = livemodel.Reference(reference_frame, target="late")  # fitted once
    reports = [ref.compare(window) for window in windows]

Everything is configured by environment variables read in :mod:`livemodel.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from livemodel.errors import LivemodelError

if TYPE_CHECKING:
    import pandas as pd

    from livemodel.config import Settings
    from livemodel.monitor.fitted import Reference
    from livemodel.registry.registry import Registry
    from livemodel.registry.version import ModelVersion

__all__ = ["LivemodelError", "Reference", "Registry", "compare", "connect", "register"]
__version__ = "0.1.0"


def connect(settings: Settings | None = None) -> Registry:
    """The registry on the configured backends (see :mod:`livemodel.config`)."""
    from livemodel.wiring import connect as _connect

    return _connect(settings)


def register(
    name: str,
    model: Any,
    data: pd.DataFrame,
    *,
    target: str,
    validation: pd.DataFrame | None = None,
    alias: str | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    description: str | None = None,
    class_map: Mapping[Any, Any] | None = None,
) -> ModelVersion:
    """Register ``model`` in the configured registry; see :meth:`Registry.register`.

    ``class_map`` maps the model's classes to the target's values when they differ, e.g.
    ``{0: "no", 1: "yes"}`` for a model fitted on 0/1 and a target column of no/yes.
    """
    return connect().register(
        name,
        model,
        data,
        target=target,
        validation=validation,
        alias=alias,
        tags=tags,
        seed=seed,
        description=description,
        class_map=class_map,
    )


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import livemodel`` stays cheap for the CLI.
    if name == "Registry":
        from livemodel.registry.registry import Registry

        return Registry
    if name == "compare":
        from livemodel.monitor.compare import compare

        return compare
    if name == "Reference":
        from livemodel.monitor.fitted import Reference

        return Reference
    raise AttributeError(f"module 'livemodel' has no attribute {name!r}")
