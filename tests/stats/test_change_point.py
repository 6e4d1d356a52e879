"""``change_point``: the least-squares split of one mean shift, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError
from livemodel.stats.detectors import change_point


def brute_force(x: np.ndarray) -> int:
    """The k minimising the within-segment squared error of x[:k] and x[k:]."""
    sse = [((x[:k] - x[:k].mean()) ** 2).sum() + ((x[k:] - x[k:].mean()) ** 2).sum()
           for k in range(1, x.size)]  # fmt: skip
    return int(np.argmin(sse)) + 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=60))
def test_equals_the_brute_force_split(values: list[float]) -> None:
    x = np.asarray(values)
    found = change_point(x)
    sse = [((x[:k] - x[:k].mean()) ** 2).sum() + ((x[k:] - x[k:].mean()) ** 2).sum()
           for k in range(1, x.size)]  # fmt: skip
    total = ((x - x.mean()) ** 2).sum()
    if found == 0:  # "no shift": no split reduces the squared error beyond rounding
        assert total - min(sse) <= 1e-9 * max(1.0, float(x @ x))
    else:  # ties between splits within float rounding may go either way
        assert sse[found - 1] == pytest.approx(min(sse), rel=1e-9, abs=1e-6)


def test_a_clean_shift_and_the_edges() -> None:
    assert change_point([0.0] * 500 + [1.0] * 92) == 500
    rng = np.random.default_rng(0)
    noisy = np.concatenate([rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)])
    assert abs(change_point(noisy) - 300) <= 10
    assert brute_force(noisy) == change_point(noisy)
    assert change_point([]) == 0 and change_point([3.0]) == 0 and change_point([2.0, 2.0]) == 0
    with pytest.raises(InvalidInputError):
        change_point([0.0, float("nan")])
