"""Progress on its way out: the same throttling the RunPod handler applies, and server-sent events.

A job's progress snapshots come from the core's thread. :class:`ProgressThrottle` passes on the newest
one at most once per ``PROGRESS_INTERVAL`` (none for jobs shorter than that, none after the job ended),
exactly what the RunPod handler sends to RunPod's ``/status``; the HTTP service shows the same
snapshots in ``/status``, ``/stream`` and ``/jobs/{id}/events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

Snapshot = dict[str, Any]

#: Sent on an idle event stream so proxies keep the connection open.
KEEP_ALIVE = b": keep-alive\n\n"


class ProgressThrottle:
    """Publishes the newest snapshot at most once per ``interval`` seconds, from the event loop it was
    made on. :meth:`offer` may be called from any thread."""

    def __init__(self, interval: float, publish: Callable[[Snapshot], None]):
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
        with contextlib.suppress(RuntimeError):  # the service's loop already closed (process exit)
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
                self.publish(snapshot)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Publish nothing more; returns once nothing is being published."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def sse_event(event_id: int, event: str, data: str) -> bytes:
    """One server-sent event. ``data`` is compact JSON: one line, as the format needs."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def last_event_id(header: str | None) -> int:
    """The ``Last-Event-ID`` a reconnecting client sends (0 when absent or not ours)."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0
