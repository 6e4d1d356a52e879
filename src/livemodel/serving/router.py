"""Routing during a rollout: shadow copies and canary shares, never failing the client.

- No rollout: the champion answers.
- Shadow: the champion answers; a copy of the request goes to the candidate off the response
  path, logged as arm ``shadow`` under the champion's prediction ids. Under load, shadow
  copies are dropped (counted) rather than queued without bound.
- Canary / A/B: a deterministic hash of the routing key (the request's entity field when the
  rollout names one, else a random id) sends the request to the candidate with the step's
  probability. If the candidate fails, the failure is logged as arm ``candidate`` (so the
  errors guard sees it) and the champion answers: the client never sees it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from livemodel.errors import LivemodelError, UnavailableError
from livemodel.rollout.routing import to_candidate
from livemodel.serving.engine import ActiveRollout, ModelEndpoint, PredictAnswer, PredictRequest
from livemodel.store.predlog import PredictionRecord

_MAX_SHADOW_BACKLOG = 256
_background: set[asyncio.Task[None]] = set()


async def route(endpoint: ModelEndpoint, request: PredictRequest) -> PredictAnswer:
    rollout = endpoint.rollout
    if rollout is None:
        return await endpoint.predict(request)
    if rollout.shadow:
        request.arm = "champion"
        answer = await endpoint.predict(request)
        if rollout.candidate.batcher.depth < _MAX_SHADOW_BACKLOG:
            ids = [row["id"] for row in answer.rows]
            task = asyncio.create_task(_shadow(endpoint, rollout, request.records, ids))
            _background.add(task)  # keep a reference until done
            task.add_done_callback(_background.discard)
        else:
            endpoint.metrics.fallbacks.labels(endpoint.name, "shadow_dropped", "none").inc()
        return answer
    if to_candidate(rollout.id, _routing_key(request, rollout), rollout.percent):
        try:
            return await rollout.candidate.predict(
                PredictRequest(request.records, arm="candidate", started=request.started)
            )
        except UnavailableError as exc:
            await _log_failure(
                endpoint, rollout, request.records, arm="candidate", ids=None, exc=exc
            )
    request.arm = "champion"
    return await endpoint.predict(request)


async def _shadow(
    endpoint: ModelEndpoint, rollout: ActiveRollout, records: Any, ids: list[str]
) -> None:
    try:
        await rollout.candidate.predict(PredictRequest(records, arm="shadow", ids=ids))
    except UnavailableError as exc:
        await _log_failure(endpoint, rollout, records, arm="shadow", ids=ids, exc=exc)
    except LivemodelError:
        pass  # e.g. the candidate's signature rejects the copy: nothing to compare


async def _log_failure(
    endpoint: ModelEndpoint,
    rollout: ActiveRollout,
    records: Any,
    *,
    arm: str,
    ids: list[str] | None,
    exc: LivemodelError,
) -> None:
    reason = "timeout" if "did not answer" in exc.message else "model_error"
    entries = [
        PredictionRecord(
            prediction_id=ids[i] if ids else uuid.uuid4().hex,
            model=endpoint.name,
            version=rollout.candidate_version,
            features={},
            outputs={},
            flags=[reason],
            arm=arm,
        )
        for i in range(len(records))
    ]
    endpoint.metrics.fallbacks.labels(endpoint.name, reason, "champion").inc(len(entries))
    await endpoint.log.append_async(entries)


def _routing_key(request: PredictRequest, rollout: ActiveRollout) -> str:
    if rollout.routing_key and request.records:
        value = request.records[0].get(rollout.routing_key)
        if value is not None:
            return str(value)
    return uuid.uuid4().hex
