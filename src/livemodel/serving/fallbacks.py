"""Answers for rows the served version could not answer (it raised, gave NaN or hung).

The model's ``fallback`` option decides: ``previous`` asks the version the alias pointed at
before, ``default`` answers the configured ``default_output``, ``error`` answers none (the
request gets a 503). Fallback rows carry the flag ``fallback:<kind>`` next to the reason.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from livemodel.serving.handles import ModelHandle, row_outputs
from livemodel.serving.options import ModelOptions

# (outputs, or None when the request must fail; version that answered; extra flags)
FallbackRow: TypeAlias = tuple[dict[str, Any] | None, int, list[str]]


def default_output(value: Any) -> dict[str, Any]:
    """``default_output`` as outputs: a table is taken as is, anything else is the label."""
    return dict(value) if isinstance(value, dict) else {"label": value}


def fallback_outputs(
    options: ModelOptions,
    previous: ModelHandle | None,
    handle: ModelHandle,
    *,
    frame: pd.DataFrame,
    bounds: list[tuple[int, int]],
    reasons: np.ndarray,
) -> dict[int, FallbackRow]:
    """For each admitted row (by position among admitted rows) whose reason is set.

    ``frame`` holds every row of the batch and ``bounds`` the admitted requests' slices.
    """
    needed = [i for i, r in enumerate(reasons) if r]
    if not needed:
        return {}
    if options.fallback == "default":
        out = default_output(options.default_output)
        return {i: (dict(out), handle.number, ["fallback:default"]) for i in needed}
    found: dict[int, FallbackRow] = {}
    if options.fallback == "previous" and previous is not None:
        rows = np.concatenate([np.arange(a, b) for a, b in bounds])
        try:
            prev_out = previous.predict(frame.iloc[rows[needed]])
        except Exception:  # noqa: BLE001 - the previous model failing too means 503
            prev_out = None
        if prev_out is not None:
            ok = prev_out.ok_rows()
            for j, i in enumerate(needed):
                if ok[j]:
                    outputs = row_outputs(previous, prev_out, j)
                    found[i] = (outputs, previous.number, ["fallback:previous"])
    return {i: found.get(i, (None, handle.number, [])) for i in needed}
