"""Greedy micro-batching: concurrent requests share one model call.

While the model works on one batch, new requests queue; when it is free, it takes
everything queued (up to ``max_batch_size``) at once. An idle server therefore adds no
waiting to a lone request, and a busy one amortises the per-call cost of the model
(forests, boosted trees, pandas overhead) over many rows. The queue is bounded: past
``max_queue`` waiting items an ``UnavailableError`` is raised at once (back-pressure),
so memory stays bounded and clients get a clear 503 instead of a timeout.

The batch function runs in a thread of its own. If it exceeds ``timeout_s``, the items get
:class:`BatchTimeoutError` and later batches go to a fresh thread, so a hung model never hangs
the worker.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from livemodel.errors import UnavailableError

T = TypeVar("T")
R = TypeVar("R")


class BatchTimeoutError(UnavailableError):
    """The model did not answer a batch in time."""


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        process: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_batch_size: int,
        max_queue: int,
        timeout_s: float,
        name: str = "model",
    ) -> None:
        self._process = process
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.name = name
        self._queue: collections.deque[tuple[T, asyncio.Future[R]]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._executor = self._new_executor()
        self.batches = 0
        self.timeouts = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        if len(self._queue) >= self.max_queue:
            raise UnavailableError(
                f"model {self.name!r} is overloaded: {self.max_queue} requests queued"
            )
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()  # bound to this loop on first use
            self._worker = loop.create_task(self._run(self._wakeup), name=f"batcher-{self.name}")
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for _, future in self._queue:
            if not future.done():
                future.set_exception(UnavailableError(f"model {self.name!r} is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, wakeup: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = [
                self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))
            ]
            items = [item for item, _ in batch]
            self.batches += 1
            job = loop.run_in_executor(self._executor, self._process, items)
            try:
                results = await asyncio.wait_for(asyncio.shield(job), self.timeout_s)
            except TimeoutError:
                self.timeouts += 1
                # The stuck thread cannot be killed; leave it and move on with a new one.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                error = BatchTimeoutError(
                    f"model {self.name!r} did not answer within {self.timeout_s * 1000:.0f} ms"
                )
                _settle_all(batch, error)
                continue
            except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                _settle_all(batch, exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _new_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"model-{self.name}"
        )


def _settle_all(batch: Sequence[tuple[object, asyncio.Future[R]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
