"""Shared fixtures: real flights, a fitted pipeline, registries on SQLite and PostgreSQL,
and a module of misbehaving models importable by name (as a registered model must be)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.serving.conftest import linear_pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore

# Rows whose dep_delay is one of these make the faulty model misbehave.
RAISE, NAN = 7777.0, 6666.0

FAULTS_MODULE = f'''
"""A classifier that misbehaves on purpose on sentinel dep_delay values."""
import numpy as np


class Faulty:
    def __init__(self, inner):
        self.inner = inner
        self.classes_ = inner.classes_

    def predict_proba(self, X):
        delay = X["dep_delay"].to_numpy(dtype=float, na_value=np.nan)
        if (delay == {RAISE}).any():
            raise RuntimeError("the model failed on purpose")
        proba = np.array(self.inner.predict_proba(X), dtype=float)
        proba[delay == {NAN}] = np.nan
        return proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
'''


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # BLAS/OpenMP threads oversubscribe a shared 2-core machine.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """10,000 real flights of January 2013: ``time``, features and ``late``."""
    return load_flights((1,)).iloc[:10_000].reset_index(drop=True)


@pytest.fixture(scope="session")
def fitted(flights: pd.DataFrame) -> Any:
    """Trained on the first 4,000 flights; the rest are what batch jobs score."""
    train = flights.iloc[:4000]
    return linear_pipeline().fit(train[list(FEATURES)], train[TARGET])


@pytest.fixture(scope="session")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The module ``batch_faults`` (its folder on ``sys.path`` for the session)."""
    folder = tmp_path_factory.mktemp("faults")
    (folder / "batch_faults.py").write_text(FAULTS_MODULE)
    sys.path.insert(0, str(folder))
    import batch_faults  # type: ignore[import-not-found]

    return batch_faults


def register(registry: Registry, model: Any, flights: pd.DataFrame, name: str = "flights") -> int:
    """Register ``model`` as ``name`` with alias production; returns the version."""
    train = flights.iloc[:4000][[*FEATURES, TARGET]]
    return registry.register(name, model, train, target=TARGET, alias="production").version


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    db = open_database(db_url)
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()


def scoring_input(flights: pd.DataFrame) -> pd.DataFrame:
    """The 6,000 flights after the training ones, with a key column ``flight_id``."""
    rows = flights.iloc[4000:].reset_index(drop=True)
    rows.insert(0, "flight_id", [f"F{i:05d}" for i in range(len(rows))])
    return rows
