"""Reading the log: torn tails, corrupt files, schema growth, projections, streaming."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from livemodel.errors import InvalidInputError, StoreError
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import (
    Segment,
    abandoned_segments,
    compact,
    compact_segment,
    list_segments,
    read_jsonl,
)
from livemodel.store.logsql import connect
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import BASE_COLUMNS, PredictionRecord

T0 = datetime(2024, 5, 1, tzinfo=UTC)
NO_COMPACT = LogOptions(compact=False)


def rec(i: int = 0, version: int = 1, **features: object) -> PredictionRecord:
    return PredictionRecord(
        f"id{i:05d}-{uuid.uuid4().hex[:6]}",
        "m",
        version,
        features or {"x": float(i)},
        {"label": "a", "proba": {"a": 0.5, "b": 0.5}},
        T0 + timedelta(seconds=i),
    )


def write_segments(root: Path, *batches: list[PredictionRecord]) -> list[Path]:
    """One closed JSON-lines segment per batch; returns their paths in order."""
    for batch in batches:
        with PredictionLog(root, NO_COMPACT) as log:
            log.append(batch)
    return [s.path for s in list_segments(root / "m" / "predictions")]


def ids(table: pa.Table) -> list[str]:
    return [str(i) for i in table["prediction_id"].to_pylist()]


# -- torn tails and corruption ----------------------------------------------------------


@pytest.mark.parametrize(
    "tail", [b'{"id": "torn", "ts": 17', b"\x00\x00\x00\x00", b"{", b'{"id": "x"}']
)
def test_a_torn_last_line_is_skipped(tmp_path: Path, tail: bytes) -> None:
    records = [rec(i) for i in range(3)]
    (path,) = write_segments(tmp_path, records)
    open_path = path.with_name(path.name.replace(".jsonl", ".open.jsonl"))
    path.rename(open_path)  # as a writer killed mid-write leaves it
    with open_path.open("ab") as f:
        f.write(tail)
    assert ids(LogReader(tmp_path).window("m")) == [r.prediction_id for r in records]
    assert LogReader(tmp_path).known_ids("m", ["torn", "x"]) == set()


def test_a_closed_segment_with_a_torn_tail_is_read_too(tmp_path: Path) -> None:
    (path,) = write_segments(tmp_path, [rec(1)])
    with path.open("ab") as f:
        f.write(b'{"id": "half')
    assert LogReader(tmp_path).window("m").num_rows == 1


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b'{"id": "x", bad json}\n', "line 2"),
        (b"[1, 2]\n", "not a JSON object"),
        (b"\n", "line 2"),
        (b'{"id": "x"}\n', "bad record"),  # valid JSON, not a record
        (b'{"id": "x", "ts": "soon", "version": 1, "model": "m"}\n', "bad record"),
    ],
)
def test_a_corrupt_segment_in_the_middle_names_the_file(
    tmp_path: Path, garbage: bytes, message: str
) -> None:
    paths = write_segments(tmp_path, [rec(1)], [rec(2)], [rec(3)])
    middle = paths[1]
    data = middle.read_bytes()
    middle.write_bytes(data + garbage + data)
    with pytest.raises(StoreError, match=rf"{middle.name}.*{message}|{message}.*{middle.name}"):
        LogReader(tmp_path).window("m")
    with pytest.raises(StoreError, match=middle.name):
        list(LogReader(tmp_path).iter_batches("m"))


def test_a_corrupt_parquet_segment_names_the_file(tmp_path: Path) -> None:
    paths = write_segments(tmp_path, [rec(1)], [rec(2)], [rec(3)])
    parquet = compact_segment(paths[1], "predictions")
    parquet.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(StoreError, match=parquet.name):
        LogReader(tmp_path).window("m")


def test_a_wrongly_typed_base_column_is_corruption(tmp_path: Path) -> None:
    (path,) = write_segments(tmp_path, [rec(1)])
    line = path.read_bytes().replace(b'"flags":[]', b'"flags":"nope"')
    path.write_bytes(line)
    with pytest.raises(StoreError, match=path.name):
        LogReader(tmp_path).window("m")


# -- schema growth and mixed types ------------------------------------------------------


def test_features_may_grow_and_change_type_across_segments(tmp_path: Path) -> None:
    paths = write_segments(
        tmp_path,
        [rec(1, x=1, code=7)],
        [rec(2, x=2.5, code="A7", new=True)],
        [rec(3, x=3, code=None)],
    )
    compact_segment(paths[0], "predictions")  # one Parquet segment among JSON lines
    table = LogReader(tmp_path).window("m")
    assert table["f.x"].type == pa.float64() and table["f.x"].to_pylist() == [1.0, 2.5, 3.0]
    assert table["f.code"].type == pa.string()
    assert table["f.code"].to_pylist() == ["7", "A7", None]
    assert table["f.new"].to_pylist() == [None, True, None]
    assert table.column_names[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert table.column_names[len(BASE_COLUMNS) :] == sorted(
        table.column_names[len(BASE_COLUMNS) :]
    )


def test_mixed_types_within_one_segment_read_as_json_text(tmp_path: Path) -> None:
    write_segments(tmp_path, [rec(1, v=True), rec(2, v=3), rec(3, v="s"), rec(4, v=None)])
    assert LogReader(tmp_path).window("m")["f.v"].to_pylist() == ["true", "3", "s", None]


# -- windows, projections, streaming ----------------------------------------------------


def test_columns_select_in_order_and_unknown_ones_read_null(tmp_path: Path) -> None:
    write_segments(tmp_path, [rec(1), rec(2)])
    table = LogReader(tmp_path).window("m", columns=["o.label", "f.x", "f.never", "f.x"])
    assert table.column_names == ["o.label", "f.x", "f.never"]
    assert table["f.x"].to_pylist() == [1.0, 2.0]
    assert table["f.never"].null_count == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"columns": "f.x"},
        {"columns": ["f.x", ""]},
        {"columns": [1]},
        {"version": "1"},
        {"version": True},
        {"start": datetime(2024, 1, 1)},  # naive on purpose
        {"end": "2024-01-01"},
    ],
)
def test_bad_window_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        LogReader(tmp_path).window("m", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["", "../x", "a/b", ".."])
def test_unsafe_model_names_are_refused_on_read(tmp_path: Path, model: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid model name"):
        LogReader(tmp_path).window(model)


def test_an_unknown_model_reads_as_an_empty_typed_window(tmp_path: Path) -> None:
    table = LogReader(tmp_path).window("nobody", with_labels=True)
    assert table.num_rows == 0
    assert table.column_names == [*BASE_COLUMNS, "label", "label_time", "label_source"]
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert LogReader(tmp_path / "missing").models() == []


def test_time_bounds_are_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    write_segments(tmp_path, [rec(i, version=1 + i % 2) for i in range(10)])
    reader = LogReader(tmp_path)
    got = reader.window("m", start=T0 + timedelta(seconds=2), end=T0 + timedelta(seconds=5))
    assert got["f.x"].to_pylist() == [2.0, 3.0, 4.0]
    got = reader.window("m", version=2, start=T0 + timedelta(seconds=2))
    assert got["f.x"].to_pylist() == [3.0, 5.0, 7.0, 9.0]


def test_iter_batches_streams_one_schema_in_bounded_batches(tmp_path: Path) -> None:
    paths = write_segments(
        tmp_path,
        [rec(i, x=i) for i in range(0, 300)],
        [rec(i, x=i, extra="e") for i in range(300, 500)],
    )
    compact_segment(paths[0], "predictions")
    batches = list(LogReader(tmp_path).iter_batches("m", batch_size=64))
    assert all(0 < b.num_rows <= 64 for b in batches)
    assert len({b.schema for b in batches}) == 1
    table = pa.Table.from_batches(batches)
    assert sorted(table["f.x"].to_pylist()) == list(range(500))
    assert table["f.extra"].null_count == 300
    with pytest.raises(InvalidInputError, match="batch_size"):
        LogReader(tmp_path).iter_batches("m", batch_size=0)


def test_streamed_reads_keep_duckdb_within_the_given_threads_and_memory(tmp_path: Path) -> None:
    write_segments(tmp_path, [rec(i, x=i) for i in range(200)])
    reader = LogReader(tmp_path, stream_memory_mb=64, stream_threads=1)
    table = pa.Table.from_batches(list(reader.iter_batches("m", batch_size=50)))
    assert sorted(table["f.x"].to_pylist()) == list(range(200))
    con = connect(64, 1)
    try:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() "
                "WHERE name IN ('threads', 'memory_limit')"
            ).fetchall()
        )
    finally:
        con.close()
    assert settings["threads"] == "1"
    assert settings["memory_limit"] in {"64.0 MiB", "67.1 MB"}


@pytest.mark.parametrize(
    "kwargs", [{"stream_threads": 0}, {"stream_threads": True}, {"stream_memory_mb": "1GB"}]
)
def test_bad_stream_limits_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="must be a positive int"):
        LogReader(tmp_path, **kwargs)  # type: ignore[arg-type]


# -- segment files ----------------------------------------------------------------------


def test_a_segment_compacted_while_being_listed_is_followed(tmp_path: Path) -> None:
    (path,) = write_segments(tmp_path, [rec(1)])
    listed = Segment(path.name.removesuffix(".jsonl"), path, "closed")
    parquet = compact_segment(path, "predictions")
    assert read_jsonl(listed) == (Segment(listed.stem, parquet, "parquet"), None)
    gone = Segment("nothing", tmp_path / "nothing.open.jsonl", "open")
    with pytest.raises(StoreError, match="vanished"):
        read_jsonl(gone)


def test_compaction_is_idempotent_and_reader_prefers_parquet(tmp_path: Path) -> None:
    (path,) = write_segments(tmp_path, [rec(1), rec(2)])
    data = path.read_bytes()
    parquet = compact_segment(path, "predictions")
    path.write_bytes(data)  # as if the process died between rename and unlink
    assert list_segments(path.parent) == [Segment(parquet.stem, parquet, "parquet")]
    assert LogReader(tmp_path).window("m").num_rows == 2
    assert compact_segment(path, "predictions") == parquet and not path.exists()


def test_two_compactors_of_one_segment_agree(tmp_path: Path) -> None:
    # Abandoned segments are compacted by whichever process finds them: two may race.
    (path,) = write_segments(tmp_path, [rec(1), rec(2)])
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(compact_segment(path, "predictions")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1 and not path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [results[0].name]  # no .tmp left
    assert LogReader(tmp_path).window("m").num_rows == 2
    (gone,) = write_segments(tmp_path / "other", [rec(3)])
    gone.unlink()
    with pytest.raises(StoreError, match="vanished before it was compacted"):
        compact_segment(gone, "predictions")


def test_only_segments_of_dead_local_writers_are_abandoned(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        log.append([rec(1)])
        (live,) = list_segments(tmp_path / "m" / "predictions")
        dead = live.path.with_name(live.path.name.replace(live.stem.split("_")[1], "999999999", 1))
        dead.write_bytes(live.path.read_bytes() + b'{"torn')
        other_host = live.path.with_name("elsewhere_1_0_abc_000001.open.jsonl")
        other_host.write_bytes(b"")
        assert abandoned_segments(live.path.parent) == [dead]
        made = compact(tmp_path, "m")
        assert [p.name for p in made] == [dead.name.replace(".open.jsonl", ".parquet")]
    assert LogReader(tmp_path).window("m").num_rows == 2


def test_empty_segment_files_are_fine(tmp_path: Path) -> None:
    directory = tmp_path / "m" / "predictions"
    directory.mkdir(parents=True)
    (directory / "h_1_0_abc_000001.open.jsonl").write_bytes(b"")
    (directory / "h_1_0_abc_000002.jsonl").write_bytes(b"")
    (directory / "notes.txt").write_text("ignored")
    assert LogReader(tmp_path).window("m").num_rows == 0
    compact_segment(directory / "h_1_0_abc_000002.jsonl", "predictions")
    assert LogReader(tmp_path).window("m").num_rows == 0
