"""Report sections computed from stored monitoring results: plain data, no I/O.

Each function takes the stored results of one model (rows shaped like
:class:`~livemodel.monitor.resultstore.StoredResult`) and returns JSON-safe dicts and
lists that :mod:`livemodel.report.render` draws.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.monitor.resultstore import StoredResult

__all__ = [
    "HEADLINE",
    "categorical_distribution",
    "drift_matrix",
    "numeric_distribution",
    "performance_series",
    "pick_window",
    "quality_table",
    "segment_table",
]

ALL = "*"
HEADLINE = {
    "binary": ("accuracy", "roc_auc", "f1"),
    "multiclass": ("accuracy", "f1"),
    "regression": ("mae", "rmse"),
}
SCORE = "jensen_shannon"
MAX_CATEGORIES = 15


def pick_window(rows: Sequence[StoredResult], wanted: str | None = None) -> str | None:
    """The window spec to report: ``wanted``, else the one with the most windows."""
    counts = Counter(r.window for r in rows if r.segment == ALL)
    if wanted is not None:
        return wanted if wanted in counts else None
    if not counts:
        return None
    starts = {w: len({r.start for r in rows if r.window == w}) for w in counts}
    return max(starts, key=lambda w: (starts[w], w))


def drift_matrix(rows: Sequence[StoredResult]) -> dict[str, Any]:
    """Features x windows: the Jensen-Shannon distance (score) and the drift verdict."""
    drift = [r for r in rows if r.segment == ALL and r.calculator == "data_drift" and r.column]
    windows = sorted({r.start for r in drift})
    features = list(dict.fromkeys(r.column for r in drift if r.metric == "drift"))
    index = {w: i for i, w in enumerate(windows)}
    score: list[list[float | None]] = [[None] * len(windows) for _ in features]
    verdict: list[list[bool | None]] = [[None] * len(windows) for _ in features]
    row_of = {f: i for i, f in enumerate(features)}
    for r in drift:
        if r.column not in row_of:
            continue
        i, j = row_of[r.column], index[r.start]
        if r.metric == SCORE:
            score[i][j] = r.value
        elif r.metric == "drift":
            verdict[i][j] = None if r.value is None else bool(r.alert)
    drifted_any = [f for f, v in zip(features, verdict, strict=True) if any(x for x in v)]
    return {
        "features": features,
        "windows": [w.isoformat() for w in windows],
        "score": score,
        "drifted": verdict,
        "metric": SCORE,
        "drifted_features": drifted_any,
    }


def quality_table(rows: Sequence[StoredResult]) -> list[dict[str, Any]]:
    """Per column and rate: the latest value, the worst, and how many windows alerted."""
    quality = [r for r in rows if r.segment == ALL and r.calculator == "data_quality"]
    groups: dict[tuple[str, str], list[StoredResult]] = {}
    for r in quality:
        groups.setdefault((r.column or "", r.metric), []).append(r)
    out = []
    for (column, metric), items in sorted(groups.items()):
        items.sort(key=lambda r: r.start)
        values = [r.value for r in items if r.value is not None]
        latest = items[-1]
        out.append(
            {
                "column": column,
                "metric": metric,
                "latest": latest.value,
                "worst": max(values) if values else None,
                "threshold": latest.threshold,
                "alert_windows": sum(r.alert for r in items),
                "windows": len(items),
                "alert": latest.alert,
            }
        )
    return sorted(out, key=lambda d: (-d["alert_windows"], d["column"], d["metric"]))


def performance_series(
    rows: Sequence[StoredResult], metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """Per metric, realized and estimated values over windows with their bands."""
    out = []
    for metric in metrics:
        entry: dict[str, Any] = {"metric": metric}
        for kind in ("realized", "estimated"):
            items = sorted(
                (r for r in rows if r.segment == ALL and r.metric == metric
                 and r.calculator == f"{kind}_performance"),
                key=lambda r: r.start,
            )  # fmt: skip
            entry[kind] = {
                "x": [r.start.isoformat() for r in items],
                "value": [r.value for r in items],
                "lower": [r.lower for r in items],
                "upper": [r.upper for r in items],
                "n": [r.n for r in items],
                "alert": [r.alert for r in items],
            }
        if entry["realized"]["x"] or entry["estimated"]["x"]:
            out.append(entry)
    return out


def segment_table(rows: Sequence[StoredResult], metrics: Sequence[str]) -> dict[str, Any]:
    """The segments of the latest window that has any: rows, drift and headline metrics."""
    segmented = [r for r in rows if r.segment != ALL]
    if not segmented:
        return {"window": None, "rows": [], "metrics": list(metrics)}
    latest = max(r.start for r in segmented)
    here = [r for r in segmented if r.start == latest]
    out = []
    for segment in sorted({r.segment for r in here}):
        mine = [r for r in here if r.segment == segment]
        sizes = [r.n for r in mine if r.calculator in ("data_drift", "data_quality")]
        drifted = sorted(
            str(r.column) for r in mine
            if r.calculator == "data_drift" and r.metric == "drift" and r.alert
        )  # fmt: skip
        values: dict[str, dict[str, Any]] = {}
        for metric in metrics:
            for kind in ("realized", "estimated"):
                hit = next((r for r in mine if r.metric == metric
                            and r.calculator == f"{kind}_performance"), None)  # fmt: skip
                values.setdefault(metric, {})[kind] = None if hit is None else {
                    "value": hit.value, "lower": hit.lower, "upper": hit.upper,
                    "alert": hit.alert, "n": hit.n,
                }  # fmt: skip
        out.append({"segment": segment, "rows": max(sizes, default=0), "drifted": drifted,
                    "metrics": values})  # fmt: skip
    return {"window": latest.isoformat(), "rows": out, "metrics": list(metrics)}


def numeric_distribution(
    reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 30
) -> dict[str, Any] | None:
    """Shares of reference and current values in common bins (outer 0.5% pooled at the
    ends, so one outlier does not flatten the picture); None when either is empty."""
    ref = _finite(reference)
    cur = _finite(current)
    if ref.size == 0 or cur.size == 0:
        return None
    # Keep the span finite: numbers near the float limit would overflow the bin width.
    ref, cur = np.clip(ref, -1e300, 1e300), np.clip(cur, -1e300, 1e300)
    both = np.concatenate([ref, cur])
    lo, hi = np.quantile(both, [0.005, 0.995])
    if not hi > lo:
        lo, hi = float(both.min()), float(both.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(np.clip(x, lo, hi), edges)[0] / x.size for x in (ref, cur)]
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "centers": ((edges[:-1] + edges[1:]) / 2).tolist(),
        "reference": shares[0].tolist(),
        "current": shares[1].tolist(),
        "n_reference": int(ref.size),
        "n_current": int(cur.size),
    }


def categorical_distribution(
    reference: pd.Series[Any], current: pd.Series[Any]
) -> dict[str, Any] | None:
    """Shares of the most frequent categories (the rest as ``(other)``, gaps as
    ``(missing)``); None when either side is empty."""
    ref, cur = _labels(reference), _labels(current)
    if ref.empty or cur.empty:
        return None
    ref_share = ref.value_counts(normalize=True)
    cur_share = cur.value_counts(normalize=True)
    pooled = ref_share.add(cur_share, fill_value=0.0).sort_values(ascending=False)
    top = list(pooled.index[:MAX_CATEGORIES])
    labels = [*top, "(other)"] if len(pooled) > MAX_CATEGORIES else top

    def shares(s: pd.Series[Any]) -> list[float]:
        kept = [float(s.get(c, 0.0)) for c in top]
        return [*kept, max(0.0, 1.0 - sum(kept))] if len(labels) > len(top) else kept

    return {
        "kind": "categorical",
        "labels": [str(c) for c in labels],
        "reference": shares(ref_share),
        "current": shares(cur_share),
        "n_reference": int(ref.size),
        "n_current": int(cur.size),
    }


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
    out: npt.NDArray[np.float64] = arr.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(out[np.isfinite(out)], dtype=np.float64)


def _labels(series: pd.Series[Any]) -> pd.Series[Any]:
    values = series.astype(object)
    return values.where(values.notna(), "(missing)").map(str)
