"""Everything a model report shows, computed as plain data (rendering is in ``render``).

:func:`build_report` reads the stored monitoring results of a period, the registered
version (signature, lineage, reference sample), the audit trail and rollouts, the recent
alerts, and the prediction log where rows are needed (distributions of drifted features,
the fairness audit, SHAP importance on a current window). The result is a JSON-safe dict
(:meth:`ReportData.to_dict`), so it can also be saved or served as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from livemodel.errors import InvalidInputError, LivemodelError, NotFoundError
from livemodel.monitor.results import json_safe
from livemodel.monitor.resultstore import ResultStore, StoredResult
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.registry.version import ModelVersion
from livemodel.report import sections
from livemodel.store.logreader import LogReader
from livemodel.vocabulary import DEFAULT_ALIAS

__all__ = ["ReportData", "ReportOptions", "build_report"]

MAX_DISTRIBUTIONS = 8
FAIRNESS_ROWS = 200_000


@dataclass(frozen=True)
class ReportOptions:
    """What to include. ``protected`` names a logged feature to audit fairness on;
    without ``version`` the report is of the version ``alias`` (the served alias) names."""

    window: str | None = None
    version: int | None = None
    alias: str = DEFAULT_ALIAS
    protected: str | None = None
    fairness_metric: str = "accuracy"
    explain: bool = True
    n_boot: int = 300
    seed: int = 0


@dataclass(frozen=True)
class ReportData:
    """Plain data of one report; :mod:`livemodel.report.render` turns it into HTML."""

    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(self.sections)
        return out


def build_report(
    registry: Registry,
    reader: LogReader,
    results: ResultStore,
    name: str,
    *,
    since: datetime,
    until: datetime,
    options: ReportOptions | None = None,
    rollouts: Any = None,
    alerts: Any = None,
) -> ReportData:
    """Compute the report of ``name`` over ``[since, until)``.

    ``rollouts`` (a :class:`~livemodel.store.rollouts.RolloutStore`) and ``alerts`` (an
    :class:`~livemodel.alerts.store.AlertStore`) are optional sources.
    """
    options = options or ReportOptions()
    if until <= since:
        raise InvalidInputError(f"the report period is empty: {until} is not after {since}")
    version = _version(registry, name, options.version, options.alias)
    ref = ModelRef(name, version=version.version)
    rows = results.query(name, since=since, until=until, version=version.version)
    window = sections.pick_window(rows, options.window)
    if options.window is not None and window is None:
        raise NotFoundError(f"no stored results of {name!r} with windows of {options.window}")
    rows = [r for r in rows if r.window == window]
    task = version.signature.task
    headline = sections.HEADLINE.get(task.kind if task else "", ())
    reference = registry.reference(ref).sample
    drift = sections.drift_matrix(rows)
    latest = _latest_window(rows)
    current = _current_frame(reader, version, latest, options) if latest else None
    data: dict[str, Any] = {
        "model": name,
        "version": version.version,
        "aliases": registry.aliases(name),
        "served_alias": options.alias,
        "task": task.kind if task else None,
        "period": {"since": since.isoformat(), "until": until.isoformat(), "window": window},
        "generated_at": datetime.now(UTC).isoformat(),
        "summary": _summary(rows, drift),
        "drift": drift,
        "distributions": _distributions(drift, rows, reference, reader, version),
        "quality": sections.quality_table(rows),
        "performance": sections.performance_series(rows, headline),
        "segments": sections.segment_table(rows, headline),
        "concept_drift": _concept_drift(results, name, version.version),
        "rollouts": _rollouts(registry, name, since, rollouts),
        "alerts": _alerts(alerts, name, since),
        "lineage": _lineage(version),
        "fairness": _fairness(reader, version, since, until, options),
        "importance": _importance(
            registry, ref, version, reference, current=current, options=options
        ),
    }
    return ReportData(data)


def _version(registry: Registry, name: str, number: int | None, alias: str) -> ModelVersion:
    """``number``, else the version the served alias points at, else the latest."""
    if number is not None:
        return registry.get(ModelRef(name, version=number))
    aliases = registry.aliases(name)
    if alias in aliases:
        return registry.get(ModelRef(name, version=aliases[alias]))
    return registry.get(name)


def _latest_window(rows: list[StoredResult]) -> tuple[datetime, datetime] | None:
    if not rows:
        return None
    last = max(rows, key=lambda r: r.start)
    return last.start, last.end


def _read(
    reader: LogReader, version: ModelVersion, start: datetime, end: datetime,
    columns: list[str], *, labels: bool = False,
) -> pd.DataFrame:  # fmt: skip
    # The reader filters on ``version``, so a projection must include it.
    wanted = ["version", *columns]
    try:
        table = reader.window(version.name, version=version.version, start=start, end=end,
                              columns=wanted, with_labels=labels)  # fmt: skip
    except NotFoundError:
        return pd.DataFrame(columns=wanted)
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _current_frame(
    reader: LogReader, version: ModelVersion, window: tuple[datetime, datetime],
    options: ReportOptions,
) -> pd.DataFrame | None:  # fmt: skip
    if not options.explain:
        return None
    names = list(version.signature.names)
    frame = _read(reader, version, *window, [f"f.{n}" for n in names])
    frame = frame.rename(columns={f"f.{n}": n for n in names})
    return frame if len(frame) else None


def _summary(rows: list[StoredResult], drift: dict[str, Any]) -> dict[str, Any]:
    whole = [r for r in rows if r.segment == "*"]
    starts = sorted({r.start for r in whole})
    latest = [r for r in whole if starts and r.start == starts[-1]]
    drifted = sorted(
        str(r.column) for r in latest
        if r.calculator == "data_drift" and r.metric == "drift" and r.alert
    )  # fmt: skip
    sizes: dict[datetime, int] = {}
    for r in whole:
        if r.calculator == "data_quality":
            sizes[r.start] = max(sizes.get(r.start, 0), r.n)
    return {
        "windows": len(starts),
        "rows": sum(sizes.values()),
        "latest_window": starts[-1].isoformat() if starts else None,
        "drifted_latest": drifted,
        "features_drifted_ever": drift["drifted_features"],
        "alerting_numbers": sum(r.alert for r in whole),
    }


def _distributions(
    drift: dict[str, Any], rows: list[StoredResult], reference: pd.DataFrame,
    reader: LogReader, version: ModelVersion,
) -> list[dict[str, Any]]:  # fmt: skip
    """Reference vs current shares for drifted features, in the latest window each drifted."""
    flagged = [
        r for r in rows
        if r.segment == "*" and r.calculator == "data_drift" and r.metric == "drift" and r.alert
    ]  # fmt: skip
    last: dict[str, StoredResult] = {}
    for r in sorted(flagged, key=lambda r: r.start):
        last[str(r.column)] = r
    chosen = [c for c in drift["drifted_features"] if c in last][:MAX_DISTRIBUTIONS]
    by_window: dict[tuple[datetime, datetime], list[str]] = {}
    for column in chosen:
        by_window.setdefault((last[column].start, last[column].end), []).append(column)
    kinds = {c.name: c.type.value for c in version.signature.columns}
    out = []
    for (start, end), columns in by_window.items():
        frame = _read(reader, version, start, end, [f"f.{c}" for c in columns])
        for column in columns:
            if column not in reference or f"f.{column}" not in frame:
                continue
            ref, cur = reference[column], frame[f"f.{column}"]
            if kinds.get(column) in ("integer", "float"):
                dist = sections.numeric_distribution(ref.to_numpy(), cur.to_numpy())
            else:
                dist = sections.categorical_distribution(ref, cur)
            if dist is not None:
                out.append({"column": column, "window": start.isoformat(), **dist})
    order = {c: i for i, c in enumerate(chosen)}
    return sorted(out, key=lambda d: order[d["column"]])


def _concept_drift(results: ResultStore, name: str, version: int) -> dict[str, Any]:
    """The version's concept-drift detections (its whole labelled stream, not the period)."""
    from livemodel.monitor.concept import CONCEPT
    from livemodel.monitor.conceptstore import concept_view

    return concept_view(results.query(name, version=version, calculator=CONCEPT), version)


def _rollouts(registry: Registry, name: str, since: datetime, store: Any) -> dict[str, Any]:
    events = [
        {
            "at": e.at.isoformat(), "action": e.action, "actor": e.actor, "alias": e.alias,
            "from_version": e.from_version, "to_version": e.to_version, "reason": e.reason,
            "rollout": e.details.get("rollout"),
            "readings": [
                {k: r.get(k) for k in ("guard", "verdict", "effect", "p_value")}
                for r in e.details.get("readings", []) if isinstance(r, dict)
            ],
        }
        for e in registry.audit(name)
        if e.action.startswith(("rollout.", "alias."))
    ]  # fmt: skip
    latest = None
    if store is not None:
        try:
            stored = store.latest(name)
            state = dict(stored.state)
            latest = {
                "id": stored.id, "status": stored.status, "champion": state.get("champion"),
                "candidate": state.get("candidate"), "step": state.get("step"),
                "reason": state.get("reason"), "updated_at": stored.updated_at.isoformat(),
            }  # fmt: skip
        except NotFoundError:
            latest = None
    return {"events": events[-200:][::-1], "latest": latest}


def _alerts(store: Any, name: str, since: datetime) -> list[dict[str, Any]]:
    if store is None:
        return []
    return [
        {k: a.to_dict()[k] for k in ("at", "severity", "rule", "state", "attempts", "message")}
        for a in store.query(name, since=since, limit=200)
    ]


def _lineage(version: ModelVersion) -> dict[str, Any]:
    card = version.to_dict()
    lineage = dict(card.get("lineage") or {})
    estimator = dict(lineage.get("estimator") or {})
    return {
        "ref": version.ref,
        "created_at": card["created_at"],
        "actor": card["actor"],
        "description": card["description"],
        "signature": [
            {"name": c.name, "type": c.type.value, "nullable": getattr(c, "nullable", None)}
            for c in version.signature.columns
        ],
        "task": card["signature"].get("task"),
        "data": lineage.get("data"),
        "code": lineage.get("code"),
        "estimator": {"class": estimator.get("class"), "params": estimator.get("params", {})},
        "environment": lineage.get("environment"),
        "seed": lineage.get("seed"),
        "artifact_sha256": card["artifact"].get("sha256"),
        "metrics": card.get("metrics"),
        "tags": card.get("tags"),
    }


def _fairness(
    reader: LogReader, version: ModelVersion, since: datetime, until: datetime,
    options: ReportOptions,
) -> dict[str, Any] | None:  # fmt: skip
    attribute = options.protected
    if attribute is None:
        return None
    from livemodel.stats.fairness import fairness_audit

    task = version.signature.task
    base = {"attribute": attribute, "metric": options.fairness_metric}
    if attribute not in version.signature.names:
        return {**base, "note": f"{attribute!r} is not a logged feature of this model"}
    regression_metric = options.fairness_metric in ("mae", "rmse", "mean_prediction")
    if task is None or (task.kind == "regression") != regression_metric:
        return {**base, "note": "the fairness metric does not fit this model's task"}
    output = "o.value" if task.kind == "regression" else "o.label"
    proba = f"o.proba.{task.classes[-1]}" if task.classes else None
    columns = [f"f.{attribute}", output, *([proba] if proba else [])]
    frame = _read(reader, version, since, until, columns, labels=True)
    frame = frame[frame["label"].notna()] if "label" in frame else frame.iloc[:0]
    if frame.empty:
        return {**base, "note": "no labelled predictions in this period"}
    frame = frame.iloc[-FAIRNESS_ROWS:]
    y_true, y_pred = frame["label"].to_numpy(), frame[output].to_numpy()
    if task.kind != "regression":
        y_true, y_pred = _same_labels(y_true, y_pred)
    try:
        audit = fairness_audit(
            y_true, y_pred, frame[f"f.{attribute}"].to_numpy(dtype=object),
            metric=options.fairness_metric,
            y_proba=frame[proba].to_numpy() if proba and proba in frame else None,
            n_boot=options.n_boot, seed=options.seed,
        )  # fmt: skip
    except LivemodelError as exc:
        return {**base, "note": f"fairness audit not possible: {exc.message}"}
    return {**base, "note": None, "rows": len(frame), "audit": audit.to_dict()}


def _same_labels(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Labels of both arrays in one type: the log's label column turns float when it has
    gaps (1.0 for 1), while predicted labels stay int."""
    import numpy as np

    def canonical(values: Any) -> list[Any]:
        return [
            int(v) if isinstance(v, float | np.floating) and float(v).is_integer() else
            (v.item() if isinstance(v, np.generic) else v)
            for v in values
        ]  # fmt: skip

    a, b = canonical(y_true), canonical(y_pred)
    if len({type(v) for v in a + b}) > 1:
        a, b = [str(v) for v in a], [str(v) for v in b]
    return np.asarray(a), np.asarray(b)


def _importance(
    registry: Registry, ref: ModelRef, version: ModelVersion, reference: pd.DataFrame,
    *, current: pd.DataFrame | None, options: ReportOptions,
) -> dict[str, Any]:  # fmt: skip
    from livemodel.report.explain import Importance, global_importance

    if not options.explain:
        return Importance(None, note="importance not requested").to_dict()
    names = list(version.signature.names)
    if any(n not in reference for n in names):
        return Importance(None, note="the reference sample lacks features").to_dict()
    model = registry.load(ref).model
    if current is not None:
        current = current.astype(reference[names].dtypes.to_dict(), errors="ignore")
    return global_importance(model, names, reference, current, seed=options.seed).to_dict()
