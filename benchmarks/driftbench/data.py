"""The seeded benchmark data set, written once as Parquet under ``benchmarks/.data/``.

25 columns: 20 numeric (normal, lognormal, uniform, exponential, Poisson counts stored
as float64) with about 5% NaN each, and 5 categorical string columns of cardinality 3-50
(Zipf-like frequencies) with about 5% nulls. The *current* stream differs from the
reference in exactly the five columns of :data:`SHIFTED`:

* ``n01`` (normal): mean + 0.25 standard deviation;
* ``n08`` (lognormal): + 0.25 standard deviation (a location shift);
* ``n04`` (normal): standard deviation x 1.3 (same mean);
* ``c1`` (5 categories) and ``c3`` (20 categories): frequencies flattened, ``p ** 0.3``
  and ``p ** 0.5`` renormalised (Jensen-Shannon distance 0.15 and 0.17, PSI 0.18 and 0.24).

Rows are generated in blocks of :data:`BLOCK_ROWS`, each from its own seed, so the
current files of every size are prefixes of one stream (the 100k file is the first 100k
rows of the 1M file, which is the first million of the 10M file) and each block becomes
one Parquet row group: generation holds one block in memory whatever the size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240611
BLOCK_ROWS = 100_000
REFERENCE_ROWS = 100_000
MISSING_RATE = 0.05
NUMERIC = tuple(f"n{i:02d}" for i in range(20))
CARDINALITIES = (3, 5, 10, 20, 50)
CATEGORICAL = tuple(f"c{j}" for j in range(len(CARDINALITIES)))
COLUMNS = NUMERIC + CATEGORICAL
SHIFTED = ("n01", "n04", "n08", "c1", "c3")
_FLATTEN = {"c1": 0.3, "c3": 0.5}
_STREAM_ID = {"reference": 1, "current": 2}


def _numeric(i: int, n: int, rng: np.random.Generator, shifted: bool) -> np.ndarray:
    name = NUMERIC[i]
    change = shifted and name in SHIFTED
    if i < 6:  # normal
        mean, sd = 10.0 * i, 1.0 + i
        if change and name == "n01":
            mean += 0.25 * sd
        if change and name == "n04":
            sd *= 1.3
        x = rng.normal(mean, sd, n)
    elif i < 10:  # lognormal
        mu, sigma = 0.5 * (i - 6), 0.75
        x = rng.lognormal(mu, sigma, n)
        if change:
            sd = np.sqrt((np.exp(sigma**2) - 1.0) * np.exp(2 * mu + sigma**2))
            x += 0.25 * sd
    elif i < 13:  # uniform
        x = rng.uniform(-i, i, n)
    elif i < 17:  # exponential
        x = rng.exponential(1.0 + i - 13, n)
    else:  # integer counts
        x = rng.poisson(2.0 + 3 * (i - 17), n).astype(np.float64)
    x[rng.random(n) < MISSING_RATE] = np.nan
    return x


def _categorical(j: int, n: int, rng: np.random.Generator, shifted: bool) -> pa.Array:
    name, k = CATEGORICAL[j], CARDINALITIES[j]
    p = 1.0 / np.arange(1, k + 1)
    if shifted and name in _FLATTEN:
        p = p ** _FLATTEN[name]
    p /= p.sum()
    labels = pa.array([f"{name}_{v}" for v in range(k)], type=pa.string())
    codes = rng.choice(k, n, p=p)
    mask = rng.random(n) < MISSING_RATE
    return labels.take(pa.array(codes, mask=mask))  # plain strings, nulls where masked


def block(stream: str, index: int, rows: int = BLOCK_ROWS) -> pa.Table:
    """Rows ``[index * BLOCK_ROWS, index * BLOCK_ROWS + rows)`` of ``stream``."""
    rng = np.random.default_rng([SEED, _STREAM_ID[stream], index])
    shifted = stream == "current"
    arrays: list[pa.Array] = [pa.array(_numeric(i, rows, rng, shifted)) for i in range(20)]
    arrays += [_categorical(j, rows, rng, shifted) for j in range(len(CARDINALITIES))]
    return pa.Table.from_arrays(arrays, names=list(COLUMNS))


def _blocks(stream: str, rows: int) -> Iterator[pa.Table]:
    for index, start in enumerate(range(0, rows, BLOCK_ROWS)):
        yield block(stream, index, min(BLOCK_ROWS, rows - start))


def write(path: Path, stream: str, rows: int, on_block: Callable[[int], None] | None) -> None:
    """Write ``rows`` rows of ``stream`` to ``path`` atomically, one row group per block."""
    tmp = path.with_suffix(".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for table in _blocks(stream, rows):
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=BLOCK_ROWS)
            if on_block is not None:
                on_block(table.num_rows)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def dataset_path(root: Path, stream: str, rows: int) -> Path:
    return root / f"{stream}_{rows}.parquet"


def ensure(
    root: Path, stream: str, rows: int, on_block: Callable[[int], None] | None = None
) -> tuple[Path, bool]:
    """The file of ``rows`` rows of ``stream``, generated unless already there with the
    right row count; returns ``(path, generated)``."""
    root.mkdir(parents=True, exist_ok=True)
    path = dataset_path(root, stream, rows)
    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return path, False
        except (OSError, pa.ArrowInvalid):
            pass  # a torn file from an interrupted run: write it again
    write(path, stream, rows, on_block)
    return path, True
