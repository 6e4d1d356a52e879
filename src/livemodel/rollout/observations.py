"""From logged traffic to per-request guard values, one array per arm.

The server logs each request of a rollout with its arm: ``champion`` (routed to the
champion), ``candidate`` (routed to the candidate) and ``shadow`` (the candidate's answer
to a mirrored request, under the same prediction ids as the champion's records). A row a
version failed on is logged too, carrying the failure's flag (with no outputs when no
fallback answered it). When the version of a canary arm fails on a request, the other
version's answer to the same input is logged under the same ids as arm ``fallback`` (the
champion answering for the candidate) or ``probe`` (asked off the response path; see
:mod:`livemodel.serving.router`). Everything here is a pure function of a window of the log.

Errors are compared like with like: an input both versions fail says nothing about the
candidate and is left out of both arms, and in shadow only inputs both versions saw are
compared. So hostile traffic that breaks every version (``income: 1e308``) neither rolls
back a candidate nor holds it up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from livemodel.store.answered import FAILURE_FLAGS

VIOLATION_KINDS = frozenset(
    {"missing_column", "unexpected_column", "wrong_type", "null", "out_of_range", "unseen_category"}
)

#: maps a version's class-probability matrix and the labels it decided (as logged) to the
#: calibrated probability that each decision is right
Confidence = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Observations:
    """Per guard: (candidate values, champion values), and how many candidate rows came in."""

    values: Mapping[str, tuple[np.ndarray, np.ndarray]]
    candidate_rows: int


def observe(
    window: pa.Table,
    *,
    shadow: bool,
    proba_columns: tuple[str, ...],
    confidence: Mapping[str, Confidence],
    latency_threshold_ms: float | None,
) -> Observations:
    """Guard values from one window of a rollout's traffic (``window`` from ``LogReader``).

    ``confidence`` maps an arm to a function giving each row's calibrated probability of
    being right (CBPE); missing arms get no ``estimated`` values.
    """
    rows = window.to_pydict()
    arms = np.asarray(rows.get("arm", []), dtype=object)
    flags = rows.get("flags", [[]] * len(arms))
    candidate_arm = "shadow" if shadow else "candidate"
    cand = arms == candidate_arm
    champ = arms == "champion"
    failed = np.array([bool(FAILURE_FLAGS & set(f or ())) for f in flags], dtype=float)
    ids = np.asarray(rows.get("prediction_id", [None] * len(arms)), dtype=object)
    comparable = _comparable(ids, arms, failed.astype(bool), shadow=shadow)
    violated = np.array(
        [any(x.partition(":")[0] in VIOLATION_KINDS for x in (f or ())) for f in flags], dtype=float
    )
    # Latency is per request: the rows of a request share its latency, and counting them
    # one by one overstated the evidence by the batch size (a healthy candidate was rolled
    # back for one slow request of 25 rows). Errors stay per row, as fallbacks are.
    _, first = _requests(rows, arms)
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "errors": (failed[cand & comparable], failed[champ & comparable]),
        "flags": (violated[cand], violated[champ]),
    }
    latency = np.asarray(
        [np.nan if x is None else x for x in rows.get("latency_ms", [None] * len(arms))], float
    )
    if latency_threshold_ms is not None:
        slow = (latency > latency_threshold_ms).astype(float)
        timed = first & ~np.isnan(latency)
        values["latency"] = (slow[cand & timed], slow[champ & timed])
    if shadow:
        values["divergence"] = (_divergence(rows, arms, failed.astype(bool)), np.zeros(0))
    proba = _proba(rows, proba_columns)
    if proba is not None and "o.label" in rows:
        decided = np.asarray(rows["o.label"], dtype=object)
        ok = ~failed.astype(bool) & np.isfinite(proba).all(axis=1)
        ok &= np.array([x is not None for x in decided], dtype=bool)
        estimated = []
        for mask, arm in ((cand & ok, candidate_arm), (champ & ok, "champion")):
            fn = confidence.get(arm)
            right = fn(proba[mask], decided[mask]) if fn is not None and mask.any() else None
            estimated.append(np.zeros(0) if right is None else right[np.isfinite(right)])
        values["estimated"] = (estimated[0], estimated[1])
    labels = rows.get("label")
    if labels is not None and "o.label" in rows:
        labelled = np.array([x is not None for x in labels], dtype=bool) & ~failed.astype(bool)
        right = np.array(
            [str(a) == str(b) for a, b in zip(rows["o.label"], labels, strict=True)], dtype=float
        )
        values["accuracy"] = (right[cand & labelled], right[champ & labelled])
    return Observations(values=values, candidate_rows=int(cand.sum()))


def champion_p99(window: pa.Table) -> float | None:
    """The champion's 99th percentile latency in ``window`` (None under 100 requests)."""
    rows = window.to_pydict()
    arms = np.asarray(rows.get("arm", []), dtype=object)
    _, first = _requests(rows, arms)
    lat = [
        x
        for a, x, keep in zip(arms, rows.get("latency_ms", []), first, strict=True)
        if keep and a == "champion" and x is not None
    ]
    if len(lat) < 100:
        return None
    return float(np.quantile(np.asarray(lat, float), 0.99))


def _requests(rows: Mapping[str, list[object]], arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's request (an index) and a mask of each request's first row.

    The server logs every row of a request with the request's time and latency (see
    :class:`~livemodel.serving.engine.ModelEndpoint`), so rows of one arm sharing both are
    one request; a row without a latency is a request of its own."""
    n = len(arms)
    times = rows.get("time", [None] * n)
    latencies = rows.get("latency_ms", [None] * n)
    seen: dict[object, int] = {}
    request = np.empty(n, dtype=np.int64)
    first = np.zeros(n, dtype=bool)
    for i, (arm, at, latency) in enumerate(zip(arms, times, latencies, strict=True)):
        key: object = i if latency is None or at is None else (arm, at, latency)
        index = seen.get(key)
        if index is None:
            index = seen[key] = len(seen)
            first[i] = True
        request[i] = index
    return request, first


def _comparable(
    ids: np.ndarray, arms: np.ndarray, failed: np.ndarray, *, shadow: bool
) -> np.ndarray:
    """Rows the errors guard compares: not an input both versions failed on and, in
    shadow, only inputs both versions answered (a dropped copy leaves its pair out)."""
    if shadow:
        outcome: dict[str, dict[object, bool]] = {"champion": {}, "shadow": {}}
        for pid, arm, bad in zip(ids, arms, failed, strict=True):
            if arm in outcome:
                outcome[arm][pid] = bool(bad)
        champion, copy = outcome["champion"], outcome["shadow"]
        return np.array(
            [pid in champion and pid in copy and not (champion[pid] and copy[pid]) for pid in ids],
            dtype=bool,
        )
    # The other version failed on this input too (its fallback or probe record).
    both = {
        pid
        for pid, arm, bad in zip(ids, arms, failed, strict=True)
        if bad and arm in ("fallback", "probe")
    }
    return np.array(
        [not (bad and pid in both) for pid, bad in zip(ids, failed, strict=True)], dtype=bool
    )


def _divergence(
    rows: Mapping[str, list[object]], arms: np.ndarray, failed: np.ndarray
) -> np.ndarray:
    """1 where the shadowed candidate's label differs from the champion's, per shadow row
    that both answered (failures are the errors guard's)."""
    if "o.label" not in rows:
        return np.zeros(0)
    labels = rows["o.label"]
    champion = {
        pid: label
        for pid, label, arm, bad in zip(rows["prediction_id"], labels, arms, failed, strict=True)
        if arm == "champion" and not bad
    }
    out = [
        float(str(label) != str(champion[pid]))
        for pid, label, arm, bad in zip(rows["prediction_id"], labels, arms, failed, strict=True)
        if arm == "shadow" and not bad and pid in champion
    ]
    return np.asarray(out, dtype=float)


def _proba(rows: Mapping[str, list[object]], columns: tuple[str, ...]) -> np.ndarray | None:
    if not columns or any(c not in rows for c in columns):
        return None
    matrix = np.asarray(
        [[np.nan if v is None else v for v in rows[c]] for c in columns], dtype=float
    )
    return matrix.T
