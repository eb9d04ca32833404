"""Pacing of Discord writes per rate-limit bucket: never more than the bucket allows."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[Any]]


class Priority(IntEnum):
    URGENT = 0  # a message a person waits for: a new progress message, a notification
    FINAL = 1  # the last form of a finished deployment
    UPDATE = 2  # an intermediate progress edit


@dataclass
class _Pending:
    key: str
    job: Job
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


@dataclass
class _Bucket:
    queues: dict[Priority, OrderedDict[str, _Pending]] = field(
        default_factory=lambda: {priority: OrderedDict() for priority in Priority}
    )
    sent: deque[float] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None

    def pop(self) -> _Pending | None:
        for priority in Priority:
            queue = self.queues[priority]
            if queue:
                return queue.popitem(last=False)[1]
        return None

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.queues.values())


class Pacer:
    def __init__(self, *, limit: int = 5, window: float = 5.0, margin: float = 0.3) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a bucket needs limit >= 1 and window > 0")
        self.limit = limit
        # The margin absorbs a difference in clock rate between us and the server.
        self.window = window + margin
        self._buckets: dict[str, _Bucket] = {}
        self._pending_keys: dict[str, str] = {}  # key -> bucket
        self._running: set[str] = set()
        self._closed = False

    def submit(
        self, bucket: str, key: str, job: Job, *, priority: Priority = Priority.UPDATE
    ) -> asyncio.Future[Any]:
        """Queue `job` (one Discord request) in `bucket` (a channel id, or an interaction's
        bucket); await the future for its result."""
        if self._closed:
            raise RuntimeError("the pacer is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queued = self._buckets.setdefault(bucket, _Bucket())
        earlier: list[asyncio.Future[Any]] = []
        for queued_priority, queue in queued.queues.items():
            waiting = queue.get(key)
            if waiting is None:
                continue
            if queued_priority == priority:
                waiting.job = job  # keep its place in line, run the newest job
                waiting.futures.append(future)
                return future
            del queue[key]
            earlier = waiting.futures
            break
        queued.queues[priority][key] = _Pending(key, job, [*earlier, future])
        self._pending_keys[key] = bucket
        if queued.worker is None or queued.worker.done():
            queued.worker = asyncio.create_task(self._drain(queued))
        return future

    def is_busy(self, key: str) -> bool:
        """True while a job under `key` waits or runs."""
        return key in self._pending_keys or key in self._running

    async def _drain(self, bucket: _Bucket) -> None:
        while True:
            await self._wait_for_slot(bucket)
            pending = bucket.pop()
            if pending is None:
                return
            self._pending_keys.pop(pending.key, None)
            self._running.add(pending.key)
            try:
                result = await pending.job()
            except Exception as error:  # the submitter handles it; the bucket keeps going
                for future in pending.futures:
                    if not future.done():
                        future.set_exception(error)
                        # Nobody may be awaiting an intermediate edit: do not warn about it.
                        future.exception()
            else:
                for future in pending.futures:
                    if not future.done():
                        future.set_result(result)
            finally:
                # Counted from its answer, not its departure: Discord counted it on arrival,
                # which lies between the two however late a loaded machine sends it.
                bucket.sent.append(time.monotonic())
                self._running.discard(pending.key)

    async def _wait_for_slot(self, bucket: _Bucket) -> None:
        while True:
            now = time.monotonic()
            while bucket.sent and now - bucket.sent[0] >= self.window:
                bucket.sent.popleft()
            if len(bucket.sent) < self.limit:
                return
            # A rate limiter must wait for time to pass: this is pacing, not synchronisation.
            await asyncio.sleep(bucket.sent[0] + self.window - now)

    async def close(self) -> None:
        self._closed = True
        workers = [b.worker for b in self._buckets.values() if b.worker and not b.worker.done()]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for bucket in self._buckets.values():
            for queue in bucket.queues.values():
                for pending in queue.values():
                    for future in pending.futures:
                        future.cancel()
                queue.clear()
        self._pending_keys.clear()
