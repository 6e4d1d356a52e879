"""The scale benchmark's model, registry and prediction logs, generated once under
``benchmarks/.data/scale/``.

* **Model**: a scikit-learn pipeline (impute, scale, one-hot, logistic regression) on the
  25 columns of the drift benchmark's data (:mod:`driftbench.data`: 20 numeric with NaNs,
  5 categorical), trained on its 100k-row reference with a synthetic binary target, and
  registered as ``bench`` with that reference (profile + sample with model outputs).
* **Logs**: ``logs-<rows>/`` holds a prediction log of ``rows`` predictions in the layout
  a compacted log has (one Parquet segment of 1M rows per writer session, written with
  :func:`livemodel.store.logbatch.prediction_table`): features of the drift benchmark's
  *current* stream (5 shifted columns), the model's label and probabilities, 10M
  predictions a day from 2024-01-01. Ids and times are unique; the feature values of the
  first 10M rows repeat every 10M rows (generating and predicting 100M distinct rows
  takes ~11 min here and would measure the generator, not the monitor). The segments of
  the 100M log that equal the 10M log's are hard links to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from driftbench.data import BLOCK_ROWS, CATEGORICAL, NUMERIC, block
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.logbatch import prediction_table
from livemodel.store.logsegments import PARQUET_SUFFIX, segment_stem
from livemodel.store.metadata import MetadataStore

MODEL = "bench"
TARGET = "y"
SEGMENT_ROWS = 1_000_000
DISTINCT_ROWS = 10_000_000
ROWS_PER_DAY = 10_000_000
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)
_BLOCKS_PER_SEGMENT = SEGMENT_ROWS // BLOCK_ROWS


def env(root: Path) -> dict[str, str]:
    """The livemodel settings that point at the benchmark's registry."""
    return {
        "LIVEMODEL_DB_URL": f"sqlite:///{root / 'lm.db'}",
        "LIVEMODEL_ARTIFACTS": str(root / "artifacts"),
        "LIVEMODEL_LOGS": str(root / "logs-unused"),
    }


def registry(root: Path) -> Registry:
    db = open_database(env(root)["LIVEMODEL_DB_URL"])
    return Registry(MetadataStore(db), ArtifactStore(str(root / "artifacts")), actor="bench")


def target(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A synthetic label the features explain in part (log-odds from three columns)."""
    rng = np.random.default_rng(seed)
    z = 0.8 * (frame["n00"].fillna(0.0) - 0.0) + 0.3 * (frame["n05"].fillna(50.0) - 50.0) / 6
    z = z + 0.5 * (frame["c0"] == "c0_0") + rng.logistic(0.0, 1.0, len(frame))
    return (z > 0.4).to_numpy().astype(np.int64)


def pipeline() -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    encode = ColumnTransformer(
        [("num", numeric, list(NUMERIC)), ("cat", categorical, list(CATEGORICAL))]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


def ensure_model(root: Path) -> Any:
    """The registered model (registered on the first call)."""
    root.mkdir(parents=True, exist_ok=True)
    reg = registry(root)
    if MODEL in {m.name for m in reg.models()}:
        return reg.load(f"{MODEL}@production").model
    reference = block("reference", 0).to_pandas()
    reference[TARGET] = target(reference, 1)
    validation = block("reference", 1, 20_000).to_pandas()
    validation[TARGET] = target(validation, 2)
    model = pipeline().fit(reference[list(NUMERIC + CATEGORICAL)], reference[TARGET])
    reg.register(
        MODEL, model, reference, target=TARGET, validation=validation, alias="production", seed=0
    )
    return model


def _segment(model: Any, index: int, start_row: int) -> pa.Table:
    """Segment ``index`` of the log: 1M rows starting at ``start_row`` of the log."""
    base = index % (DISTINCT_ROWS // SEGMENT_ROWS)
    blocks = [block("current", base * _BLOCKS_PER_SEGMENT + b) for b in range(_BLOCKS_PER_SEGMENT)]
    features = pa.concat_tables(blocks)
    proba = model.predict_proba(features.to_pandas())[:, 1]
    n = features.num_rows
    table = prediction_table(
        ids=pa.array(["-"] * n, pa.string()),
        time_us=0,
        model=MODEL,
        version=1,
        flags=pa.array([[] for _ in range(n)], pa.list_(pa.string())),
        arm=None,
        features={c: features.column(c).combine_chunks() for c in features.column_names},
        outputs={
            "label": pa.array((proba >= 0.5).astype(np.int64)),
            "proba.0": pa.array(1.0 - proba),
            "proba.1": pa.array(proba),
        },
    )
    return _renumbered(table, start_row)


def _renumbered(table: pa.Table, start_row: int) -> pa.Table:
    """``table`` with the ids and times of rows ``start_row`` on (10M rows a day)."""
    rows = np.arange(start_row, start_row + table.num_rows)
    ids = pa.array(np.char.add("p", rows.astype(str)).astype(object), pa.string())
    day_us = 86_400_000_000
    start_us = int(DAY0.timestamp() * 1_000_000)
    times = (
        start_us
        + (rows // ROWS_PER_DAY) * day_us
        + (rows % ROWS_PER_DAY) * (day_us // ROWS_PER_DAY)
    )
    column = pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.column_names.index("prediction_id"), "prediction_id", ids)
    return table.set_column(table.column_names.index("time"), "time", column)


def log_root(root: Path, rows: int) -> Path:
    return root / f"logs-{rows}"


def ensure_log(root: Path, rows: int, on_segment: Callable[[int], None] | None = None) -> Path:
    """The log of ``rows`` predictions (a multiple of 1M), written unless complete."""
    if rows % SEGMENT_ROWS:
        raise ValueError(f"log sizes are whole millions of rows, not {rows}")
    model = ensure_model(root)
    logs = log_root(root, rows)
    directory = logs / MODEL / "predictions"
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(rows // SEGMENT_ROWS):
        name = _name(index)
        path = directory / name
        if not path.exists():
            shared = log_root(root, DISTINCT_ROWS) / MODEL / "predictions" / name
            if index < DISTINCT_ROWS // SEGMENT_ROWS and shared.exists() and shared != path:
                os.link(shared, path)
            else:
                base = directory / _name(index % (DISTINCT_ROWS // SEGMENT_ROWS))
                if base.exists():  # the same features and outputs, new ids and times
                    table = _renumbered(pq.read_table(base), index * SEGMENT_ROWS)
                else:
                    table = _segment(model, index, index * SEGMENT_ROWS)
                tmp = path.with_suffix(".tmp")
                pq.write_table(table, tmp, compression="zstd", row_group_size=131_072)
                tmp.replace(path)
        if on_segment is not None:
            on_segment(index + 1)
    return logs


def _name(index: int) -> str:
    start = DAY0 + timedelta(microseconds=index)
    return segment_stem(1, int(start.timestamp() * 1_000_000), "bench", index) + PARQUET_SUFFIX


def window_range(rows: int) -> tuple[datetime, datetime]:
    """``[since, until)`` covering the log of ``rows`` rows (whole days)."""
    days = -(-rows // ROWS_PER_DAY)
    return DAY0, DAY0 + timedelta(days=days)
