"""How the worker takes jobs from RunPod's queue: the SDK's own job loop, with its naps replaced by
wake-ups.

The runpod SDK's ``JobScaler`` polls on a timer in two places of the job path: ``get_jobs`` sleeps a
whole second whenever every concurrency slot is busy before it looks again, and ``run_jobs`` checks its
queue of fetched jobs every 0.1 s. A worker draining a backlog therefore idles up to 1.1 s after each
job before the next one starts: with jobs of a few seconds that is a large share of the GPU's time, and
short jobs are capped near one per second per slot (``benchmarks/throughput.py``). Here both loops wait
for the event itself (a slot freed, a job fetched, the worker told to stop) and act at once. Fetching,
stop signals, progress and results stay the SDK's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from runpod.serverless.modules import rp_scale

log = logging.getLogger(__name__)

_SDK_SCALER: Any = rp_scale.JobScaler
_BUILDS_ON = ("set_scale", "handle_job", "current_occupancy", "is_alive", "get_jobs", "run_jobs")


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of these finishes; cancel the rest."""
    waiters = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


class PromptJobScaler(_SDK_SCALER):  # type: ignore[misc]  # the SDK is untyped
    """``JobScaler`` that asks for the next job as soon as a slot frees and starts it as soon as it is
    fetched."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self._slot_freed = asyncio.Event()
        # Size the queue for the configured concurrency now: the SDK would otherwise build a new queue
        # at its first set_scale, under a run_jobs already waiting on the old one.
        modifier = config.get("concurrency_modifier")
        if modifier is not None:
            concurrency = max(1, int(modifier(1)))
            self.current_concurrency = concurrency
            self.jobs_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=concurrency)

    def _stopping(self) -> Awaitable[Any]:
        shutdown = getattr(self, "_shutdown_event", None)
        if isinstance(shutdown, asyncio.Event):
            return shutdown.wait()
        return asyncio.sleep(1.0)  # an SDK without the event: look at is_alive() each second

    async def set_scale(self) -> None:
        """Called by ``get_jobs`` before each request for jobs: returns once a slot is free, so the
        SDK's one-second nap for a full worker never starts."""
        await super().set_scale()
        while self.is_alive() and self.current_occupancy() >= self.current_concurrency:
            self._slot_freed.clear()
            if self.current_occupancy() < self.current_concurrency:
                break  # a job ended between the check and the clear
            await _first(self._slot_freed.wait(), self._stopping())

    async def run_jobs(self, session: Any) -> None:
        """Start each fetched job the moment it is queued, up to the concurrency; on shutdown, let
        the running ones end."""
        running: set[asyncio.Task[Any]] = set()

        def start(job: dict[str, Any]) -> None:
            task = asyncio.create_task(self.handle_job(session, job))
            running.add(task)
            self.jobs_tasks[job["id"]] = task

        while self.is_alive() or not self.jobs_queue.empty():
            while len(running) < self.current_concurrency and not self.jobs_queue.empty():
                start(self.jobs_queue.get_nowait())
            stopping = asyncio.ensure_future(self._stopping())
            waiters: set[asyncio.Future[Any]] = {stopping, *running}
            getter = None
            if len(running) < self.current_concurrency:
                getter = asyncio.ensure_future(self.jobs_queue.get())
                waiters.add(getter)
            try:
                # The timeout only matters if the SDK swapped its queue for a new one (a change of
                # concurrency): the next round then waits on the new queue.
                await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (stopping, getter):
                    if waiter is not None and not waiter.done():
                        waiter.cancel()  # a cancelled get() leaves its item in the queue
                        with contextlib.suppress(asyncio.CancelledError):
                            await waiter
            if getter is not None and getter.done() and not getter.cancelled():
                start(getter.result())
            running = {task for task in running if not task.done()}
        results = await asyncio.gather(*running, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("A job failed while the worker stopped: %s", result)

    async def handle_job(self, session: Any, job: dict[str, Any]) -> None:
        try:
            await super().handle_job(session, job)
        finally:
            self._slot_freed.set()


def use_prompt_intake() -> bool:
    """Make the SDK build :class:`PromptJobScaler` for its worker loop. Returns False (and leaves the
    SDK as it is) when this SDK version's scaler lacks the methods it builds on."""
    if not all(hasattr(_SDK_SCALER, name) for name in _BUILDS_ON):
        log.warning("This runpod SDK's JobScaler is not the one expected; keeping its own job loop")
        return False
    rp_scale.JobScaler = PromptJobScaler
    return True
