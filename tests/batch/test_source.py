"""Parquet inputs: discovery, hostile files, partition plans, fingerprints, and the
column types refused up front (checked against what validation would say of each row)."""

from __future__ import annotations

import decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from livemodel.batch.source import check_feature_types, open_input, plan
from livemodel.errors import InvalidInputError, SchemaError
from livemodel.schema.signature import infer_signature
from livemodel.schema.validation import validate

STRUCTURAL = {"missing_column", "wrong_type", "null"}


def frame(n: int = 100, start: int = 0) -> pd.DataFrame:
    i = np.arange(start, start + n)
    return pd.DataFrame(
        {
            "count": i,
            "amount": i * 1.5,
            "vip": i % 2 == 0,
            "city": np.where(i % 3 == 0, "a", "b"),
            "at": pd.to_datetime(i, unit="h", utc=True),
        }
    )


def write(path: Path, data: pd.DataFrame, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(data, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


def test_a_file_and_a_directory_are_read_from_their_footers(tmp_path: Path) -> None:
    one = open_input(write(tmp_path / "one.parquet", frame(1000), row_group_size=300))
    assert one.rows == 1000
    assert one.files[0].row_groups == (300, 300, 300, 100)
    folder = tmp_path / "dataset"
    write(folder / "b" / "part-1.parquet", frame(50, 200))
    write(folder / "a.parquet", frame(200))
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-1.parquet.crc").write_bytes(b"\x00crc")
    (folder / "_tmp").mkdir()
    (folder / "_tmp" / "junk").write_text("not parquet, skipped like Spark skips it")
    many = open_input(folder)
    assert [Path(f.path).relative_to(folder).as_posix() for f in many.files] == [
        "a.parquet",
        "b/part-1.parquet",
    ]
    assert many.rows == 250
    assert many.schema.names == ["count", "amount", "vip", "city", "at"]


def test_partitions_cover_every_row_group_once_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    write(folder / "a.parquet", frame(1000), row_group_size=300)
    write(folder / "b.parquet", frame(0))  # empty files are skipped
    write(folder / "c.parquet", frame(450, 1000), row_group_size=100)
    source = open_input(folder)
    for rows, expected in [(1, 9), (300, 6), (600, 3), (10**9, 2)]:
        parts = plan(source, rows)
        assert len(parts) == expected
        assert [p.index for p in parts] == list(range(len(parts)))
        assert sum(p.rows for p in parts) == 1450
        assert [p.first_row for p in parts] == list(np.cumsum([0] + [p.rows for p in parts])[:-1])
        covered = [(p.path, g) for p in parts for g in p.row_groups]
        everything = [(f.path, g) for f in source.files for g, n in enumerate(f.row_groups) if n]
        assert covered == everything
        assert all(p.rows <= max(rows, 300) for p in parts)


def test_the_fingerprint_follows_the_data(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "x.parquet", frame(100))
    b = write(tmp_path / "b" / "x.parquet", frame(100))
    assert open_input(a).fingerprint == open_input(b).fingerprint
    changed = frame(100)
    changed.loc[7, "amount"] = 1e9
    write(b, changed)
    assert open_input(a).fingerprint != open_input(b).fingerprint
    before = open_input(tmp_path / "a").fingerprint
    a.rename(tmp_path / "a" / "y.parquet")  # same bytes, another file of the dataset
    assert open_input(tmp_path / "a").fingerprint != before


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _dir(path: Path) -> Path:
    path.mkdir()
    (path / "_SUCCESS").write_text("")
    return path


def _truncated(tmp: Path) -> Path:
    whole = write(tmp / "whole.parquet", frame(100)).read_bytes()
    return _bytes(tmp / "cut.parquet", whole[: len(whole) // 2])


def _mixed(tmp: Path) -> Path:
    write(tmp / "d" / "a.parquet", frame(10))
    write(tmp / "d" / "b.parquet", frame(10).assign(amount=lambda f: f["amount"].astype(str)))
    return tmp / "d"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nope.parquet", "no such file or directory"),
        (lambda p: _bytes(p / "empty.parquet", b""), "is empty"),
        (lambda p: _bytes(p / "data.csv", b"a,b\n1,2\n"), "is not a Parquet file"),
        (lambda p: _bytes(p / "x.parquet", b"PAR1"), "is not a Parquet file"),
        (lambda p: _bytes(p / "x.parquet", b"PAR1" + b"\x00" * 100), "not a complete Parquet"),
        (_truncated, "not a complete Parquet"),
        (lambda p: _bytes(p / "x.parquet", b"PAR1" + b"\xff" * 20 + b"\x10\x00\x00\x00PAR1"),
         "cannot read"),
        (lambda p: _dir(p / "nothing"), "holds no Parquet files"),
        (lambda p: _bytes(_dir(p / "d") / "notes.txt", b"hello").parent, "is not a Parquet file"),
        (lambda p: write(p / "zero.parquet", frame(0)), "has no rows"),
        (_mixed, "do not share one schema"),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_clear_error(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidInputError, match=message):
        open_input(path)


# -- column types: refuse up front only what validation would reject on every row ----------

SIGNATURE = infer_signature(frame(100))

INCOMPATIBLE = {
    "count": [pa.array(["1", "2"]), pa.array([True, False]), pa.array([decimal.Decimal(1)] * 2)],
    "amount": [pa.array(["1.5", "2"]), pa.array([True, False])],
    "vip": [pa.array([1, 0]), pa.array(["true", "false"])],
    "city": [pa.array([1, 2]), pa.array([1.0, 2.0])],
    "at": [pa.array([1, 2]), pa.array([1.5, 2.5])],
}
COMPATIBLE = {
    "count": [pa.array([1.0, 2.0]), pa.array([1, 2], pa.int32()), pa.nulls(2)],
    "amount": [pa.array([1, 2]), pa.array([1.5, 2.5], pa.float32())],
    "vip": [pa.array([True, False])],
    "city": [pa.array(["a", "b"]).dictionary_encode(), pa.array(["a", "b"], pa.large_string())],
    "at": [pa.array(["1970-01-01T03:00:00Z", "1970-01-02T00:00:00Z"]),
           pa.array(pd.to_datetime([3, 4], unit="h", utc=True))],
}  # fmt: skip


def _wrong_everywhere(column: str, values: pa.Array) -> bool:
    """What validation says: is every non-null cell of the column the wrong type?"""
    data = pa.table({column: values}).to_pandas()
    result = validate(SIGNATURE, data)
    (check,) = [c for c in result.checks if c.schema.name == column]
    return bool(check.wrong_type.any() and (check.wrong_type == ~check.null).all())


@pytest.mark.parametrize(
    ("column", "values"), [(c, v) for c, vs in INCOMPATIBLE.items() for v in vs]
)
def test_a_column_every_row_would_reject_is_refused(column: str, values: pa.Array) -> None:
    assert _wrong_everywhere(column, values)
    schema = frame(1).drop(columns=[column]).pipe(pa.Schema.from_pandas, preserve_index=False)
    schema = schema.append(pa.field(column, values.type))
    with pytest.raises(SchemaError, match=f"column '{column}' is .* every value would be"):
        check_feature_types(SIGNATURE, schema, STRUCTURAL)
    check_feature_types(SIGNATURE, schema, {"null"})  # wrong types flagged, not rejected


@pytest.mark.parametrize(("column", "values"), [(c, v) for c, vs in COMPATIBLE.items() for v in vs])
def test_a_column_of_a_compatible_type_is_let_through(column: str, values: pa.Array) -> None:
    assert not _wrong_everywhere(column, values)
    schema = frame(1).drop(columns=[column]).pipe(pa.Schema.from_pandas, preserve_index=False)
    check_feature_types(SIGNATURE, schema.append(pa.field(column, values.type)), STRUCTURAL)


def test_a_missing_feature_is_refused_when_it_would_reject_every_row() -> None:
    schema = pa.Schema.from_pandas(frame(1).drop(columns=["amount", "vip"]), preserve_index=False)
    with pytest.raises(SchemaError, match="lacks feature column.*'amount', 'vip'"):
        check_feature_types(SIGNATURE, schema, STRUCTURAL)
    check_feature_types(SIGNATURE, schema, {"null", "wrong_type"})  # flagged instead
