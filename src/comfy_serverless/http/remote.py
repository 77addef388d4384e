"""Jobs that run on another machine: the HTTP service keeps its queue, states, routes and webhooks, and
hands each job to a remote worker core (Modal's autoscaled GPU containers, ``deploy/modal_app.py``).

Two halves, one per side:

- :class:`RemoteWorker`, on the service's side, is what :class:`~.jobs.JobService` runs jobs with. It
  starts the job remotely, forwards the progress that comes back, returns the result or raises the
  worker's own error (same ``error_type``, message and details), and cancels the remote call when the
  job is cancelled.
- :func:`run_remote`, on the GPU side, runs the job on that machine's worker core and turns its end
  into a plain answer that crosses the wire (``{"output": ...}`` or ``{"error": {...}}``), sending
  progress on the way at most once per interval.

Where the job runs and how progress travels (a Modal function call and a Modal queue) is given as
callables, so this module knows nothing of Modal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from ..delivery.storage import StorageConfig
from ..errors import JobError
from ..jobs.runner import ProgressReport
from ..progress import ProgressThrottle
from .jobs import JobWorker

log = logging.getLogger(__name__)


class RemoteCall(Protocol):
    """One job running remotely."""

    async def result(self) -> dict[str, Any]:
        """The answer of :func:`run_remote`, once the job has ended."""
        ...

    async def cancel(self) -> None: ...


#: Start a job remotely: (job id, raw input, the job's own storage or None) -> the running call.
StartRemote = Callable[[str, Any, StorageConfig | None], Awaitable[RemoteCall]]
#: The progress snapshots a job sends, as they arrive (ends when the consumer stops reading).
RemoteProgress = Callable[[str], AsyncIterator[dict[str, Any]]]


class RemoteJobError(JobError):
    """The remote worker's error, with its own ``error_type``."""

    def __init__(self, error: dict[str, Any], *, refresh_worker: bool = False):
        super().__init__(
            str(error.get("error") or "the remote worker failed without saying why"),
            details=error.get("details") if isinstance(error.get("details"), dict) else {},
            refresh_worker=refresh_worker,
        )
        self.error_type = str(error.get("error_type") or JobError.error_type)


class RemoteWorker:
    """A :class:`~.jobs.JobWorker` whose jobs run elsewhere. Its readiness is the remote side's: GPU
    containers start on demand, so the service itself is always ready to queue."""

    supervisor = None

    def __init__(self, start: StartRemote, progress: RemoteProgress):
        self._start = start
        self._progress = progress

    async def run_job(
        self,
        job_id: str,
        raw_input: Any,
        on_progress: ProgressReport | None = None,
        *,
        storage: StorageConfig | None = None,
    ) -> dict[str, Any]:
        call = await self._start(job_id, raw_input, storage)
        forwarding = (
            asyncio.create_task(self._forward(job_id, on_progress)) if on_progress is not None else None
        )
        try:
            answer = await call.result()
        except asyncio.CancelledError:
            # Stop the remote job too (its prompt is interrupted there), even while this task unwinds.
            with contextlib.suppress(Exception):
                await asyncio.shield(call.cancel())
            raise
        except JobError:
            raise
        except Exception as exc:
            raise JobError(
                f"The remote worker failed: {type(exc).__name__}: {exc}",
                details={"exception_type": type(exc).__name__},
            ) from exc
        finally:
            if forwarding is not None:
                forwarding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forwarding
        error = answer.get("error")
        if isinstance(error, dict):
            raise RemoteJobError(error, refresh_worker=bool(answer.get("refresh_worker")))
        output = answer.get("output")
        if not isinstance(output, dict):
            raise JobError("The remote worker answered without an output or an error")
        return output

    async def _forward(self, job_id: str, on_progress: ProgressReport) -> None:
        try:
            async for snapshot in self._progress(job_id):
                on_progress(snapshot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # progress informs; losing it must not fail the job
            log.warning("Progress of job %s stopped arriving: %s", job_id, exc)


async def run_remote(
    worker: JobWorker,
    job_id: str,
    raw_input: Any,
    storage: StorageConfig | None,
    send_progress: Callable[[dict[str, Any]], Awaitable[None]],
    interval: float,
) -> dict[str, Any]:
    """Run one job on this machine's worker core; the answer :class:`RemoteWorker` reads. Progress goes
    out through ``send_progress``, newest snapshot only, at most once per ``interval`` seconds, in
    order."""

    async def send(snapshot: dict[str, Any]) -> None:
        try:
            await send_progress(snapshot)
        except Exception as exc:  # progress informs; losing it must not fail the job
            log.warning("Could not send progress of job %s: %s", job_id, exc)

    throttle = ProgressThrottle(interval, send)
    try:
        try:
            output = await worker.run_job(job_id, raw_input, throttle.offer, storage=storage)
        finally:
            await throttle.stop()
    except JobError as exc:
        answer: dict[str, Any] = {"error": exc.to_dict()}
        if exc.refresh_worker:
            answer["refresh_worker"] = True
        return answer
    return {"output": output}
