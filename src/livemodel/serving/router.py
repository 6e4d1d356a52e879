"""Routing during a rollout: shadow copies and canary shares, never failing the client
because of the candidate, and recording every failure of either version with its request.

- No rollout: the champion answers.
- Shadow: the champion answers (arm ``champion``); a copy of the request goes to the
  candidate off the response path, logged as arm ``shadow`` under the champion's
  prediction ids, also when the champion failed on it, so the guards compare both
  versions on the same inputs. Under load, copies are dropped (counted) rather than
  queued without bound.
- Canary / A/B: a deterministic hash of the routing key (the request's entity field when the
  rollout names one, else a random id) sends the request to the candidate (arm
  ``candidate``) with the step's probability, else to the champion (arm ``champion``).
  If the candidate fails (logged by its endpoint) or its signature refuses what the
  champion's accepts, the champion answers under the same prediction ids as arm
  ``fallback``: the client never sees it.

A version's failure on a request is recorded by its endpoint (see
:mod:`livemodel.serving.failures`). When the version of a canary arm fails on a request,
the other version is asked about the same input under the same ids (``fallback`` above,
or off the response path as arm ``probe``), so the guards can tell an input both versions
fail, which says nothing about the candidate, from a failure of one version only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from livemodel.errors import LivemodelError, UnavailableError, ValidationError
from livemodel.rollout.routing import to_candidate
from livemodel.serving.engine import ActiveRollout, ModelEndpoint, PredictAnswer, PredictRequest
from livemodel.serving.failures import ModelFailedError

_MAX_BACKLOG = 256
_log = logging.getLogger("livemodel.serving")
_background: set[asyncio.Task[None]] = set()


async def route(endpoint: ModelEndpoint, request: PredictRequest) -> PredictAnswer:
    rollout = endpoint.rollout
    if rollout is None:
        return await endpoint.predict(request)
    if request.ids is None:
        request.ids = [uuid.uuid4().hex for _ in request.records]
    ids = request.ids
    candidate = rollout.candidate
    if rollout.shadow:
        request.arm = "champion"
        try:
            answer = await endpoint.predict(request)
        except ModelFailedError:
            _copy(endpoint, candidate, request.records, ids, "shadow")
            raise
        _copy(endpoint, candidate, request.records, ids, "shadow")
        return answer
    if to_candidate(rollout.id, _routing_key(request, rollout), rollout.percent):
        try:
            answer = await candidate.predict(
                PredictRequest(request.records, arm="candidate", started=request.started, ids=ids)
            )
        except (UnavailableError, ValidationError):
            # A model failure was logged by the candidate's endpoint; a signature stricter
            # than the champion's is not the client's problem either: the champion answers.
            request.arm = "fallback"
            return await endpoint.predict(request)
        if answer.failed:  # the candidate's own fallback answered: does the champion fail?
            _copy(endpoint, endpoint, request.records, ids, "probe")
        return answer
    request.arm = "champion"
    try:
        answer = await endpoint.predict(request)
    except ModelFailedError:
        _copy(endpoint, candidate, request.records, ids, "probe")
        raise
    if answer.failed:
        _copy(endpoint, candidate, request.records, ids, "probe")
    return answer


def _copy(
    endpoint: ModelEndpoint,
    target: ModelEndpoint,
    records: Sequence[dict[str, Any]],
    ids: Sequence[str],
    arm: str,
) -> None:
    """Ask ``target`` about the same input off the response path (dropped, and counted,
    when its queue is long); its endpoint logs the answer or the failure."""
    if target.batcher.depth >= _MAX_BACKLOG:
        endpoint.metrics.fallbacks.labels(endpoint.name, f"{arm}_dropped", "none").inc()
        return
    task = asyncio.create_task(_ask(target, PredictRequest(records, arm=arm, ids=ids)))
    _background.add(task)  # keep a reference until done
    task.add_done_callback(_background.discard)


async def _ask(target: ModelEndpoint, request: PredictRequest) -> None:
    try:
        await target.predict(request)
    except LivemodelError:
        pass  # a failure is logged by the endpoint; a rejection has nothing to compare
    except Exception:  # noqa: BLE001 - off the response path: log, never crash the loop
        _log.exception("asking model %r (arm %s) failed", target.name, request.arm)


def _routing_key(request: PredictRequest, rollout: ActiveRollout) -> str:
    if rollout.routing_key and request.records:
        value = request.records[0].get(rollout.routing_key)
        if value is not None:
            return str(value)
    return uuid.uuid4().hex
