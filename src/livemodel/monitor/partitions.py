"""Summaries of windows of the log, computed per partition of the log and merged.

A partition is one window over a group of log segments (the files one writer
produced). The pure function :func:`summarize_partition` reads it in streamed chunks,
summarises every chunk with :func:`~livemodel.monitor.summary.log_chunk` and merges;
:func:`summarize_windows` runs it over every partition with an engine
(:func:`~livemodel.engine.iter_partitions`: in this process, or as Ray Data tasks) and
merges the partitions' summaries on the driver as they arrive, handing out each window
once complete. The local engine reads the whole log per window; the Ray engine spreads
groups of segments of about equal size over the cluster. Summaries merge exactly
(counts, histograms, categories, bottom-k row samples) or within the quantile sketch's
stated error (KLL), so both engines give the same results.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from livemodel.engine import check_engine, iter_partitions
from livemodel.errors import NotFoundError
from livemodel.monitor.results import ALL
from livemodel.monitor.summary import ChunkPlan, WindowSummary, log_chunk, merge_all
from livemodel.monitor.windows import Window
from livemodel.store.logreader import LogReader
from livemodel.store.logship import RemoteLog

__all__ = ["PartitionJob", "partition_segments", "summarize_partition", "summarize_windows"]

Summaries = dict[str, WindowSummary]
RAY_TASK_MEMORY_MB = 256


@dataclass(frozen=True)
class PartitionJob:
    """One window over one group of segments, as plain picklable data."""

    root: str
    model: str
    version: int
    plan: ChunkPlan
    window: Window
    segments: tuple[str, ...] | None  # stems; None reads every segment
    batch_size: int = 65_536
    stream_memory_mb: int = 512
    stream_threads: int | None = None  # DuckDB's default: one per core
    remote: RemoteLog | None = None  # where shipped segments are read from


def summarize_partition(job: PartitionJob) -> Summaries:
    """The summaries (per segment key) of ``job``'s window over its segments."""
    reader = LogReader(
        job.root,
        stream_memory_mb=job.stream_memory_mb,
        stream_threads=job.stream_threads,
        remote=job.remote,
    )
    summaries: Summaries = {}
    try:
        batches = reader.iter_batches(
            job.model,
            version=job.version,
            start=job.window.start,
            end=job.window.end,
            columns=job.plan.log_columns(),
            with_labels=job.plan.target is not None,
            batch_size=job.batch_size,
            segments=job.segments,
        )
        for batch in batches:
            summaries = merge_all(summaries, log_chunk(job.plan, batch))
    except NotFoundError:
        pass
    return summaries


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
) -> Iterator[tuple[int, Summaries]]:
    """``(index, merged summaries)`` of each window as soon as it is complete, each with
    at least the all-rows key.

    The local engine reads the whole log window after window; the Ray engine runs one
    task per window and group of segments (window by window) and merges each result as
    it arrives, so the driver holds the windows in progress, never the whole range."""
    check_engine(engine)
    groups: list[tuple[str, ...] | None] = [None]
    memory_mb, threads = reader.stream_memory_mb, reader.stream_threads
    if engine != "local":
        groups = [*partition_segments(reader.segments(model), parts)] or [None]
        # A task holds one CPU of a node shared with other tasks: one DuckDB thread each,
        # and a smaller share of memory (measured: 12% less peak memory, no slower).
        memory_mb, threads = min(memory_mb, RAY_TASK_MEMORY_MB), 1
    jobs = [
        PartitionJob(
            root=str(reader.root),
            model=model,
            version=version,
            plan=plan,
            window=window,
            segments=group,
            batch_size=batch_size,
            stream_memory_mb=memory_mb,
            stream_threads=threads,
            remote=reader.remote,
        )
        for window in windows
        for group in groups
    ]
    pending: dict[int, tuple[int, Summaries]] = {}  # window -> (results missing, merged)
    done = iter_partitions(summarize_partition, jobs, engine=engine, address=address)
    for job_index, found in done:
        w = job_index // len(groups)
        missing, merged = pending.get(w, (len(groups), {ALL: WindowSummary.empty(plan)}))
        merged = merge_all(merged, found)
        if missing == 1:
            pending.pop(w, None)
            yield w, merged
        else:
            pending[w] = (missing - 1, merged)
