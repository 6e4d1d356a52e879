"""Concept drift: streaming detectors on a served model's labelled error stream.

A model's *error stream* is one number per labelled prediction of one version: the 0/1
error of a classifier (the served label differs from the true one) or, for a regression,
the absolute error; divided by a fixed scale (:func:`error_scale`: 0.5 for 0/1 errors;
the absolute errors' spread on the version's labelled reference sample for a regression),
so that the detectors' defaults (made for streams of variance up to 1) fit. It is read in
two orders:

``arrival``
    the order in which labels reached livemodel (the label log's write time of the label
    that counts, the last one written for the prediction; ties by prediction id). A late
    label joins at the end; only a corrected label moves its prediction.
``prediction_time``
    the order in which the predictions were made (ties by prediction id). A late label is
    inserted *into the past* of this stream: what was detected before may move.

Resumption: every run replays each detector deterministically over the whole error
stream of the version (the detectors hold no randomness, KSWIN is seeded), so a run
resumes exactly where the previous one left off and late or corrected labels are taken
into account in both orders; no detector state is stored. The cost is linear in the
labelled rows of the version (per row, detector and order about 3-4 µs on a quiet machine
with livemodel's PageHinkley and ADWIN, up to 17 µs on a loaded one).

A detection is stored as a monitoring result (:mod:`livemodel.monitor.results`):
calculator ``concept_drift``, window ``concept:<order>``, segment ``error_stream``; one
window per detection, starting when the change began (:func:`~livemodel.stats.detectors.
change_point` over the stream since the detector's previous detection) and ending when it
was detected, in the order's time (prediction time, or label arrival time), with the
prediction id, both times and the index of both points in ``details``; and one summary
window per order, starting at the stream's last row, whose ``<detector>_detections`` rows
count the detections (``alert`` when there is any) and hold the last one. Each run replaces
these rows: windows of detections that moved are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.errors import ConfigError, InvalidInputError, NotFoundError
from livemodel.monitor.reference import PREDICTION, MonitorReference
from livemodel.monitor.results import MetricResult, WindowResult
from livemodel.monitor.summary import ChunkPlan, align_labels
from livemodel.stats.detectors import ADWIN, PageHinkley, StreamDetector, change_point
from livemodel.store.logreader import LogReader

__all__ = [
    "CONCEPT",
    "ORDERS",
    "SEGMENT",
    "ConceptDrift",
    "Detection",
    "ErrorStream",
    "concept_rows",
    "StreamPoint",
    "detect",
    "error_scale",
    "error_stream",
    "read_labelled",
]

CONCEPT = "concept_drift"
SEGMENT = "error_stream"
Order = Literal["arrival", "prediction_time"]
ORDERS: tuple[Order, ...] = ("arrival", "prediction_time")
WARMUP = 200
SUMMARY_SUFFIX = "_detections"


def window_label(order: str) -> str:
    """The stored window spec of the results of one order."""
    return f"concept:{order}"


@dataclass(frozen=True)
class StreamPoint:
    """One row of an error stream: its position, prediction and both times."""

    index: int
    prediction_id: str
    time: datetime
    label_time: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "prediction_id": self.prediction_id,
            "time": self.time.isoformat(),
            "label_time": self.label_time.isoformat(),
        }


@dataclass(frozen=True)
class ErrorStream:
    """A version's labelled errors in one order (arrays of equal length)."""

    order: Order
    prediction_id: npt.NDArray[np.object_]
    time: npt.NDArray[np.datetime64]
    label_time: npt.NDArray[np.datetime64]
    error: npt.NDArray[np.float64]
    kind: str
    scale: float = 1.0

    def __len__(self) -> int:
        return int(self.error.size)

    def point(self, i: int) -> StreamPoint:
        return StreamPoint(
            i, str(self.prediction_id[i]), _dt(self.time[i]), _dt(self.label_time[i])
        )

    def axis(self, i: int) -> datetime:
        """The time of row ``i`` in this order's own clock."""
        return _dt(self.label_time[i] if self.order == "arrival" else self.time[i])


@dataclass(frozen=True)
class Detection:
    """A change found by ``detector``: where it began and where it was detected."""

    detector: str
    order: Order
    start: StreamPoint
    detected: StreamPoint
    error_before: float | None
    error_after: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "order": self.order,
            "start": self.start.to_dict(),
            "detected": self.detected.to_dict(),
            "error_before": self.error_before,
            "error_after": self.error_after,
            "delay_rows": self.detected.index - self.start.index,
        }


def _dt(value: np.datetime64) -> datetime:
    return pd.Timestamp(value).tz_localize(UTC).to_pydatetime()


def _naive_us(values: pd.Series[Any]) -> npt.NDArray[np.datetime64]:
    """UTC times as naive ``datetime64[us]`` (the log's times are timezone-aware)."""
    times = pd.to_datetime(values, utc=True)
    return np.asarray(times.dt.tz_localize(None).to_numpy(dtype="datetime64[us]"))


# -- the stream ---------------------------------------------------------------------------
def read_labelled(reader: LogReader, name: str, version: int, task: str | None) -> pd.DataFrame:
    """Labelled predictions of one version: ``prediction_id``, ``time``, ``prediction``,
    ``label`` and ``label_time`` (when the label that counts, the last written, arrived)."""
    output = "o.value" if task == "regression" else "o.label"
    columns = ["prediction_id", "time", "version", output]
    try:
        predictions = reader.window(name, version=version, columns=columns).to_pandas()
        labels = reader.labels(name, history=True).to_pandas()
    except NotFoundError:
        predictions, labels = pd.DataFrame(), pd.DataFrame()
    wanted = ["prediction_id", "time", PREDICTION, "label", "label_time"]
    if predictions.empty or labels.empty or "written_time" not in labels.columns:
        return pd.DataFrame(columns=wanted)
    # history is ordered by prediction id, then write time: the last row of an id counts.
    latest = labels.drop_duplicates("prediction_id", keep="last")
    latest = latest[["prediction_id", "label", "written_time"]].rename(
        columns={"written_time": "label_time"}
    )
    frame = predictions.rename(columns={output: PREDICTION}).merge(
        latest, on="prediction_id", how="inner"
    )
    out: pd.DataFrame = frame[wanted].reset_index(drop=True)
    return out


def error_stream(frame: pd.DataFrame, reference: MonitorReference, order: Order) -> ErrorStream:
    """The error stream of ``frame`` (shaped like :func:`read_labelled`'s) in ``order``.

    Rows whose label matches no class of the model, or whose output is missing, are left
    out (data quality counts them). Errors are divided by :func:`error_scale`.
    """
    if order not in ORDERS:
        raise InvalidInputError(f"order must be one of {ORDERS}, got {order!r}")
    if frame.empty:
        error, keep = np.zeros(0), np.zeros(0, dtype=bool)
    else:
        error, keep = _errors(frame["label"], frame[PREDICTION], reference)
    rows = frame.loc[keep].assign(_error=error[keep])
    first = "label_time" if order == "arrival" else "time"
    rows = rows.sort_values([first, "prediction_id"], kind="stable")
    values = rows["_error"].to_numpy(np.float64)
    scale = error_scale(reference, values)
    regression = reference.task == "regression"
    return ErrorStream(
        order=order,
        prediction_id=rows["prediction_id"].astype(str).to_numpy(dtype=object),
        time=_naive_us(rows["time"]),
        label_time=_naive_us(rows["label_time"]),
        error=values / scale,
        kind=("absolute error" if regression else "0/1 error") + " / scale",
        scale=scale,
    )


def _errors(
    labels: pd.Series[Any], outputs: pd.Series[Any], reference: MonitorReference
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per row, the error (absolute, or 0/1) and whether it is defined."""
    if reference.task == "regression":
        truth = pd.to_numeric(labels.astype(object), errors="coerce").to_numpy(np.float64)
        served = pd.to_numeric(outputs.astype(object), errors="coerce").to_numpy(np.float64)
        error = np.abs(truth - served)
        return error, np.isfinite(error)
    plan = ChunkPlan.of(reference)
    aligned, _ = align_labels(labels.reset_index(drop=True), plan)
    decided, _ = align_labels(outputs.reset_index(drop=True), plan)
    keep = (aligned.notna() & decided.notna()).to_numpy(dtype=bool)
    wrong = aligned.astype(str).to_numpy(dtype=object) != decided.astype(str).to_numpy(dtype=object)
    return np.asarray(wrong, dtype=np.float64), keep


def error_scale(reference: MonitorReference, errors: npt.NDArray[np.float64]) -> float:
    """The spread that makes errors at most unit-sized, so the detectors' defaults (made for
    streams of variance up to 1) hold.

    0/1 errors: 0.5, the largest standard deviation a 0/1 variable has, whatever the error
    rate before or after a change. (Dividing by the reference's ``sqrt(p (1 - p))``
    instead found small changes sooner but, after a change to a higher error rate, raised
    detection after detection: the new regime's variance is many times the reference's.)
    Absolute errors: their standard deviation on the version's labelled reference sample,
    else on the first :data:`WARMUP` errors of the stream (else their mean, else 1).
    """
    if reference.task != "regression":
        return 0.5
    base = np.zeros(0)
    if reference.has_labels and reference.target is not None:
        sample = reference.sample
        found, keep = _errors(sample[reference.target], sample[PREDICTION], reference)
        base = found[keep]
    if base.size < 2:
        base = errors[:WARMUP]
    spreads = (float(np.std(base)), float(np.mean(base))) if base.size else ()
    for spread in spreads:
        if spread > 0 and np.isfinite(spread):
            return spread
    return 1.0


# -- detection ----------------------------------------------------------------------------
def detect(stream: ErrorStream, detector: StreamDetector) -> list[Detection]:
    """Run a fresh copy of ``detector`` over the whole stream; where each change began is
    :func:`change_point` of the errors since the previous detection."""
    fresh = detector.clone()
    errors = stream.error
    for x in errors.tolist():
        fresh.update(x)
    out = []
    begin = 0
    for at in fresh.detections:
        start = begin + change_point(errors[begin : at + 1])
        before = errors[begin:start]
        out.append(
            Detection(
                detector=fresh.name,
                order=stream.order,
                start=stream.point(start),
                detected=stream.point(at),
                error_before=float(before.mean()) * stream.scale if before.size else None,
                error_after=float(errors[start : at + 1].mean()) * stream.scale,
            )
        )
        begin = at + 1
    return out


def concept_rows(run: ConceptRun) -> list[MetricResult]:
    """The summary rows of ``run`` (``<detector>_detections``, one per detector and order)."""
    return [
        r
        for w in run.windows
        for r in w.results
        if r.calculator == CONCEPT and r.metric.endswith(SUMMARY_SUFFIX)
    ]


def default_detectors() -> tuple[StreamDetector, ...]:
    """Page-Hinkley and ADWIN with livemodel's quiet defaults (see the detectors module)."""
    return (PageHinkley(), ADWIN())


@dataclass(frozen=True)
class ConceptRun:
    """One run: the result windows to store (per detection, and a summary per order), the
    detections, and why nothing ran (River missing) if so."""

    windows: tuple[WindowResult, ...]
    detections: tuple[Detection, ...]
    rows: dict[str, int]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "detections": [d.to_dict() for d in self.detections],
            "note": self.note,
        }


class ConceptDrift:
    """Runs the detectors on a version's error stream in each order; see the module doc."""

    def __init__(
        self,
        detectors: Sequence[StreamDetector] | None = None,
        orders: Sequence[Order] = ORDERS,
    ) -> None:
        self.detectors = None if detectors is None else tuple(detectors)
        names = [d.name for d in self.detectors or ()]
        if len(set(names)) != len(names):  # results are keyed by the detector's name
            raise ConfigError(f"concept-drift detectors must be of different kinds: {names}")
        bad = [o for o in orders if o not in ORDERS]
        if bad or not orders:
            raise ConfigError(f"concept-drift orders must be among {ORDERS}, got {list(orders)}")
        self.orders = tuple(dict.fromkeys(orders))

    def run(
        self, reader: LogReader, name: str, version: int, reference: MonitorReference
    ) -> ConceptRun:
        try:
            detectors = self.detectors if self.detectors is not None else default_detectors()
        except ConfigError as exc:  # River is not installed
            return ConceptRun((), (), {}, note=exc.message)
        if reference.task is None:
            return ConceptRun((), (), {}, note="the model has no target: no error stream")
        frame = read_labelled(reader, name, version, reference.task)
        windows: list[WindowResult] = []
        found: list[Detection] = []
        rows: dict[str, int] = {}
        for order in self.orders:
            stream = error_stream(frame, reference, order)
            rows[order] = len(stream)
            if not len(stream):
                continue
            per = {d.name: detect(stream, d) for d in detectors}
            windows += _windows(name, version, stream, per, detectors)
            found += [d for ds in per.values() for d in ds]
        return ConceptRun(tuple(windows), tuple(found), rows)


def _windows(
    name: str,
    version: int,
    stream: ErrorStream,
    per: dict[str, list[Detection]],
    detectors: Sequence[StreamDetector],
) -> list[WindowResult]:
    label = window_label(stream.order)
    params = {d.name: d.get_params() for d in detectors}
    out: dict[datetime, tuple[datetime, dict[str, MetricResult]]] = {}
    for detector, found in per.items():
        for d in found:
            start, end = stream.axis(d.start.index), stream.axis(d.detected.index)
            row = MetricResult(
                calculator=CONCEPT, metric=detector, column=None, value=d.error_after,
                threshold=d.error_before, alert=True, n=d.detected.index - d.start.index + 1,
                details={**d.to_dict(), "error": stream.kind, "scale": stream.scale},
            )  # fmt: skip
            # Two detections of one detector starting at the same instant share a window
            # key: the later one is kept (the summary counts both).
            old_end, rows = out.get(start, (end, {}))
            out[start] = (max(old_end, end), {**rows, detector: row})
    last = len(stream) - 1
    summary = [
        MetricResult(
            calculator=CONCEPT,
            metric=f"{detector}{SUMMARY_SUFFIX}",
            column=None,
            value=float(len(found)),
            alert=bool(found),
            n=len(stream),
            details={
                "order": stream.order,
                "error": stream.kind,
                "scale": stream.scale,
                "params": params.get(detector, {}),
                "detections": len(found),
                "last": found[-1].to_dict() if found else None,
                "first_row": stream.point(0).to_dict(),
                "last_row": stream.point(last).to_dict(),
                "mean_error": float(stream.error.mean()) * stream.scale,
            },
        )
        for detector, found in per.items()
    ]
    n = len(stream)

    def window(start: datetime, stop: datetime, rows: Sequence[MetricResult]) -> WindowResult:
        return WindowResult(name, version, label, start, stop, SEGMENT, n, n, tuple(rows))

    end = stream.axis(last)
    windows = [
        window(a, b, list(rows.values())) for a, (b, rows) in sorted(out.items()) if a != end
    ]
    tail = out.get(end, (end, {}))[1]  # a detection starting at the last row joins the summary
    windows.append(window(end, end, [*tail.values(), *summary]))
    return windows
