"""Model failures while serving: logged and counted for operators, never shown to clients.

A row a model fails on (it raised, answered NaN or infinity, or did not answer in time) is

* one ERROR line in the server log (logger ``livemodel.serving``) per request and kind of
  failure: the model, the version, the arm, the request's prediction ids, the exception's
  type and message, and how the request was answered (by a fallback, or 422/503);
* counted in ``livemodel_model_failures_total{model, version, arm, reason}``;
* during a rollout, a record of the prediction log under its prediction id, with the
  request's features, no outputs and the failure's flag, so the rollout's ``errors`` guard
  counts it for the version that failed (see :mod:`livemodel.rollout.observations`).

A client whose request could not be answered gets an error whose body names the request's
prediction ids (:class:`ModelFailedError`): the ids find the log line, and no exception
text, stack or path reaches the client. A failure specific to the records (the model
raised, or answered NaN or infinity, on them) is a 422: sending them again cannot succeed.
A model that did not answer in time is a 503: the server is unavailable, a retry may work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livemodel.errors import UnavailableError
from livemodel.serving.handles import BatchOutputs
from livemodel.serving.metrics import ServerMetrics
from livemodel.store.answered import FAILURE_FLAGS

__all__ = [
    "NON_FINITE",
    "REASONS",
    "Cause",
    "ModelFailedError",
    "failure_message",
    "failure_status",
    "mark_non_finite",
    "no_failures",
    "report",
    "report_request",
]

#: the flags a failed row carries (also what the rollout guards count as a failure)
REASONS = FAILURE_FLAGS
_MAX_MESSAGE = 2_000
_MAX_IDS = 20
_log = logging.getLogger("livemodel.serving")


@dataclass(frozen=True)
class Cause:
    """What went wrong, for the server log: an exception's type and message."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> Cause:
        return cls(type(exc).__name__, _one_line(str(exc)))


NON_FINITE = Cause("NonFiniteOutput", "the model answered NaN or infinity")


class ModelFailedError(UnavailableError):
    """A model could not answer a request and no fallback did: an error naming the
    request's prediction ids, under which the server log has the model's own error. 422
    when the model failed on these records (``model_error``, ``nan_output``), 503 when it
    did not answer in time (``timeout``)."""

    def __init__(self, message: str, prediction_ids: Sequence[str], reason: str) -> None:
        super().__init__(message)
        self.prediction_ids = list(prediction_ids)
        self.reason = reason
        self.http_status = failure_status(reason)


def failure_status(reason: str) -> int:
    """The status of a request a model failed on and no fallback answered."""
    return 503 if reason == "timeout" else 422


def report(
    metrics: ServerMetrics,
    *,
    model: str,
    version: int,
    arm: str,
    reason: str,
    cause: Cause,
    ids: Sequence[str],
    outcome: str,
) -> None:
    """Log one failure of ``version`` on the rows ``ids`` of a request, and count them."""
    metrics.model_failures.labels(model, str(version), arm, reason).inc(len(ids))
    shown = ",".join(ids[:_MAX_IDS]) + (
        f",+{len(ids) - _MAX_IDS} more" if len(ids) > _MAX_IDS else ""
    )
    _log.error(
        "model %r version %s failed (%s) on %d row(s), arm %s, prediction ids %s: %s: %s; %s",
        model, version, reason, len(ids), arm, shown, cause.kind, cause.message, outcome,
    )  # fmt: skip


def report_request(
    metrics: ServerMetrics,
    *,
    model: str,
    version: int,
    arm: str,
    failures: tuple[np.ndarray, np.ndarray],
    ids: Sequence[str],
    answered_by: str | None,
) -> None:
    """:func:`report` each kind of failure among a request's rows: ``failures`` is, per
    row, the reason ('' if the row did not fail) and the :class:`Cause`; ``answered_by``
    the fallback that answered the failed rows (None: the request was refused, 422 or 503)."""
    reasons, causes = failures
    groups: dict[tuple[str, Cause], list[str]] = {}
    for i, reason in enumerate(reasons):
        if reason:
            cause = causes[i] if causes[i] is not None else Cause(str(reason), "")
            groups.setdefault((str(reason), cause), []).append(ids[i])
    for (reason, cause), pids in groups.items():
        outcome = (
            f"answered {failure_status(reason)}"
            if answered_by is None
            else f"answered by the {answered_by!r} fallback"
        )
        report(
            metrics, model=model, version=version, arm=arm, reason=reason, cause=cause,
            ids=pids, outcome=outcome,
        )  # fmt: skip


def no_failures(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a batch: no failure reason ('') and no cause (None) yet."""
    return np.full(n, "", dtype=object), np.full(n, None, dtype=object)


def mark_non_finite(outputs: BatchOutputs, reasons: np.ndarray, causes: np.ndarray) -> None:
    """Rows answered with NaN or infinity (and not failed otherwise) need a fallback."""
    bad = ~outputs.ok_rows() & (reasons == "")
    reasons[bad] = "nan_output"
    causes[bad] = NON_FINITE


def failure_message(model: str, reason: str, cause: Cause | None) -> str:
    """What a client is told: livemodel's own words, never the model's exception."""
    if reason == "timeout" and cause is not None:
        return f"{cause.message}, and it has no fallback"  # "model 'x' did not answer within"
    return f"model {model!r} failed ({reason}) and has no fallback"


def _one_line(text: str) -> str:
    """A message as one log line (a multi-line message would read as several records)."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."
