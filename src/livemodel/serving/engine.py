"""The prediction pipeline of one served model: validate, predict, fall back, log.

One :class:`ModelEndpoint` per model name. Requests go through a
:class:`~livemodel.serving.batcher.MicroBatcher`; each batch is validated in one vectorized
pass against the signature, predicted in one model call, written to the prediction log in
one group-committed write, and only then answered. A request is acknowledged (200) only
after its records reached the operating system.

Rows the model fails on are answered by the model's fallback, or the request is a 422
(a 503 if the model did not answer in time) naming its prediction ids; either way the
failure is logged and counted, and during a rollout recorded in the prediction log for
the guards (see :mod:`.failures`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import LivemodelError, ValidationError
from livemodel.schema.validation import ValidationResult, validate
from livemodel.serving.admission import feature_rows, rejecting_flags, rejection_message
from livemodel.serving.batcher import BatchTimeoutError, MicroBatcher
from livemodel.serving.failures import (
    Cause,
    ModelFailedError,
    failure_message,
    mark_non_finite,
    no_failures,
    report_request,
)
from livemodel.serving.fallbacks import FallbackRow, fallback_outputs
from livemodel.serving.handles import BatchOutputs, ModelHandle, concat_outputs, row_outputs
from livemodel.serving.metrics import ServerMetrics
from livemodel.serving.options import ModelOptions
from livemodel.store.logwriter import PredictionLog
from livemodel.store.predlog import PredictionRecord


@dataclass
class PredictRequest:
    records: Sequence[dict[str, Any]]
    arm: str | None = None
    started: float = field(default_factory=time.perf_counter)
    # Prediction ids given in advance (shadow traffic reuses the champion's ids).
    ids: Sequence[str] | None = None
    # Set when the request was answered without waiting for its batch (timeout): whatever
    # the late batch computes for it is then never logged, since nobody was answered with it.
    abandoned: bool = False


@dataclass
class PredictAnswer:
    """What one request gets back: rows in request order, or a rejection."""

    version: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: str | None = None
    rejected_fields: list[dict[str, str]] = field(default_factory=list)
    error: LivemodelError | None = None
    #: some rows failed and were answered by a fallback (flagged with the reason)
    failed: bool = False


@dataclass(frozen=True)
class ActiveRollout:
    """What a server needs to route a running rollout: its id, share and candidate."""

    id: str
    candidate_version: int
    percent: float
    shadow: bool
    routing_key: str | None
    candidate: ModelEndpoint


class ModelEndpoint:
    """Serves one model name; :meth:`swap` replaces the version with no failed request."""

    def __init__(
        self,
        handle: ModelHandle,
        options: ModelOptions,
        log: PredictionLog,
        metrics: ServerMetrics,
        previous: ModelHandle | None = None,
    ) -> None:
        self.handle = handle
        self.previous = previous
        #: set while a rollout of this model runs (see :mod:`livemodel.serving.router`)
        self.rollout: ActiveRollout | None = None
        self.options = options
        self.log = log
        self.metrics = metrics
        self.batcher: MicroBatcher[PredictRequest, PredictAnswer] = MicroBatcher(
            self._process,
            max_batch_size=options.max_batch_size,
            max_queue=options.max_queue,
            timeout_s=options.timeout_ms / 1000,
            name=handle.name,
        )

    @property
    def name(self) -> str:
        return self.handle.name

    @property
    def previous_number(self) -> int | None:
        return None if self.previous is None else self.previous.number

    def swap(self, handle: ModelHandle) -> None:
        """Serve ``handle`` from the next batch on; batches in flight finish on the old one."""
        if handle.number != self.handle.number:
            self.previous = self.handle
        self.handle = handle

    async def predict(self, request: PredictRequest) -> PredictAnswer:
        depth = self.metrics.queue_depth.labels(self.name)
        depth.inc()
        try:
            answer = await self.batcher.submit(request)
        except BatchTimeoutError as exc:
            answer = await self._on_timeout(request, exc)
        finally:
            depth.dec()
        if answer.error is not None:
            raise answer.error
        if answer.rejected is not None:
            self.metrics.rejected.labels(self.name).inc()
            error = ValidationError(answer.rejected)
            error.details = answer.rejected_fields  # type: ignore[attr-defined]
            raise error
        self.metrics.latency.labels(self.name, str(answer.version)).observe(
            time.perf_counter() - request.started
        )
        return answer

    # -- the batch, in the model's thread ----------------------------------------------------
    def _process(self, batch: Sequence[PredictRequest]) -> list[PredictAnswer]:
        handle = self.handle  # one version for the whole batch
        records = [r for req in batch for r in req.records]
        self.metrics.batches.labels(self.name).inc()
        self.metrics.batch_rows.labels(self.name).observe(len(records))
        result = validate(handle.version.signature, records)
        self.metrics.count_violations(self.name, result.counts)
        answers, bounds = self._admit(batch, result, handle)
        rows = np.concatenate([np.arange(a, b) for a, b in bounds]) if bounds else np.empty(0, int)
        if len(rows) == 0:
            return answers
        frame = result.frame if len(rows) == len(records) else result.frame.iloc[rows]
        outputs, reasons, causes = self._predict(handle, frame, bounds)
        logged = self._answer(
            batch=batch,
            answers=answers,
            bounds=bounds,
            result=result,
            outputs=outputs,
            failures=(reasons, causes),
            handle=handle,
        )
        # A request that timed out meanwhile was answered (or refused) already.
        self.log.append([r for req, records in logged if not req.abandoned for r in records])
        return answers

    def _admit(
        self, batch: Sequence[PredictRequest], result: ValidationResult, handle: ModelHandle
    ) -> tuple[list[PredictAnswer], list[tuple[int, int]]]:
        """Reject requests that violate the signature in a rejecting way; keep the rest."""
        answers: list[PredictAnswer] = []
        bounds: list[tuple[int, int]] = []
        reject = {str(k) for k in self.options.reject_kinds}
        start = 0
        for req in batch:
            stop = start + len(req.records)
            answer = PredictAnswer(version=handle.number)
            if self.options.validation == "reject" and not result.valid[start:stop].all():
                bad = rejecting_flags(result, start, stop, reject)
                if bad:
                    answer.rejected = rejection_message(bad)
                    answer.rejected_fields = bad[:20]
            if answer.rejected is None:
                bounds.append((start, stop))
            answers.append(answer)
            start = stop
        return answers, bounds

    def _predict(
        self, handle: ModelHandle, frame: pd.DataFrame, bounds: list[tuple[int, int]]
    ) -> tuple[BatchOutputs | None, np.ndarray, np.ndarray]:
        """Outputs for the admitted rows and, per row, the reason a fallback is needed ('')
        and its :class:`Cause` (None)."""
        try:
            outputs = handle.predict(frame)
        except Exception as exc:  # noqa: BLE001 - a user's model may raise anything
            if len(bounds) > 1:
                return self._predict_apart(handle, frame, bounds)
            reasons, causes = no_failures(len(frame))
            reasons[:] = "model_error"
            causes[:] = [Cause.of(exc)] * len(frame)
            return None, reasons, causes
        reasons, causes = no_failures(len(frame))
        mark_non_finite(outputs, reasons, causes)
        return outputs, reasons, causes

    def _predict_apart(
        self, handle: ModelHandle, frame: pd.DataFrame, bounds: list[tuple[int, int]]
    ) -> tuple[BatchOutputs | None, np.ndarray, np.ndarray]:
        """The batched call failed: one call per request, so that a request the model cannot
        answer does not take down the requests it happened to be batched with."""
        sizes = [stop - start for start, stop in bounds]
        parts: list[BatchOutputs | None] = []
        reasons, causes = no_failures(len(frame))
        start = 0
        for size in sizes:
            try:
                parts.append(handle.predict(frame.iloc[start : start + size]))
            except Exception as exc:  # noqa: BLE001 - a user's model may raise anything
                parts.append(None)
                reasons[start : start + size] = "model_error"
                causes[start : start + size] = [Cause.of(exc)] * size
            start += size
        if all(part is None for part in parts):
            return None, reasons, causes
        outputs = concat_outputs(parts, sizes)
        mark_non_finite(outputs, reasons, causes)
        return outputs, reasons, causes

    def _answer(
        self,
        *,
        batch: Sequence[PredictRequest],
        answers: list[PredictAnswer],
        bounds: list[tuple[int, int]],
        result: ValidationResult,
        outputs: BatchOutputs | None,
        failures: tuple[np.ndarray, np.ndarray],
        handle: ModelHandle,
        use_fallback: bool = True,
    ) -> list[tuple[PredictRequest, list[PredictionRecord]]]:
        """Fill each admitted request's answer; returns the records to log per request.

        ``failures`` is, per admitted row, the reason it needs a fallback ('' if none) and
        the :class:`Cause` of it. A request with a row no fallback answered fails whole:
        nothing of it is acknowledged, and only during a rollout are its failed rows logged
        (no outputs, the reason as flag) so the guards count them for this version.
        """
        reasons, causes = failures
        now = datetime.now(UTC)
        features = feature_rows(result.frame)
        fallback_rows: dict[int, FallbackRow] = {
            i: (None, handle.number, []) for i, r in enumerate(reasons) if r
        }
        if use_fallback:
            fallback_rows = fallback_outputs(
                self.options, self.previous, handle, frame=result.frame, bounds=bounds,
                reasons=reasons,
            )  # fmt: skip
        for reason, n in Counter(r for r in reasons if r).items():
            self.metrics.fallbacks.labels(self.name, reason, self.options.fallback).inc(n)
        log_records: list[tuple[PredictRequest, list[PredictionRecord]]] = []
        position = 0  # index among admitted rows, which is how outputs are laid out
        admitted = iter(bounds)
        for req, answer in zip(batch, answers, strict=True):
            if answer.rejected is not None:
                continue
            start, stop = next(admitted)
            first = position
            position += stop - start
            latency = (time.perf_counter() - req.started) * 1000
            ids = _request_ids(req)
            records: list[PredictionRecord] = []
            unanswered: list[PredictionRecord] = []
            for offset, row in enumerate(range(start, stop)):
                at = first + offset
                flags, version, out = result.row_flags(row), handle.number, {}
                into = records
                if reasons[at]:
                    answered, version, extra = fallback_rows[at]
                    if answered is None and answer.error is None:
                        message = failure_message(self.name, reasons[at], causes[at])
                        answer.error = ModelFailedError(message, ids, reasons[at])
                    if answered is None:
                        into = unanswered
                    out = answered or {}
                    flags = [*flags, reasons[at], *extra]
                    answer.failed = True
                else:
                    out = row_outputs(handle, outputs, at)
                    if _low_confidence(out, self.options.review_threshold):
                        flags = [*flags, "low_confidence"]
                        self.metrics.review.labels(self.name).inc()
                record = PredictionRecord(
                    prediction_id=ids[offset], model=self.name, version=version,
                    features=features[row], outputs=out, time=now, latency_ms=latency,
                    flags=flags, arm=req.arm,
                )  # fmt: skip
                into.append(record)
            report_request(
                self.metrics,
                model=self.name,
                version=handle.number,
                arm=req.arm or "champion",
                failures=(reasons[first:position], causes[first:position]),
                ids=ids,
                answered_by=None if answer.error is not None else self.options.fallback,
            )
            if answer.error is not None:
                if req.arm is not None:
                    log_records.append((req, unanswered))
                continue
            answer.rows = [
                {"id": r.prediction_id, "version": r.version, **r.outputs, "flags": r.flags}
                for r in records
            ]
            log_records.append((req, records))
            for record in records:
                self._meter(record.version, dict(record.outputs), req.arm)
        return log_records

    def _meter(self, version: int, out: dict[str, Any], arm: str | None) -> None:
        v = str(version)
        self.metrics.rows.labels(self.name, v, arm or "champion").inc()
        if "label" in out:
            self.metrics.outputs.labels(self.name, v, str(out["label"])[:40]).inc()
        elif "value" in out:
            self.metrics.values.labels(self.name, v).observe(out["value"])

    async def _on_timeout(self, request: PredictRequest, exc: BatchTimeoutError) -> PredictAnswer:
        """The model hung: answer with the fallback, or a 503; logged either way."""
        request.abandoned = True
        options = self.options
        cause = Cause("Timeout", exc.message)
        usable = options.fallback == "default" or (
            options.fallback == "previous" and self.previous is not None
        )
        done: tuple[PredictAnswer, list[PredictionRecord]] | None = None
        if usable:
            try:
                done = await asyncio.wait_for(
                    asyncio.to_thread(self._timeout_answer, request, cause, True),
                    options.timeout_ms / 1000,
                )
            except TimeoutError:  # the previous version hangs too
                done = None
        if done is None:
            done = await asyncio.to_thread(self._timeout_answer, request, cause, False)
        answer, records = done
        if records:
            await self.log.append_async(records)
        return answer

    def _timeout_answer(
        self, request: PredictRequest, cause: Cause, use_fallback: bool
    ) -> tuple[PredictAnswer, list[PredictionRecord]]:
        """The same pipeline as a batch, with every row needing the fallback."""
        handle = self.handle
        result = validate(handle.version.signature, list(request.records))
        answers, bounds = self._admit([request], result, handle)
        if not bounds:
            return answers[0], []
        logged = self._answer(
            batch=[request],
            answers=answers,
            bounds=bounds,
            result=result,
            outputs=None,
            failures=(
                np.full(result.n_rows, "timeout", dtype=object),
                np.array([cause] * result.n_rows, dtype=object),
            ),
            handle=handle,
            use_fallback=use_fallback,
        )
        return answers[0], [r for _, records in logged for r in records]


def _request_ids(req: PredictRequest) -> Sequence[str]:
    """The request's prediction ids, made once (a failed request names them too)."""
    if req.ids is None:
        req.ids = [uuid.uuid4().hex for _ in req.records]
    return req.ids


def _low_confidence(out: dict[str, Any], threshold: float | None) -> bool:
    if threshold is None or "proba" not in out:
        return False
    return bool(max(out["proba"].values()) < threshold)
