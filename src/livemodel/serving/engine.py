"""The prediction pipeline of one served model: validate, predict, fall back, log.

One :class:`ModelEndpoint` per model name. Requests go through a
:class:`~livemodel.serving.batcher.MicroBatcher`; each batch is validated in one vectorized
pass against the signature, predicted in one model call, written to the prediction log in
one group-committed write, and only then answered. A request is acknowledged (200) only
after its records reached the operating system.
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

from livemodel.errors import LivemodelError, UnavailableError, ValidationError
from livemodel.schema.validation import ValidationResult, validate
from livemodel.serving.batcher import BatchTimeoutError, MicroBatcher
from livemodel.serving.fallbacks import fallback_outputs
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
        outputs, fallback = self._predict(handle, frame, bounds)
        logged = self._answer(
            batch=batch,
            answers=answers,
            bounds=bounds,
            result=result,
            outputs=outputs,
            reasons=fallback,
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
                bad = _rejecting_flags(result, start, stop, reject)
                if bad:
                    answer.rejected = _message(bad)
                    answer.rejected_fields = bad[:20]
            if answer.rejected is None:
                bounds.append((start, stop))
            answers.append(answer)
            start = stop
        return answers, bounds

    def _predict(
        self, handle: ModelHandle, frame: pd.DataFrame, bounds: list[tuple[int, int]]
    ) -> tuple[BatchOutputs | None, np.ndarray]:
        """Outputs for the admitted rows, and per row the reason a fallback is needed ('')."""
        try:
            outputs = handle.predict(frame)
        except Exception:  # noqa: BLE001 - a user's model may raise anything
            if len(bounds) > 1:
                return self._predict_apart(handle, frame, bounds)
            return None, np.full(len(frame), "model_error", dtype=object)
        reasons = np.full(len(frame), "", dtype=object)
        reasons[~outputs.ok_rows()] = "nan_output"
        return outputs, reasons

    def _predict_apart(
        self, handle: ModelHandle, frame: pd.DataFrame, bounds: list[tuple[int, int]]
    ) -> tuple[BatchOutputs | None, np.ndarray]:
        """The batched call failed: one call per request, so that a request the model cannot
        answer does not take down the requests it happened to be batched with."""
        sizes = [stop - start for start, stop in bounds]
        parts: list[BatchOutputs | None] = []
        failed = np.zeros(len(frame), dtype=bool)
        start = 0
        for size in sizes:
            try:
                parts.append(handle.predict(frame.iloc[start : start + size]))
            except Exception:  # noqa: BLE001 - a user's model may raise anything
                parts.append(None)
                failed[start : start + size] = True
            start += size
        if failed.all():
            return None, np.full(len(frame), "model_error", dtype=object)
        outputs = concat_outputs(parts, sizes)
        reasons = np.full(len(frame), "", dtype=object)
        reasons[~outputs.ok_rows()] = "nan_output"
        reasons[failed] = "model_error"
        return outputs, reasons

    def _answer(
        self,
        *,
        batch: Sequence[PredictRequest],
        answers: list[PredictAnswer],
        bounds: list[tuple[int, int]],
        result: ValidationResult,
        outputs: BatchOutputs | None,
        reasons: np.ndarray,
        handle: ModelHandle,
    ) -> list[tuple[PredictRequest, list[PredictionRecord]]]:
        """Fill each admitted request's answer; returns the records to log per request."""
        now = datetime.now(UTC)
        features = _feature_rows(result.frame)
        fallback_rows = fallback_outputs(
            self.options, self.previous, handle, frame=result.frame, bounds=bounds, reasons=reasons
        )
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
            rows: list[dict[str, Any]] = []
            records: list[PredictionRecord] = []
            for offset, row in enumerate(range(start, stop)):
                at = first + offset
                flags = result.row_flags(row)
                if reasons[at]:
                    out, version, extra = fallback_rows[at]
                    if out is None:
                        answer.error = UnavailableError(
                            f"model {self.name!r} failed ({reasons[at]}) and has no fallback"
                        )
                        break
                    flags = [*flags, reasons[at], *extra]
                else:
                    out, version = row_outputs(handle, outputs, at), handle.number
                    if _low_confidence(out, self.options.review_threshold):
                        flags = [*flags, "low_confidence"]
                        self.metrics.review.labels(self.name).inc()
                pid = req.ids[offset] if req.ids is not None else uuid.uuid4().hex
                rows.append({"id": pid, "version": version, **out, "flags": flags})
                records.append(
                    PredictionRecord(
                        prediction_id=pid,
                        model=self.name,
                        version=version,
                        features=features[row],
                        outputs=out,
                        time=now,
                        latency_ms=latency,
                        flags=flags,
                        arm=req.arm,
                    )
                )
            if answer.error is not None:
                continue  # nothing of a failed request is acknowledged, so nothing is logged
            answer.rows = rows
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
        """The model hung: answer with the fallback (logged), or a 503."""
        request.abandoned = True
        options = self.options
        failed = PredictAnswer(version=self.handle.number, error=UnavailableError(exc.message))
        if options.fallback == "error" or (
            options.fallback == "previous" and self.previous is None
        ):
            self.metrics.fallbacks.labels(self.name, "timeout", options.fallback).inc(
                len(request.records)
            )
            return failed
        try:
            answer, records = await asyncio.wait_for(
                asyncio.to_thread(self._timeout_answer, request), options.timeout_ms / 1000
            )
        except TimeoutError:  # the previous version hangs too
            return failed
        if records:
            await self.log.append_async(records)
        return answer

    def _timeout_answer(
        self, request: PredictRequest
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
            reasons=np.full(result.n_rows, "timeout", dtype=object),
            handle=handle,
        )
        return answers[0], [r for _, records in logged for r in records]


def _rejecting_flags(
    result: ValidationResult, start: int, stop: int, reject: set[str]
) -> list[dict[str, str]]:
    bad: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for row in range(start, stop):
        if result.valid[row]:
            continue
        for flag in result.row_flags(row):
            kind, _, column = flag.partition(":")
            if kind in reject and (kind, column) not in seen:
                seen.add((kind, column))
                bad.append({"field": column, "problem": kind, "row": str(row - start)})
    return bad


def _message(bad: list[dict[str, str]]) -> str:
    shown = "; ".join(f"{b['field']}: {b['problem'].replace('_', ' ')}" for b in bad[:5])
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    return f"{len(bad)} problem(s) with the input: {shown}{more}"


def _feature_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    names = [str(c) for c in frame.columns]
    arrays = []
    for name in names:
        values = frame[name].to_numpy(dtype=object)
        missing = frame[name].isna().to_numpy()
        if missing.any():
            values[missing] = None
        arrays.append(values)
    return [dict(zip(names, values, strict=True)) for values in zip(*arrays, strict=True)]


def _low_confidence(out: dict[str, Any], threshold: float | None) -> bool:
    if threshold is None or "proba" not in out:
        return False
    return bool(max(out["proba"].values()) < threshold)
