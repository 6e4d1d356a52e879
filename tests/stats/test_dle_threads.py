"""DLE's nannies run on bounded OpenMP threads without changing the estimates."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError
from livemodel.stats.dle import DLE


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    pred = 2 * x[:, 0] - x[:, 1]
    return x, pred + rng.normal(scale=0.5 + np.abs(x[:, 0]), size=n), pred


def _openmp() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]


def test_one_thread_gives_the_estimates_of_all_threads() -> None:
    x, y, pred = _data(1500, 0)
    x_new, _, pred_new = _data(400, 1)
    before = _openmp()
    one = DLE(metrics=("mae", "rmse"), max_iter=30).fit(x, y, pred)
    assert _openmp() == before  # the limit is lifted after the fit
    every = DLE(metrics=("mae", "rmse"), max_iter=30, n_threads=None).fit(x, y, pred)
    a, b = one.estimate(x_new, pred_new), every.estimate(x_new, pred_new)
    assert _openmp() == before
    for metric in ("mae", "rmse"):
        assert a[metric].value == pytest.approx(b[metric].value, rel=1e-9)
        assert a[metric].std_error == pytest.approx(b[metric].std_error, rel=1e-9)


def test_threads_must_be_positive() -> None:
    x, y, pred = _data(50, 2)
    with pytest.raises(InvalidInputError, match="n_threads"):
        DLE(n_threads=0).fit(x, y, pred)
