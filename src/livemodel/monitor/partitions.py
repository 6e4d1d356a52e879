"""Summaries of windows of the log, computed per partition of the log and merged.

A partition is a group of log segments (the files one writer produced). The pure
function :func:`summarize_partition` reads its segments window by window in streamed
chunks, summarises every chunk with :func:`~livemodel.monitor.summary.log_chunk` and
merges; :func:`summarize_windows` runs it over every partition with an engine
(:func:`~livemodel.engine.map_partitions`: in this process, or as Ray Data tasks) and
merges the partitions' summaries on the driver. The local engine reads the whole log as
one partition; the Ray engine spreads groups of segments of about equal size over the
cluster. Summaries merge exactly (counts, histograms, categories, bottom-k row samples)
or within the quantile sketch's stated error (KLL), so both engines give the same
results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from livemodel.engine import check_engine, map_partitions
from livemodel.errors import NotFoundError
from livemodel.monitor.results import ALL
from livemodel.monitor.summary import ChunkPlan, WindowSummary, log_chunk, merge_all
from livemodel.monitor.windows import Window
from livemodel.store.logreader import LogReader
from livemodel.store.logship import RemoteLog

__all__ = ["PartitionJob", "partition_segments", "summarize_partition", "summarize_windows"]

Summaries = dict[str, WindowSummary]


@dataclass(frozen=True)
class PartitionJob:
    """One partition's work, as plain picklable data."""

    root: str
    model: str
    version: int
    plan: ChunkPlan
    windows: tuple[Window, ...]
    segments: tuple[str, ...] | None  # stems; None reads every segment
    batch_size: int = 65_536
    stream_memory_mb: int = 512
    remote: RemoteLog | None = None  # where shipped segments are read from


def summarize_partition(job: PartitionJob) -> list[Summaries]:
    """The summaries of every window of ``job`` over its segments (one map per window)."""
    reader = LogReader(job.root, stream_memory_mb=job.stream_memory_mb, remote=job.remote)
    out: list[Summaries] = []
    for window in job.windows:
        summaries: Summaries = {}
        try:
            batches = reader.iter_batches(
                job.model,
                version=job.version,
                start=window.start,
                end=window.end,
                columns=job.plan.log_columns(),
                with_labels=job.plan.target is not None,
                batch_size=job.batch_size,
                segments=job.segments,
            )
            for batch in batches:
                summaries = merge_all(summaries, log_chunk(job.plan, batch))
        except NotFoundError:
            pass
        out.append(summaries)
    return out


def partition_segments(segments: Sequence[tuple[str, int]], parts: int) -> list[tuple[str, ...]]:
    """Segment stems in at most ``parts`` groups of about equal total size (largest first,
    each into the lightest group), none empty."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(parts, len(segments))))]
    sizes = [0] * len(groups)
    for stem, size in sorted(segments, key=lambda s: (-s[1], s[0])):
        lightest = sizes.index(min(sizes))
        groups[lightest].append(stem)
        sizes[lightest] += size
    return [tuple(sorted(g)) for g in groups if g]


def summarize_windows(
    reader: LogReader,
    model: str,
    version: int,
    plan: ChunkPlan,
    windows: Sequence[Window],
    *,
    engine: str = "local",
    parts: int = 8,
    batch_size: int = 65_536,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Summaries]:
    """Merged summaries of every window, each with at least the all-rows key.

    The local engine reads window after window (reporting ``progress`` after each); the
    Ray engine reads every window of a group of segments in one task."""
    check_engine(engine)
    base = PartitionJob(
        root=str(reader.root),
        model=model,
        version=version,
        plan=plan,
        windows=tuple(windows),
        segments=None,
        batch_size=batch_size,
        stream_memory_mb=reader.stream_memory_mb,
        remote=reader.remote,
    )
    if engine == "local":
        merged = []
        for i, window in enumerate(windows):
            (found,) = summarize_partition(replace(base, windows=(window,)))
            merged.append(merge_all({ALL: WindowSummary.empty(plan)}, found))
            if progress is not None:
                progress(i + 1, len(windows))
        return merged
    groups = partition_segments(reader.segments(model), parts)
    jobs = [replace(base, segments=group) for group in groups]
    results = map_partitions(summarize_partition, jobs, engine=engine, address=address)
    merged = []
    for i in range(len(windows)):
        summaries: Summaries = {ALL: WindowSummary.empty(plan)}
        for result in results:
            summaries = merge_all(summaries, result[i])
        merged.append(summaries)
    if progress is not None:
        progress(len(windows), len(windows))
    return merged
