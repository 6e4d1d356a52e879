from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.serving.conftest import linear_pipeline

from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """6,000 real flights of January 2013 (features + target), in time order."""
    return load_flights((1,)).iloc[:6000][[*FEATURES, TARGET]].reset_index(drop=True)


@pytest.fixture(scope="session")
def fitted(flights: pd.DataFrame) -> Any:
    return linear_pipeline().fit(flights[list(FEATURES)], flights[TARGET])


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    db = open_database(db_url)
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()
