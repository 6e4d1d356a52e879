"""Concept-drift results in the result store, and the view the report and dashboard share.

:func:`save_concept` stores a :class:`~livemodel.monitor.concept.ConceptRun` with
:class:`~livemodel.monitor.resultstore.ResultStore` (which replaces a window's rows) and
then deletes the concept-drift windows of that version that the run no longer has (a
late label moved a detection in prediction-time order). :func:`concept_view` turns stored
rows into plain data: per order, the detectors' counts and every detection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from livemodel.monitor.concept import CONCEPT, ORDERS, SEGMENT, SUMMARY_SUFFIX, ConceptRun
from livemodel.monitor.results import WindowResult
from livemodel.monitor.resultstore import ResultStore, StoredResult

__all__ = ["concept_text", "concept_view", "detection_rows", "save_concept"]


def save_concept(store: ResultStore, name: str, version: int, run: ConceptRun) -> int:
    """Store ``run``'s windows and remove this version's stale ones; returns rows written.

    A run that did not run (River missing) or found no labelled rows in an order leaves
    that order's stored results as they were.
    """
    if run.note is not None:
        return 0
    written = store.save(run.windows)
    kept = {(w.window, w.start) for w in run.windows}
    ran = {f"concept:{o}" for o, n in run.rows.items() if n}
    stale: dict[tuple[str, datetime], StoredResult] = {}
    for r in store.query(name, version=version, calculator=CONCEPT, segment=SEGMENT):
        if r.window in ran and (r.window, r.start) not in kept:
            stale[(r.window, r.start)] = r
    store.save(
        WindowResult(name, version, r.window, r.start, r.end, SEGMENT, 0, 0, ())
        for r in stale.values()
    )
    return written


def concept_view(rows: Iterable[StoredResult], version: int | None = None) -> dict[str, Any]:
    """Concept-drift results as plain data: ``orders`` (per order: rows scanned, the
    detectors' counts, the last row) and ``detections`` (newest detection first).

    ``rows`` may hold any stored results; those of other calculators are ignored.
    """
    mine = [
        r for r in rows
        if r.calculator == CONCEPT and r.segment == SEGMENT
        and (version is None or r.version == version)
    ]  # fmt: skip
    orders: dict[str, dict[str, Any]] = {}
    detections: list[dict[str, Any]] = []
    for r in mine:
        details = dict(r.details)
        if r.metric.endswith(SUMMARY_SUFFIX):
            order = str(details.get("order", r.window.removeprefix("concept:")))
            entry = orders.setdefault(order, {"order": order, "detectors": []})
            entry.update(
                rows=r.n,
                error=details.get("error"),
                last_row=details.get("last_row"),
                computed_at=r.computed_at.isoformat(),
            )
            entry["detectors"].append(
                {
                    "detector": r.metric.removesuffix(SUMMARY_SUFFIX),
                    "detections": int(r.value or 0),
                    "mean_error": details.get("mean_error"),
                    "last": details.get("last"),
                    "params": details.get("params"),
                }
            )
        else:
            detections.append(
                {
                    "version": r.version,
                    "detector": r.metric,
                    "order": details.get("order"),
                    "start": details.get("start"),
                    "detected": details.get("detected"),
                    "error_before": details.get("error_before"),
                    "error_after": details.get("error_after"),
                    "delay_rows": details.get("delay_rows"),
                }
            )
    detections.sort(key=_detected_at, reverse=True)
    ordered = [orders[o] for o in ORDERS if o in orders]
    return {"orders": ordered, "detections": detections}


def _detected_at(d: dict[str, Any]) -> tuple[str, int]:
    point = d.get("detected") or {}
    return (str(point.get("label_time") or ""), int(point.get("index") or 0))


def summary_rows(rows: Sequence[StoredResult]) -> list[StoredResult]:
    """The summary rows among ``rows`` (one per detector and order)."""
    return [r for r in rows if r.calculator == CONCEPT and r.metric.endswith(SUMMARY_SUFFIX)]


def concept_text(view: dict[str, Any]) -> str:
    """One line for a dashboard card: the detections of the newest version that has results."""
    orders = view.get("orders") or []
    if not orders:
        return "-"
    rows = max(int(o.get("rows") or 0) for o in orders)
    found = view.get("detections") or []
    if not found:
        return f"none in {rows:,} labelled"
    last = found[0]
    start = dict(last.get("start") or {})
    return (
        f"{len(found)} detection(s); last by {last.get('detector')} ({last.get('order')} order), "
        f"began {_short_time(start.get('time'))} at row {start.get('index')} of {rows:,}"
    )


def detection_rows(view: dict[str, Any], limit: int = 20) -> list[list[str]]:
    """Table rows (text cells): detector, order, change began, prediction id, rows from the
    start to the detection, when the detecting label arrived, mean error before -> after."""
    out = []
    for d in (view.get("detections") or [])[:limit]:
        start, found = dict(d.get("start") or {}), dict(d.get("detected") or {})
        out.append(
            [
                f"v{d.get('version')} {d.get('detector')}",
                str(d.get("order")),
                _short_time(start.get("time")),
                str(start.get("prediction_id")),
                f"{start.get('index')} \u2192 {found.get('index')}",
                _short_time(found.get("label_time")),
                f"{_fmt(d.get('error_before'))} \u2192 {_fmt(d.get('error_after'))}",
            ]
        )
    return out


def _short_time(value: object) -> str:
    text = str(value or "-")
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
