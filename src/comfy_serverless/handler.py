"""RunPod glue, and nothing else: a RunPod job in, the core's result or error out, progress reports
to RunPod on the way, and ``refresh_worker`` when ComfyUI cannot be brought back."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from runpod.http_client import AsyncClientSession
from runpod.serverless.modules.rp_http import send_result

from .delivery.storage import StorageConfig
from .errors import JobError
from .logs import job_id_var
from .progress import ProgressThrottle
from .settings import Settings
from .worker import Worker

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RunPodProgress:
    """Sends a job's progress to RunPod's ``/status``, throttled by :class:`ProgressThrottle` (newest
    state only, at most once per interval, none for jobs shorter than one).

    Reports go out one at a time from one task that :meth:`stop` ends before the job returns, so no
    report can arrive after the result (the SDK's own ``progress_update`` fires from detached threads
    and can). Locally (no RunPod endpoint) reports are only logged."""

    def __init__(self, job: dict[str, Any], interval: float):
        self.job = job
        self.enabled = bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))
        self._session: AsyncClientSession | None = None
        self.throttle = ProgressThrottle(interval, self._send)

    def offer(self, progress: dict[str, Any]) -> None:
        """Called from the core's thread with each progress snapshot."""
        self.throttle.offer(progress)

    async def _send(self, progress: dict[str, Any]) -> None:
        if not self.enabled:
            log.debug("progress %s", progress)
            return
        self._session = self._session or AsyncClientSession()
        await send_result(self._session, {"status": "IN_PROGRESS", "output": progress}, self.job)

    async def stop(self) -> None:
        """Stop reporting; returns once no report is in flight."""
        try:
            await self.throttle.stop()
        finally:
            if self._session is not None:
                await self._session.close()


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
        reporter = RunPodProgress(job, worker.settings.progress_interval)
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
