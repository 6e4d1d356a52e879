from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET, load_flights
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """6,000 real flights of January 2013 (features + target), in time order."""
    return load_flights((1,)).iloc[:6000][[*FEATURES, TARGET]].reset_index(drop=True)


def linear_pipeline() -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encode = ColumnTransformer(
        [
            ("num", numeric, list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


@pytest.fixture(scope="session")
def fitted(flights: pd.DataFrame) -> Any:
    return linear_pipeline().fit(flights[list(FEATURES)], flights[TARGET])


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    db = open_database(db_url)
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()
