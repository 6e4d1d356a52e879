"""Effect-size thresholds learned from the reference's own sampling noise.

As NannyML does: split the reference into chunks of the size of a monitoring window,
compute each effect size of every chunk against the whole reference, and put the threshold
at a high quantile (or mean + k standard deviations) of those chunk statistics. The
threshold then reflects how much a statistic moves at that window size when nothing has
changed, sketch error included, so it only applies to windows of about ``chunk_size``
rows.

>>> import numpy as np, pandas as pd
>>> from livemodel.stats.drift import DriftConfig
>>> from livemodel.stats.profile import ProfileSpec
>>> ref = pd.DataFrame({"x": np.random.default_rng(0).normal(size=4000)})
>>> spec = ProfileSpec.from_reference(ref)
>>> learned = fit_thresholds(ref, spec, chunk_size=500)
>>> sorted(learned)
[('x', 'jensen_shannon'), ('x', 'psi'), ('x', 'wasserstein')]
>>> config = DriftConfig(thresholds=learned)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError
from livemodel.stats.drift import EFFECT_METHODS, Method, column_statistics
from livemodel.stats.profile import NumericColumnProfile, Profile, ProfileSpec

__all__ = ["fit_thresholds"]

_NUMERIC_EFFECTS: tuple[Method, ...] = ("wasserstein", "psi", "jensen_shannon")
_CATEGORICAL_EFFECTS: tuple[Method, ...] = ("psi", "jensen_shannon")


def fit_thresholds(
    reference: pd.DataFrame,
    spec: ProfileSpec,
    *,
    chunk_size: int,
    quantile: float = 0.99,
    rule: Literal["quantile", "std"] = "quantile",
    std_multiplier: float = 3.0,
    methods: Sequence[str] | None = None,
    seed: int | None = None,
) -> dict[tuple[str, str], float]:
    """Thresholds per ``(column, effect method)`` for ``DriftConfig(thresholds=...)``.

    ``reference`` is cut into ``len(reference) // chunk_size`` consecutive chunks (at
    least two; trailing rows are left out), or random ones when ``seed`` is given, which
    suits a reference sorted by something other than time. ``rule="quantile"`` takes the
    ``quantile`` of the chunk statistics, ``rule="std"`` their mean plus
    ``std_multiplier`` standard deviations. Pairs whose statistic is undefined in every
    chunk (an all-missing column) are left out, so the config's default applies.
    """
    if not isinstance(reference, pd.DataFrame):
        raise InvalidInputError("reference must be a pandas DataFrame")
    if not isinstance(spec, ProfileSpec):
        raise InvalidInputError("spec must be a ProfileSpec")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not 0.0 < quantile <= 1.0:
        raise InvalidInputError(f"quantile must be in (0, 1], got {quantile!r}")
    if rule not in ("quantile", "std"):
        raise InvalidInputError(f"rule must be 'quantile' or 'std', got {rule!r}")
    if not (np.isfinite(std_multiplier) and std_multiplier >= 0):
        raise InvalidInputError("std_multiplier must be finite and >= 0")
    wanted = set(EFFECT_METHODS if methods is None else methods)
    if isinstance(methods, str) or not wanted <= EFFECT_METHODS:
        raise InvalidInputError(f"methods must be drawn from {sorted(EFFECT_METHODS)}")
    n_chunks = len(reference) // chunk_size
    if n_chunks < 2:
        raise InvalidInputError(
            f"the reference has {len(reference)} rows: too few for two chunks of {chunk_size}"
        )

    whole = Profile.empty(spec).update(reference)
    order = np.arange(n_chunks * chunk_size)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(reference))[: order.size]
    samples: dict[tuple[str, str], list[float]] = {}
    for i in range(n_chunks):
        rows = reference.iloc[order[i * chunk_size : (i + 1) * chunk_size]]
        chunk = Profile.empty(spec).update(rows)
        for name, ref_col in whole.columns.items():
            numeric = isinstance(ref_col, NumericColumnProfile)
            candidates = _NUMERIC_EFFECTS if numeric else _CATEGORICAL_EFFECTS
            chosen = tuple(m for m in candidates if m in wanted)
            for method, raw in column_statistics(ref_col, chunk.columns[name], chosen).items():
                if raw.statistic is not None:
                    samples.setdefault((name, method), []).append(raw.statistic)

    thresholds = {}
    for key, values in samples.items():
        arr = np.asarray(values, dtype=np.float64)
        if rule == "quantile":
            value = float(np.quantile(arr, quantile))
        else:
            spread = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            value = float(arr.mean()) + std_multiplier * spread
        thresholds[key] = value
    return thresholds
