"""Shipping log segments to a URL (local folders and fsspec's in-memory filesystem).

The object-store case (S3 through moto) is in ``tests/scale/test_log_storage.py``; here
the same guarantees hold on URLs that need no server:

- the reader over the URL returns exactly what a reader over a local copy returns;
- a crash between upload and local removal never duplicates a row;
- a local segment shipped away while a read lists it is read again from the URL;
- an upload failing half-way leaves no file at the URL and the segment readable locally;
- a URL that is the spool itself is refused (shipping would delete the log).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest

from livemodel.errors import ConfigError, StoreError
from livemodel.monitor.partitions import partition_segments
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact, list_segments
from livemodel.store.logship import RemoteLog, remote_segments, ship
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import LABELS, PREDICTIONS, PredictionRecord

T0 = datetime(2024, 5, 1, tzinfo=UTC)
NO_COMPACT = LogOptions(compact=False)
LABEL_VIEW = ("prediction_id", "label", "label_time", "label_source")


def records(n: int, prefix: str, model: str = "m") -> list[PredictionRecord]:
    return [
        PredictionRecord(
            f"{prefix}{i:05d}",
            model,
            1 + i % 2,
            {"x": i * 0.5, "n": i, "s": f"c{i % 3}", "b": i % 2 == 0, "z": None},
            {"label": f"l{i % 2}", "proba": {"a": 0.25, "b": 0.75}},
            T0 + timedelta(seconds=i),
            latency_ms=1.5,
        )
        for i in range(n)
    ]


def labels_of(recs: list[PredictionRecord]) -> list[tuple[str, int, datetime, str]]:
    return [(r.prediction_id, i % 2, T0 + timedelta(hours=1), "crm") for i, r in enumerate(recs)][
        ::3
    ]


def write(
    root: Path,
    recs: list[PredictionRecord],
    remote: RemoteLog | None = None,
    options: LogOptions | None = None,
) -> None:
    """Two prediction segments and one label segment, as two processes would write them."""
    half = len(recs) // 2
    for part in (recs[:half], recs[half:]):
        with PredictionLog(root, options, remote=remote) as log:
            log.append(part)
    with LabelLog(root, options, remote=remote) as labels:
        labels.append("m", labels_of(recs))


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(params=["folder", "file-url", "memory"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RemoteLog]:
    """A shipping target of each kind that needs no server."""
    if request.param == "folder":
        yield RemoteLog(str(tmp_path / "shipped"))
    elif request.param == "file-url":
        yield RemoteLog(f"file://{tmp_path / 'shipped'}")
    else:
        path = f"/lm-{uuid.uuid4().hex}"
        yield RemoteLog(f"memory://{path}")
        fsspec.filesystem("memory").rm(path, recursive=True)


def test_shipped_log_reads_like_a_local_one(tmp_path: Path, remote: RemoteLog) -> None:
    recs = records(400, "p")
    write(tmp_path / "spool", recs, remote)
    write(tmp_path / "local", recs)  # the same log, never shipped
    compact(tmp_path / "local", "m")

    assert files(tmp_path / "spool") == []  # every segment compacted, shipped and removed
    shipped = {kind: remote_segments(remote, "m", kind) for kind in (PREDICTIONS, LABELS)}
    assert [len(shipped[PREDICTIONS]), len(shipped[LABELS])] == [2, 1]
    fs, root = remote.open()
    assert not [p for p in fs.find(root) if not p.endswith(".parquet")]  # no temporaries

    far = LogReader(tmp_path / "elsewhere", remote=remote)  # a machine with no spool
    near = LogReader(tmp_path / "local")
    assert far.models() == ["m"]
    assert far.window("m", with_labels=True).equals(near.window("m", with_labels=True))
    assert far.window("m", version=2, columns=["f.x", "o.proba.b"]).equals(
        near.window("m", version=2, columns=["f.x", "o.proba.b"])
    )
    assert far.labels("m").select(LABEL_VIEW).equals(near.labels("m").select(LABEL_VIEW))
    assert far.known_ids("m", ["p00007", "nope"]) == {"p00007"}
    streamed = pa.Table.from_batches(list(far.iter_batches("m", with_labels=True)))
    assert sorted(streamed["prediction_id"].to_pylist()) == [r.prediction_id for r in recs]
    labelled = {pid: label for pid, label, _, _ in labels_of(recs)}
    assert {
        r["prediction_id"]: r["label"] for r in streamed.to_pylist() if r["label"] is not None
    } == labelled
    assert [s for s, _ in far.segments("m")] == [s.stem for s in shipped[PREDICTIONS]]
    assert LabelLog(tmp_path / "spool", remote=remote).latest("m").num_rows == len(labelled)


def test_two_replicas_ship_to_one_url_and_readers_see_the_union(
    tmp_path: Path, remote: RemoteLog
) -> None:
    a, b = records(300, "a"), records(200, "b")
    write(tmp_path / "a", a, remote)
    write(tmp_path / "b", b, remote)
    # Replica a keeps writing; its newest rows are still in its spool.
    with PredictionLog(tmp_path / "a", NO_COMPACT, remote=remote) as log:
        log.append(records(50, "late"))
    reader = LogReader(tmp_path / "a", remote=remote)
    got = reader.window("m", with_labels=True)["prediction_id"].to_pylist()
    expected = [r.prediction_id for r in a + b + records(50, "late")]
    assert sorted(got) == sorted(expected)  # each once
    assert len(reader.labels("m")) == len(labels_of(a)) + len(labels_of(b))

    # The partitions of the Ray engine: groups of stems, local and shipped alike.
    segments = reader.segments("m")
    assert len(segments) == 5 and len({s for s, _ in segments}) == 5
    seen: list[str] = []
    for group in partition_segments(segments, 3):
        batches = reader.iter_batches("m", columns=["prediction_id"], segments=group)
        seen += [i for batch in batches for i in batch["prediction_id"].to_pylist()]
    assert sorted(seen) == sorted(expected)


def test_a_crash_between_upload_and_removal_duplicates_nothing(
    tmp_path: Path, remote: RemoteLog
) -> None:
    spool = tmp_path / "spool"
    recs = records(100, "p")
    write(spool, recs, options=NO_COMPACT)
    compact(spool, "m")
    fs, root = remote.open()
    local = [p for p in spool.rglob("*.parquet")]
    for path in local:  # uploaded, then the process died before removing the local file
        kind = path.parent.name
        fs.makedirs(f"{root}/m/{kind}", exist_ok=True)
        fs.put_file(str(path), f"{root}/m/{kind}/{path.name}")

    for reader in (LogReader(spool, remote=remote), LogReader(tmp_path / "x", remote=remote)):
        assert sorted(reader.window("m")["prediction_id"].to_pylist()) == [
            r.prediction_id for r in recs
        ]
        assert len(reader.labels("m")) == len(labels_of(recs))
        assert len(reader.segments("m")) == 2
    assert ship(spool, remote) == []  # nothing to upload: the objects are in place
    assert files(spool) == []  # and the local copies are gone
    reader = LogReader(spool, remote=remote)
    assert len(reader.window("m")) == len(recs)


def test_a_stale_object_of_another_size_is_replaced(tmp_path: Path, remote: RemoteLog) -> None:
    spool = tmp_path / "spool"
    write(spool, records(50, "p"), options=NO_COMPACT)
    compact(spool, "m")
    (path, *_) = sorted(spool.rglob("predictions/*.parquet"))
    fs, root = remote.open()
    fs.makedirs(f"{root}/m/predictions", exist_ok=True)
    fs.pipe_file(f"{root}/m/predictions/{path.name}", b"not this")
    data = path.read_bytes()
    shipped = ship(spool, remote, "m")
    assert len(shipped) == 3
    assert fs.cat_file(f"{root}/m/predictions/{path.name}") == data


def test_a_segment_shipped_while_a_read_lists_it_is_read_from_the_url(
    tmp_path: Path, remote: RemoteLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    recs = records(200, "p")
    write(spool, recs, options=NO_COMPACT)
    compact(spool, "m")
    real = list_segments
    shipped_during: list[int] = []

    def list_then_ship(directory: Path) -> Any:
        found = real(directory)
        if not shipped_during:  # the shipper runs right after the first listing
            shipped_during.append(len(ship(spool, remote)))
        return found

    monkeypatch.setattr("livemodel.store.logreader.list_segments", list_then_ship)
    reader = LogReader(spool, remote=remote)
    assert sorted(reader.window("m")["prediction_id"].to_pylist()) == [
        r.prediction_id for r in recs
    ]
    assert shipped_during == [3] and files(spool) == []

    # The same race for a stream and for labels.
    write(spool, records(30, "q"), options=NO_COMPACT)
    compact(spool, "m")
    shipped_during.clear()
    assert len([b for b in reader.iter_batches("m", batch_size=7)]) > 0
    assert shipped_during == [3]
    assert sum(b.num_rows for b in reader.iter_batches("m")) == 230
    write(spool, records(30, "r"), options=NO_COMPACT)
    compact(spool, "m")
    shipped_during.clear()
    assert len(reader.labels("m", history=True)) == len(labels_of(recs)) + 2 * 10
    assert shipped_during == [3]


@pytest.mark.parametrize("failing", ["put_file", "mv"])
def test_an_interrupted_upload_to_a_folder_leaves_nothing_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    spool, target = tmp_path / "spool", tmp_path / "shipped"
    remote = RemoteLog(str(target))
    recs = records(100, "p")
    write(spool, recs, options=NO_COMPACT)
    compact(spool, "m")
    before = files(spool)
    fs = remote.open()[0]
    real_put = fs.put_file

    def half_then_fail(lpath: str, rpath: str, **kwargs: Any) -> None:
        real_put(lpath, rpath, **kwargs)
        with Path(rpath).open("r+b") as fh:  # half the bytes are on disk
            fh.truncate(Path(lpath).stat().st_size // 2)
        raise OSError("disk full")

    def fail_mv(*args: object, **kwargs: object) -> None:
        raise OSError("rename failed")

    if failing == "put_file":
        monkeypatch.setattr(fs, "put_file", half_then_fail)
    else:
        monkeypatch.setattr(fs, "mv", fail_mv)
    with pytest.raises(StoreError, match="cannot ship log segment"):
        ship(spool, remote)
    assert [p for p in target.rglob("*") if p.is_file()] == []
    assert files(spool) == before  # nothing lost locally
    reader = LogReader(spool, remote=remote)
    assert len(reader.window("m")) == len(recs)
    monkeypatch.undo()
    assert len(ship(spool, remote)) == 3
    assert files(spool) == []
    assert len(reader.window("m")) == len(recs)


def test_a_failing_ship_after_compaction_keeps_the_segment_local(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = RemoteLog(str(blocker / "logs"))  # every upload fails: the parent is a file
    spool = tmp_path / "spool"
    recs = records(60, "p")
    with caplog.at_level(logging.ERROR, logger="livemodel.store.logsegments"):
        write(spool, recs, broken)
    assert any("cannot ship log segment" in r.getMessage() for r in caplog.records)
    assert len(list(spool.rglob("*.parquet"))) == 3  # compacted, kept
    assert len(LogReader(spool).window("m")) == len(recs)
    good = RemoteLog(str(tmp_path / "shipped"))
    assert len(ship(spool, good)) == 3
    assert len(LogReader(tmp_path / "x", remote=good).window("m")) == len(recs)


def test_a_url_that_is_the_spool_itself_is_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write(spool, records(10, "p"), options=NO_COMPACT)
    compact(spool, "m")
    for url in (str(spool), f"file://{spool}", f"{tmp_path}/./spool"):
        with pytest.raises(ConfigError, match="local log folder itself"):
            ship(spool, RemoteLog(url))
        with pytest.raises(ConfigError, match="local log folder itself"):
            PredictionLog(spool, remote=RemoteLog(url))
    assert len(list_segments(spool / "m" / PREDICTIONS)) == 2  # untouched


@pytest.mark.parametrize("url", ["", "   ", "nosuchproto://bucket/x"])
def test_bad_log_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="log URL"):
        RemoteLog(url)


def test_non_mapping_options_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        RemoteLog(str(tmp_path), ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_options_stay_out_of_repr(tmp_path: Path) -> None:
    assert "hunter2" not in repr(RemoteLog(f"memory://{tmp_path}", {"secret": "hunter2"}))


def test_foreign_files_at_the_url_are_ignored(tmp_path: Path) -> None:
    spool, target = tmp_path / "spool", tmp_path / "shipped"
    remote = RemoteLog(str(target))
    write(spool, records(20, "p"), remote)
    (target / "m" / PREDICTIONS / "notes.txt").write_text("hello")
    (target / "m" / PREDICTIONS / "x.parquet.1234.tmp").write_bytes(b"half")
    (target / "m" / PREDICTIONS / ".parquet").write_bytes(b"")
    (target / "not a model").mkdir()
    reader = LogReader(tmp_path / "x", remote=remote)
    assert reader.models() == ["m"]
    assert len(reader.window("m")) == 20
