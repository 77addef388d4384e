"""A job's progress on its way out of the worker: the newest snapshot at most once per
``PROGRESS_INTERVAL`` (none for jobs shorter than that, none after the job ended). The RunPod handler
sends them to RunPod's ``/status``, the HTTP service shows them in its routes and event streams, and a
remote GPU worker sends them back to the service: all through :class:`ProgressThrottle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

Snapshot = dict[str, Any]
#: Where a snapshot goes: a plain call, or a coroutine (a network send) awaited before the next one.
Publish = Callable[[Snapshot], Awaitable[None] | None]


class ProgressThrottle:
    """Publishes the newest snapshot at most once per ``interval`` seconds, from the event loop it was
    made on, one at a time and in order (an awaitable ``publish`` is awaited before the next).
    :meth:`offer` may be called from any thread."""

    def __init__(self, interval: float, publish: Publish):
        self.interval = interval
        self.publish = publish
        self.loop = asyncio.get_running_loop()
        self._latest: Snapshot | None = None
        self._wakeup = asyncio.Event()
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def offer(self, snapshot: Snapshot) -> None:
        """Take a snapshot from any thread (the core's). Never raises: progress must not break a job."""
        with contextlib.suppress(RuntimeError):  # the loop already closed (process exit)
            self.loop.call_soon_threadsafe(self._take, snapshot)

    def _take(self, snapshot: Snapshot) -> None:
        if self._stopped:
            return
        self._latest = snapshot
        self._wakeup.set()
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - self._started)))
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            snapshot, self._latest = self._latest, None
            if snapshot is not None:
                sent = self.publish(snapshot)
                if sent is not None:
                    await sent
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Publish nothing more; returns once nothing is being published."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
