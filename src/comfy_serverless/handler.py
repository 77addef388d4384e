"""RunPod glue, and nothing else: a RunPod job in, the core's result or error out, progress reports
to RunPod on the way, and ``refresh_worker`` when ComfyUI cannot be brought back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from runpod.http_client import AsyncClientSession
from runpod.serverless.modules.rp_http import send_result

from .delivery.storage import StorageConfig
from .errors import JobError
from .logs import job_id_var
from .settings import Settings
from .worker import Worker

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ProgressReporter:
    """Sends a job's progress to RunPod at most once per interval, newest state only.

    Reports are sent by one task per job that is awaited before the job returns, so no report can
    arrive after the result (the SDK's own ``progress_update`` fires from detached threads and can).
    Jobs shorter than one interval send none. Locally (no RunPod endpoint) reports are only logged."""

    def __init__(self, job: dict[str, Any], interval: float):
        self.job = job
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.enabled = bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))
        self.sent = 0
        self._latest: dict[str, Any] | None = None
        self._wakeup = asyncio.Event()
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def offer(self, progress: dict[str, Any]) -> None:
        """Called from the core's thread with each progress snapshot."""
        self.loop.call_soon_threadsafe(self._take, progress)

    def _take(self, progress: dict[str, Any]) -> None:
        self._latest = progress
        self._wakeup.set()
        if self._task is None:
            self._task = self.loop.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        session: AsyncClientSession | None = None
        try:
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - self._started)))
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                progress, self._latest = self._latest, None
                if progress is not None:
                    if self.enabled:
                        session = session or AsyncClientSession()
                        await send_result(session, {"status": "IN_PROGRESS", "output": progress}, self.job)
                    else:
                        log.debug("progress %s", progress)
                    self.sent += 1
                await asyncio.sleep(self.interval)
        finally:
            if session is not None:
                await session.close()

    async def stop(self) -> None:
        """Stop reporting; returns once no report is in flight."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def make_concurrency_modifier(settings: Settings) -> Callable[[int], int]:
    """RunPod asks this before taking jobs: how many this worker may hold at once (CONCURRENCY)."""

    def concurrency_modifier(current: int) -> int:
        return settings.concurrency

    return concurrency_modifier


def make_handler(worker: Worker) -> Handler:
    """The async handler RunPod calls for each job."""

    async def handler(job: dict[str, Any]) -> dict[str, Any]:
        job_id = str(job.get("id") or "local")
        job_id_var.set(job_id)
        reporter = ProgressReporter(job, worker.settings.progress_interval)
        try:
            # RunPod passes a caller's own bucket beside the input (s3Config); its secret stays in
            # the StorageConfig, never in a log or an error.
            s3_config = job.get("s3Config")
            storage = StorageConfig.from_runpod(s3_config, worker.settings) if s3_config is not None else None
            result = await worker.run_job(job_id, job.get("input"), reporter.offer, storage=storage)
        except JobError as exc:
            log.info("Job failed (%s): %s", exc.error_type, exc.message)
            failure = exc.to_dict()
            if exc.refresh_worker:
                failure["refresh_worker"] = True
            return failure
        finally:
            await reporter.stop()
        return result

    return handler
