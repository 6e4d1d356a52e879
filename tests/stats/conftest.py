"""Seeded data shared by the stats tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

SHIFTED = ("n00", "n03", "n07", "n17", "c2")
CARDINALITIES = (3, 5, 10, 20, 50)


def drift_frame(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """20 numeric columns (normal, lognormal, uniform, exponential, Poisson counts) and 5
    categorical ones (cardinality 3-50, Zipf-like), about 5% missing everywhere.

    With ``shifted``, five columns change: n00 mean +0.25 sd, n03 sd x1.3, n07 (lognormal)
    scale x1.3, n17 (Poisson) rate x1.3, c2 re-weighted towards its rare categories.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(20):
        name = f"n{i:02d}"
        change = shifted and name in SHIFTED
        if i < 6:
            mean, sd = 10.0 * i, 1.0 + i
            mean += 0.25 * sd if change and i == 0 else 0.0
            sd *= 1.3 if change and i == 3 else 1.0
            x = rng.normal(mean, sd, n)
        elif i < 10:
            x = rng.lognormal(0.5 * (i - 6), 0.75, n) * (1.3 if change else 1.0)
        elif i < 13:
            x = rng.uniform(-i, i, n)
        elif i < 17:
            x = rng.exponential(1.0 + i - 13, n)
        else:
            rate = (2.0 + 3 * (i - 17)) * (1.3 if change else 1.0)
            x = rng.poisson(rate, n).astype(np.float64)
        x[rng.random(n) < 0.05] = np.nan
        cols[name] = x
    for j, k in enumerate(CARDINALITIES):
        name = f"c{j}"
        p = 1.0 / np.arange(1, k + 1)
        if shifted and name in SHIFTED:
            p = p[::-1] ** 0.5 * p
        p /= p.sum()
        labels = np.array([f"{name}_{v}" for v in range(k)], dtype=object)
        values = labels[rng.choice(k, n, p=p)]
        values[rng.random(n) < 0.05] = None
        cols[name] = pd.Series(values, dtype="str")
    return pd.DataFrame(cols)


@pytest.fixture
def make_drift_frame() -> Callable[..., pd.DataFrame]:
    return drift_frame


@pytest.fixture
def shifted_columns() -> tuple[str, ...]:
    return SHIFTED
