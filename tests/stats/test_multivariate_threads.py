"""The multivariate detectors run on one thread by default, with the same results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError
from livemodel.stats.multivariate import DomainClassifierDrift, PCAReconstructionDrift


def _frame(n: int, rho: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    c = rng.choice(["u", "v", "w"], size=n)
    return pd.DataFrame({"a": a, "b": b, "d": rng.normal(size=n), "c": c})


def _threads(api: str) -> set[int]:
    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == api}


class _Watched(PCAReconstructionDrift):
    """Records the BLAS thread counts in force while each fold is fitted."""

    seen: list[set[int]]

    def _fit_fold(self, cols: dict[str, Any]) -> Any:
        self.seen = [*getattr(self, "seen", []), _threads("blas")]
        return super()._fit_fold(cols)


def test_thread_counts_do_not_change_the_statistics() -> None:
    ref, same, moved = _frame(1200, 0.8, 0), _frame(500, 0.8, 1), _frame(500, -0.2, 2)
    outcomes = []
    for n_threads in (1, 2, None):
        pca = PCAReconstructionDrift(n_threads=n_threads).fit(ref)
        domain = DomainClassifierDrift(max_iter=20, n_threads=n_threads).fit(ref)
        outcomes.append(
            [pca.calculate(w).statistic for w in (same, moved)]
            + [domain.calculate(w).statistic for w in (same, moved)]
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][1] > outcomes[0][0] and outcomes[0][3] > 0.6 > outcomes[0][2]


def test_one_blas_thread_while_fitting_by_default() -> None:
    with threadpool_limits(limits=2, user_api="blas"):  # the tests' conftest sets 1
        if _threads("blas") != {2}:
            pytest.skip("BLAS cannot run on 2 threads here: nothing to limit")
        watched = _Watched().fit(_frame(400, 0.5, 0))
        assert _threads("blas") == {2}  # restored afterwards
    assert len(watched.seen) == watched.n_folds and all(s == {1} for s in watched.seen)


def test_thread_count_is_checked() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidInputError, match="n_threads"):
            PCAReconstructionDrift(n_threads=bad).fit(_frame(100, 0.5, 0))  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="n_threads"):
            DomainClassifierDrift(n_threads=bad).fit(_frame(100, 0.5, 0))  # type: ignore[arg-type]
