"""Monitoring a registered model's prediction log: windows in, stored results out.

:class:`Monitor` resolves the version, loads its reference from the registry, fits a
:class:`~livemodel.monitor.fitted.Reference` once (the object ``compare`` uses, kept for
later runs), cuts the
requested range into windows, streams each window from the log in chunks
(:meth:`~livemodel.store.logreader.LogReader.iter_batches`), summarises every chunk with
the pure :func:`~livemodel.monitor.summary.log_chunk`, merges the summaries and runs the
calculators. With ``engine="ray"`` the log's segments are summarised in groups as Ray
Data tasks and merged here (:mod:`livemodel.monitor.partitions`). Memory is bounded by
the chunk size and the row samples, not by the window.
Results are saved with :class:`~livemodel.monitor.resultstore.ResultStore` (replacing a
re-run window's results). Each run also replays the concept-drift detectors over the
version's whole labelled error stream (:mod:`livemodel.monitor.concept`) and stores their
detections (``concept=None`` turns this off).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from livemodel.engine import check_engine
from livemodel.errors import InvalidInputError
from livemodel.monitor.concept import ConceptDrift, ConceptRun
from livemodel.monitor.conceptstore import save_concept
from livemodel.monitor.fitted import Reference
from livemodel.monitor.partitions import summarize_windows
from livemodel.monitor.results import WindowResult
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.suite import MonitorSuite
from livemodel.monitor.windows import (
    Window,
    WindowSpec,
    count_windows,
    parse_window,
    time_windows,
)
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.store.logreader import LogReader
from livemodel.vocabulary import AliasOf, default_alias

__all__ = ["Monitor", "RunResult"]

Progress = Callable[[int, int], None]
CONCEPT_DEFAULT = ConceptDrift()


@dataclass(frozen=True)
class RunResult:
    """What one run computed: every window's results, segments included."""

    model: str
    version: int
    window: str
    windows: tuple[WindowResult, ...]
    rows_saved: int
    concept: ConceptRun | None = None
    reference: str = "fitted"  # the fitted reference: "fitted" here or "loaded" from the store

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": self.version,
            "window": self.window,
            "windows": [w.to_dict() for w in self.windows],
            "rows_saved": self.rows_saved,
            "concept_drift": None if self.concept is None else self.concept.to_dict(),
            "reference": self.reference,
        }


class Monitor:
    """Runs the calculators over windows of the log and stores the results."""

    def __init__(
        self,
        registry: Registry,
        reader: LogReader,
        store: ResultStore | None = None,
        *,
        suite: Callable[[], MonitorSuite] = MonitorSuite,
        batch_size: int = 65_536,
        engine: str = "local",
        ray_address: str | None = None,
        concept: ConceptDrift | None = CONCEPT_DEFAULT,
        alias_of: AliasOf = default_alias,
    ) -> None:
        self.registry = registry
        self.concept = concept
        self.reader = reader
        self.store = store
        self.suite = suite
        self.batch_size = batch_size
        self.engine = check_engine(engine)
        self.ray_address = ray_address
        self.alias_of = alias_of  # the served alias of each model: its version by default
        self._fitted: dict[tuple[str, int, tuple[str, ...]], Reference] = {}

    def resolve_version(self, name: str, version: int | None = None) -> int:
        """``version``, else the one the served alias points at, else the latest."""
        if version is not None:
            return self.registry.get(ModelRef(name, version=version)).version
        aliases = self.registry.aliases(name)
        served = self.alias_of(name)
        if served in aliases:
            return aliases[served]
        return self.registry.get(name).version

    def fitted_reference(self, name: str, version: int, segments: Sequence[str] = ()) -> Reference:
        """The :class:`~livemodel.monitor.fitted.Reference` of a version, fitted once on its
        registered reference (cached: every window and every later run reuse it; kept in the
        artifact store, so a later process loads it instead of fitting it again)."""
        key = (name, version, tuple(dict.fromkeys(segments)))
        if key not in self._fitted:
            self._fitted[key] = Reference.registered(
                self.registry, ModelRef(name, version=version), segments=key[2], suite=self.suite()
            )
        return self._fitted[key]

    def fitted_suite(self, name: str, version: int, segments: Sequence[str] = ()) -> MonitorSuite:
        """The fitted calculators of :meth:`fitted_reference`."""
        return self.fitted_reference(name, version, segments).suite

    def run(
        self,
        name: str,
        *,
        since: datetime,
        until: datetime,
        window: str | WindowSpec = "1d",
        segments: Sequence[str] = (),
        version: int | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Compute (and store, with a store) every window of ``[since, until)``."""
        spec = parse_window(window) if isinstance(window, str) else window
        number = self.resolve_version(name, version)
        fitted = self.fitted_reference(name, number, segments)
        suite = fitted.suite
        windows = self._windows(name, number, spec, since, until)
        per_window: dict[int, list[WindowResult]] = {}
        found = summarize_windows(
            self.reader,
            name,
            number,
            suite.plan_,
            windows,
            engine=self.engine,
            batch_size=self.batch_size,
            address=self.ray_address,
        )
        for i, summary in found:  # each window calculated once complete: memory bounded
            w = windows[i]
            per_window[i] = [
                WindowResult(
                    model=name,
                    version=number,
                    window=spec.label,
                    start=w.start,
                    end=w.end,
                    segment=key,
                    n_rows=summary[key].n_rows,
                    n_labelled=summary[key].n_labelled,
                    results=per_key,
                )
                for key, per_key in fitted.calculate(summary).items()
            ]
            if progress is not None:
                progress(len(per_window), len(windows))
        results = [r for i in sorted(per_window) for r in per_window[i]]
        saved = self.store.save(results) if self.store is not None else 0
        concept = None
        if self.concept is not None:
            concept = self.concept.run(self.reader, name, number, suite.reference_)
            if self.store is not None:
                saved += save_concept(self.store, name, number, concept)
        return RunResult(
            name, number, spec.label, tuple(results), saved, concept, reference=fitted.origin
        )

    def _windows(
        self, name: str, version: int, spec: WindowSpec, since: datetime, until: datetime
    ) -> list[Window]:
        if spec.size is not None:
            return time_windows(since, until, spec.size)
        if spec.rows is None:
            raise InvalidInputError("a window spec needs a size or a row count")
        if until <= since:
            raise InvalidInputError(f"the range is empty: until {until} is not after {since}")
        table = self.reader.window(
            name, version=version, start=since, end=until, columns=["time", "version"]
        )
        times = table.column("time").to_numpy(zero_copy_only=False)
        return count_windows(np.asarray(times, dtype="datetime64[us]"), spec.rows, until)
