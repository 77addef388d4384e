"""The HTTP service's jobs: a bounded queue, ``CONCURRENCY`` job slots, RunPod's states and answer
shapes, cancel and purge, results kept for ``HTTP_RESULT_TTL`` and then removed, and the drain on
shutdown.

A job's input and result are exactly the RunPod handler's: ``input`` (and ``s3Config`` beside it) go to
:meth:`Worker.run_job` unchanged; a result becomes ``output``; a :class:`~..errors.JobError` becomes
RunPod's failed answer, the sentence in ``error`` and ``error_type`` and ``details`` in ``output``, as
RunPod makes it of the handler's error return. The worker's ``timeout`` error ends the job
``TIMED_OUT``. A finished job's answer is written to a file under ``WORKER_DATA_DIR/http-results``, so
large inline results do not stay in memory; the file goes when the job expires.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ..aio import in_thread, to_the_end
from ..delivery.storage import StorageConfig
from ..errors import JobError
from ..jobs.runner import ProgressReport
from ..logs import job_id_var
from ..progress import ProgressThrottle, Snapshot
from ..settings import Settings

log = logging.getLogger(__name__)

#: Progress snapshots kept per job for late or reconnecting event-stream readers.
EVENT_HISTORY = 10_000
#: Finished jobs whose run times estimate ``Retry-After`` when the queue is full.
RECENT_RUNS = 20


class Status(StrEnum):
    """RunPod's job states."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self not in (Status.IN_QUEUE, Status.IN_PROGRESS)


FINAL_STATES = tuple(status for status in Status if status.terminal)


class JobWorker(Protocol):
    """What the service needs of :class:`~..worker.Worker`."""

    async def run_job(
        self,
        job_id: str,
        raw_input: Any,
        on_progress: ProgressReport | None = None,
        *,
        storage: StorageConfig | None = None,
    ) -> dict[str, Any]: ...


class JobObserver(Protocol):
    """Told about queue waits and job ends (the metrics)."""

    def started(self, queue_wait_s: float) -> None: ...

    def finished(self, status: Status, execution_s: float | None) -> None: ...


@dataclass(frozen=True)
class JobRequest:
    """A job as RunPod's ``/run`` takes it: ``input``, and beside it ``s3Config`` (None when absent)
    and ``webhook``."""

    input: Any
    s3_config: Any = None
    has_s3_config: bool = False
    webhook: str | None = None


@dataclass
class ProgressEvent:
    seq: int
    snapshot: Snapshot


class QueueFull(Exception):
    """The queue holds HTTP_QUEUE_SIZE jobs; ``retry_after`` estimates when one will have left."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class NotAccepting(Exception):
    """The service is shutting down and takes no new jobs."""


@dataclass(eq=False)
class Job:
    id: str
    request: JobRequest
    submitted_at: float = field(default_factory=time.monotonic)
    status: Status = Status.IN_QUEUE
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    #: The newest progress snapshot published (``/status``'s ``output`` while the job runs).
    progress: Snapshot | None = None
    events: collections.deque[ProgressEvent] = field(
        default_factory=lambda: collections.deque(maxlen=EVENT_HISTORY)
    )
    #: How many snapshots were published, so event ids stay unique past the kept history.
    published: int = 0
    #: Progress events ``/stream`` already handed out (RunPod's stream returns what is new).
    stream_cursor: int = 0
    #: ``/stream`` handed out the final output.
    stream_done: bool = False
    error: str | None = None
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def changed(self) -> asyncio.Event:
        """Set at the job's next change (a new state or progress snapshot)."""
        return self._changed

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def publish(self, snapshot: Snapshot) -> None:
        """A throttled progress snapshot: the job's current progress, and one more event."""
        if self.terminal:
            return
        self.published += 1
        self.progress = snapshot
        self.events.append(ProgressEvent(self.published, snapshot))
        self.notify()

    def events_after(self, seq: int) -> list[ProgressEvent]:
        return [event for event in self.events if event.seq > seq]

    @property
    def result_event_id(self) -> int:
        """The id of the final event, after every progress event."""
        return self.published + 1

    def delay_ms(self, now: float | None = None) -> int:
        """RunPod's ``delayTime``: milliseconds from submission to start (or until now)."""
        until = self.started_at or self.finished_at or now or time.monotonic()
        return round((until - self.submitted_at) * 1000)

    def execution_ms(self) -> int:
        """RunPod's ``executionTime``: milliseconds from start to end (0 if it never started)."""
        if self.started_at is None:
            return 0
        return round(((self.finished_at or time.monotonic()) - self.started_at) * 1000)

    def live_answer(self) -> dict[str, Any]:
        """``/status`` of a job that has not ended."""
        answer: dict[str, Any] = {"id": self.id, "status": self.status.value}
        if self.status is Status.IN_PROGRESS:
            answer["delayTime"] = self.delay_ms()
            if self.progress is not None:
                answer["output"] = self.progress
        return answer


class ResultFiles:
    """Finished jobs' answers as JSON files, one per job."""

    def __init__(self, folder: Path):
        self.folder = folder

    def reset(self) -> None:
        """Start empty: answers of an earlier process belong to jobs nobody can ask about."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _write(self, job_id: str, answer: dict[str, Any]) -> bytes:
        data = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        partial = self.folder / f".{job_id}.partial"
        partial.write_bytes(data)
        partial.replace(self.path(job_id))
        return data

    async def write(self, job_id: str, answer: dict[str, Any]) -> bytes:
        """Write the answer (in a thread); returns its bytes."""
        return await in_thread(self._write, job_id, answer)

    async def read(self, job_id: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path(job_id).read_bytes)
        except FileNotFoundError:
            return None

    def remove(self, job_id: str) -> None:
        self.path(job_id).unlink(missing_ok=True)


Finished = Callable[[Job, bytes], None]


class JobService:
    """Queue, slots and registry of the HTTP service's jobs. Lives on the web server's event loop;
    the jobs themselves run on the worker's core loop."""

    def __init__(
        self,
        settings: Settings,
        worker: JobWorker,
        results: ResultFiles,
        *,
        observer: JobObserver | None = None,
        on_finished: Finished | None = None,
    ):
        self.settings = settings
        self.worker = worker
        self.results = results
        self.observer = observer
        self.on_finished = on_finished
        self.jobs: dict[str, Job] = {}
        self._waiting: dict[str, Job] = {}
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._recent_runs: collections.deque[float] = collections.deque(maxlen=RECENT_RUNS)
        self._drain: asyncio.Task[None] | None = None
        #: When the drain began (monotonic), None before.
        self.drain_started: float | None = None
        self.accepting = True
        self.running = 0
        #: Set when a job reported that ComfyUI cannot be brought back (RunPod's refresh_worker);
        #: cleared by the next job that completes.
        self.unhealthy: str | None = None
        self.counts: collections.Counter[Status] = collections.Counter()

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.results.reset)
        for slot in range(self.settings.concurrency):
            self._tasks.append(asyncio.create_task(self._slot(), name=f"job-slot-{slot}"))
        self._tasks.append(asyncio.create_task(self._expire(), name="job-expiry"))

    async def drain(self, grace: float) -> None:
        """Stop taking jobs, cancel the queued ones, give the running ones ``grace`` seconds to end,
        then cancel them. Safe to call more than once (later calls wait for the first)."""
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_jobs(grace))
        await asyncio.shield(self._drain)

    async def _drain_jobs(self, grace: float) -> None:
        self.accepting = False
        self.drain_started = time.monotonic()
        waiting = list(self._waiting.values())
        running = [job for job in self.jobs.values() if job.status is Status.IN_PROGRESS]
        log.info(
            "Shutting down: no new jobs; %d queued job(s) cancelled, %d running job(s) get up to %g s",
            len(waiting),
            len(running),
            grace,
        )
        for job in waiting:
            self._waiting.pop(job.id, None)  # no slot may start it meanwhile
        for job in waiting:
            await self.cancel(job, "cancelled: the service is shutting down")
        tasks = {job.task for job in running if job.task is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for job in running:
                if job.task in late:
                    log.warning("Job %s did not finish within the shutdown grace; cancelling it", job.id)
                    await self.cancel(
                        job,
                        f"cancelled: the service shut down before the job finished "
                        f"(HTTP_SHUTDOWN_GRACE = {grace:g} s)",
                    )

    async def cancel_all(self, reason: str) -> None:
        """Cancel every job that has not ended, queued or running."""
        for job in list(self.jobs.values()):
            if not job.terminal:
                await self.cancel(job, reason)

    async def close(self) -> None:
        """Cancel everything still running (after :meth:`drain`, nothing is)."""
        self.accepting = False
        await self.cancel_all("cancelled: the service stopped")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # --- jobs ----------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> Job:
        """Queue a job; raises NotAccepting while shutting down, QueueFull past HTTP_QUEUE_SIZE."""
        if not self.accepting:
            raise NotAccepting("the service is shutting down and takes no new jobs")
        if len(self._waiting) >= self.settings.http_queue_size:
            retry_after = self.retry_after()
            raise QueueFull(
                f"the queue is full ({len(self._waiting)} jobs waiting, HTTP_QUEUE_SIZE = "
                f"{self.settings.http_queue_size}); try again in {retry_after} s",
                retry_after,
            )
        job = Job(id=str(uuid.uuid4()), request=request)
        self.jobs[job.id] = job
        self._waiting[job.id] = job
        self._queue.put_nowait(job)
        log.info("Job %s queued (%d waiting)", job.id, len(self._waiting))
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    def retry_after(self) -> int:
        """Seconds until a queue place is likely free: the queue's share of the recent run times."""
        average = sum(self._recent_runs) / len(self._recent_runs) if self._recent_runs else 10.0
        ahead = len(self._waiting) + self.running
        return max(1, min(600, math.ceil(average * ahead / self.settings.concurrency)))

    async def wait(self, job: Job, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job to end; whether it did."""
        deadline = time.monotonic() + seconds
        while True:
            changed = job.changed
            if job.terminal:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                return job.terminal

    async def cancel(self, job: Job, reason: str = "cancelled by POST /cancel") -> None:
        """Cancel a queued or running job (a running one is interrupted in ComfyUI); returns once it
        has ended. A finished job stays as it is."""
        if job.terminal:
            return
        if job.status is Status.IN_QUEUE:
            self._waiting.pop(job.id, None)  # a slot that finds it gone skips it
            log.info("Job %s cancelled while queued", job.id)
            await self._finish(job, Status.CANCELLED, {"error": reason})
            return
        job.cancel_reason = job.cancel_reason or reason
        if job.task is not None:
            job.task.cancel()
            await asyncio.wait({job.task})
        if not job.terminal:  # cancelled before its first step: nothing ran
            await self._finish(job, Status.CANCELLED, {"error": job.cancel_reason})

    async def purge(self) -> int:
        """Cancel every queued job (RunPod's purge-queue; running jobs go on); how many."""
        waiting = list(self._waiting.values())
        self._waiting.clear()  # at once: no slot may start one of them meanwhile
        for job in waiting:
            await self.cancel(job, "cancelled by POST /purge-queue")
        return len(waiting)

    async def answer(self, job: Job) -> bytes | None:
        """A finished job's answer, as stored (None once it expired)."""
        return await self.results.read(job.id)

    # --- running -------------------------------------------------------------------------------

    async def _slot(self) -> None:
        while True:
            job = await self._queue.get()
            if self._waiting.pop(job.id, None) is None:
                continue  # cancelled or purged while queued
            job.status = Status.IN_PROGRESS
            job.started_at = time.monotonic()
            self.running += 1
            job.task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            job.notify()
            if self.observer is not None:
                self.observer.started(job.started_at - job.submitted_at)
            try:
                await asyncio.wait({job.task})
            finally:
                self.running -= 1
            if not job.terminal:
                # Cancelled before it took its first step, or a failure of the service itself.
                error = None if job.task.cancelled() else job.task.exception()
                if error is not None:
                    log.error("Job %s: the service failed: %r", job.id, error)
                await to_the_end(
                    self._finish(
                        job,
                        Status.CANCELLED if error is None else Status.FAILED,
                        {"error": job.cancel_reason or "cancelled"}
                        if error is None
                        else {"error": f"The HTTP service failed: {type(error).__name__}: {error}"},
                    )
                )

    async def _execute(self, job: Job) -> None:
        job_id_var.set(job.id)
        throttle = ProgressThrottle(self.settings.progress_interval, job.publish)
        status: Status
        body: dict[str, Any]
        try:
            request = job.request
            try:
                storage = (
                    StorageConfig.from_runpod(request.s3_config, self.settings)
                    if request.has_s3_config
                    else None
                )
                result = await self.worker.run_job(job.id, request.input, throttle.offer, storage=storage)
            finally:
                await throttle.stop()
        except JobError as exc:
            failure = exc.to_dict()
            status = Status.TIMED_OUT if exc.error_type == "timeout" else Status.FAILED
            body = {"error": failure.pop("error"), "output": failure}
            log.info("Job %s failed (%s): %s", job.id, exc.error_type, exc.message)
            if exc.refresh_worker:
                self.unhealthy = exc.message
        except asyncio.CancelledError:
            status, body = Status.CANCELLED, {"error": job.cancel_reason or "cancelled"}
            log.info("Job %s cancelled: %s", job.id, body["error"])
        except Exception as exc:  # a fault of the service itself: the job still gets an answer
            log.exception("Job %s: unexpected failure", job.id)
            status = Status.FAILED
            body = {"error": f"The HTTP service failed unexpectedly: {type(exc).__name__}: {exc}"}
        else:
            status, body = Status.COMPLETED, {"output": result}
            self.unhealthy = None
        await to_the_end(self._finish(job, status, body))

    async def _finish(self, job: Job, status: Status, body: dict[str, Any]) -> None:
        if job.terminal:
            return
        job.finished_at = time.monotonic()
        answer: dict[str, Any] = {
            "id": job.id,
            "status": status.value,
            **body,
            "delayTime": job.delay_ms(),
            "executionTime": job.execution_ms(),
        }
        data = await self.results.write(job.id, answer)
        job.status = status
        job.error = body.get("error")
        job.progress = None
        job.expires_at = time.monotonic() + self.settings.http_result_ttl
        job.notify()
        self.counts[status] += 1
        execution_s = job.finished_at - job.started_at if job.started_at is not None else None
        if execution_s is not None and status is Status.COMPLETED:
            self._recent_runs.append(execution_s)
        if self.observer is not None:
            self.observer.finished(status, execution_s)
        log.info("Job %s ended %s after %d ms", job.id, status.value, answer["executionTime"])
        if self.on_finished is not None:
            self.on_finished(job, data)

    def _remove_answers(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.results.remove(job_id)

    async def _expire(self) -> None:
        """Forget finished jobs (and remove their answers) HTTP_RESULT_TTL seconds after their end."""
        ttl = self.settings.http_result_ttl
        interval = min(30.0, max(0.05, ttl / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            expired = [
                job for job in self.jobs.values() if job.expires_at is not None and job.expires_at <= now
            ]
            for job in expired:
                del self.jobs[job.id]
            if expired:
                await asyncio.to_thread(self._remove_answers, [job.id for job in expired])
                log.debug("Forgot %d finished job(s) after HTTP_RESULT_TTL", len(expired))
