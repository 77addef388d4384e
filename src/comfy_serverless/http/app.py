"""The HTTP service as a FastAPI application: :func:`create_app` is what ``comfy-serverless serve`` runs
under uvicorn and what the Modal app serves.

Routes (all but ``/ready`` and the docs need HTTP_TOKEN as a bearer token when it is set):

- RunPod's: ``POST /run``, ``POST /runsync?wait=MS``, ``GET|POST /status/{id}``, ``GET|POST
  /stream/{id}``, ``POST /cancel/{id}``, ``POST /purge-queue``, ``GET /health``, with RunPod's answer
  shapes and states, so RunPod callers and :mod:`comfy_serverless.client` work unchanged;
- ``GET /jobs/{id}/events``: server-sent events, each progress snapshot and then the result;
- ``GET /templates``, ``GET /templates/{name}`` (its JSON Schema), ``GET /ready``, ``GET /metrics``;
- ``/docs`` and ``/openapi.json``.

The application owns the worker core (ComfyUI included) from its start to its end unless one is handed
in; stopping it drains the jobs first (see :meth:`JobService.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import InvalidInputError
from ..settings import Settings
from ..worker import Worker
from ..workflows.templates import TemplateCatalog, describe
from .auth import BearerAuth, ServiceError
from .events import KEEP_ALIVE, last_event_id, sse_event
from .jobs import Job, JobRequest, JobService, NotAccepting, QueueFull, ResultFiles, Status
from .metrics import ServiceMetrics
from .remote import RemoteWorker
from .webhooks import WebhookSender

log = logging.getLogger(__name__)

#: RunPod's ``/runsync`` waits 90 s by default and at most 300 s (``?wait=`` in milliseconds).
RUNSYNC_DEFAULT_WAIT_MS = 90_000
RUNSYNC_MAX_WAIT_MS = 300_000
#: Seconds between keep-alive comments on an idle event stream.
KEEP_ALIVE_S = 15.0

DESCRIPTION = """\
ComfyUI workflows as an HTTP service: the comfy-serverless worker behind RunPod-compatible routes.
A job's `input` is exactly what the RunPod worker takes (README, "API"); its answers have RunPod's
shapes and states (`IN_QUEUE`, `IN_PROGRESS`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMED_OUT`)."""


class JobBody(BaseModel):
    """A job as RunPod's ``/run`` takes it."""

    model_config = ConfigDict(extra="allow")

    input: Any = Field(description="The job input, exactly as the RunPod worker takes it.")
    webhook: str | None = Field(
        default=None,
        description="POST the finished job's answer here (signed with WEBHOOK_SECRET; README, Webhooks).",
    )
    s3Config: Any = Field(  # RunPod's own name
        default=None,
        description="The job's own bucket: {accessId, accessSecret, bucketName, endpointUrl}.",
    )


def start_worker(settings: Settings) -> Worker:
    """The worker core, started: ComfyUI's boot begins at once."""
    worker = Worker(settings)
    worker.start()
    return worker


class ServiceRuntime:
    """Everything that lives from the application's start to its end."""

    def __init__(self, settings: Settings, worker: Worker | RemoteWorker | None):
        self.settings = settings
        self.worker = worker
        self._owns_worker = worker is None
        self._service: JobService | None = None
        self._metrics: ServiceMetrics | None = None
        self._webhooks: WebhookSender | None = None
        self._stopped = False
        #: The templates, read here when the jobs run elsewhere (else the worker core's own).
        self.remote_templates: TemplateCatalog | None = None

    @property
    def started_service(self) -> JobService | None:
        """The job service once the application has started."""
        return self._service

    @property
    def service(self) -> JobService:
        if self._service is None:
            raise ServiceError(503, "the service is starting")
        return self._service

    @property
    def metrics(self) -> ServiceMetrics:
        assert self._metrics is not None
        return self._metrics

    @property
    def webhooks(self) -> WebhookSender:
        assert self._webhooks is not None
        return self._webhooks

    @property
    def comfyui_ready(self) -> bool:
        if isinstance(self.worker, RemoteWorker):
            return True  # ComfyUI runs on the remote side, started there on demand
        supervisor = self.worker.supervisor if self.worker is not None else None
        return supervisor is not None and supervisor.is_ready

    @property
    def comfyui_restarts(self) -> int:
        supervisor = self.worker.supervisor if self.worker is not None else None
        return max(0, supervisor.boots - 1) if supervisor is not None else 0

    @property
    def comfyui_state(self) -> str:
        """Why ComfyUI is not ready, in words."""
        supervisor = self.worker.supervisor if self.worker is not None else None
        if supervisor is not None and supervisor.failed_boots:
            return (
                f"ComfyUI failed to start ({supervisor.failed_boots} time(s) in a row); the next job "
                "tries again"
            )
        return "ComfyUI is starting"

    async def start(self) -> None:
        if self.worker is None:
            self.worker = await asyncio.to_thread(start_worker, self.settings)
        worker = self.worker
        if isinstance(worker, RemoteWorker):
            self.remote_templates = await asyncio.to_thread(
                TemplateCatalog.load, [self.settings.builtin_templates_dir, self.settings.templates_dir]
            )
        self._metrics = ServiceMetrics(
            queue_depth=lambda: self._service.queue_depth if self._service else 0,
            running=lambda: self._service.running if self._service else 0,
            comfyui_ready=lambda: self.comfyui_ready,
            comfyui_restarts=lambda: self.comfyui_restarts,
        )
        self._webhooks = WebhookSender(self.settings, on_result=self._metrics.webhook)
        if not self._webhooks.signed:
            log.warning("WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        service = JobService(
            self.settings,
            worker,
            ResultFiles(self.settings.worker_data_dir / "http-results"),
            observer=self._metrics,
            on_finished=self._finished,
        )
        await service.start()
        self._service = service
        log.info(
            "HTTP service ready for jobs: %d slot(s), queue of %d",
            self.settings.concurrency,
            self.settings.http_queue_size,
        )

    def _finished(self, job: Job, answer: bytes) -> None:
        if job.request.webhook:
            self.webhooks.deliver(job.id, job.request.webhook, answer)

    async def stop(self) -> None:
        """Drain the jobs (HTTP_SHUTDOWN_GRACE), let webhooks finish, stop ComfyUI."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.http_shutdown_grace
        try:
            if self._service is not None:
                await self._service.drain(grace)
            if self._webhooks is not None:
                # What is left of the grace (counted from the drain's start), and at least 2 s.
                began = (self._service.drain_started if self._service else None) or time.monotonic()
                await self._webhooks.wait(max(2.0, began + grace - time.monotonic()))
                await self._webhooks.close()
            if self._service is not None:
                await self._service.close()
        finally:
            if self._owns_worker and isinstance(self.worker, Worker):
                await asyncio.to_thread(self.worker.stop)
                log.info("ComfyUI and the worker core stopped")


def _not_found(job_id: str, settings: Settings) -> ServiceError:
    return ServiceError(
        404,
        f"job {job_id} is unknown: a wrong id, or it ended more than HTTP_RESULT_TTL "
        f"({settings.http_result_ttl:g} s) ago",
    )


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
        problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "invalid request: " + "; ".join(problems)


def create_app(settings: Settings | None = None, *, worker: Worker | RemoteWorker | None = None) -> FastAPI:
    """The HTTP service. Without ``worker`` it starts its own (and ComfyUI) when the application starts
    and stops it when the application stops; a :class:`~.remote.RemoteWorker` runs the jobs elsewhere
    (the Modal app's GPU containers)."""
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="comfy-serverless",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    auth = BearerAuth(settings)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, status_code=400)

    open_routes = APIRouter(tags=["Service"])
    jobs = APIRouter(dependencies=[Depends(auth)], tags=["Jobs (RunPod-compatible)"])
    service_routes = APIRouter(dependencies=[Depends(auth)], tags=["Service"])

    # --- jobs ----------------------------------------------------------------------------------

    async def submit(body: JobBody) -> Job:
        if body.webhook is not None:
            try:
                await runtime.webhooks.check(body.webhook)
            except InvalidInputError as exc:
                raise ServiceError(400, exc.message) from None
        service = runtime.service
        try:
            job = service.submit(
                JobRequest(
                    input=body.input,
                    s3_config=body.s3Config,
                    has_s3_config="s3Config" in body.model_fields_set,
                    webhook=body.webhook,
                )
            )
        except QueueFull as exc:
            runtime.metrics.rejected.labels("queue_full").inc()
            raise ServiceError(429, exc.message, {"Retry-After": str(exc.retry_after)}) from None
        except NotAccepting as exc:
            runtime.metrics.rejected.labels("shutting_down").inc()
            raise ServiceError(503, str(exc), {"Retry-After": "5"}) from None
        runtime.metrics.submitted.inc()
        return job

    def job_of(job_id: str) -> Job:
        job = runtime.service.get(job_id)
        if job is None:
            raise _not_found(job_id, settings)
        return job

    async def answer(job: Job) -> Response:
        if not job.terminal:
            return JSONResponse(job.live_answer())
        data = await runtime.service.answer(job)
        if data is None:
            raise _not_found(job.id, settings)
        return Response(data, media_type="application/json")

    @jobs.post("/run", summary="Queue a job")
    async def run(body: Annotated[JobBody, Body()]) -> dict[str, str]:
        """Queue a job; answers its id at once (`{"id", "status": "IN_QUEUE"}`). Past HTTP_QUEUE_SIZE
        waiting jobs: 429 with Retry-After; while shutting down: 503."""
        job = await submit(body)
        return {"id": job.id, "status": job.status.value}

    @jobs.post("/runsync", summary="Run a job and wait for its answer")
    async def runsync(
        body: Annotated[JobBody, Body()],
        wait: Annotated[
            int,
            Query(ge=0, le=RUNSYNC_MAX_WAIT_MS, description="Milliseconds to wait for the job to end."),
        ] = RUNSYNC_DEFAULT_WAIT_MS,
    ) -> Response:
        """Queue a job and wait up to `wait` milliseconds: the finished job's answer, or, if it has not
        ended by then, its current state (`{"id", "status": "IN_QUEUE" | "IN_PROGRESS", ...}`) to follow
        with /status, as RunPod answers."""
        job = await submit(body)
        await runtime.service.wait(job, wait / 1000)
        return await answer(job)

    @jobs.get("/status/{job_id}", summary="A job's state and answer", operation_id="status")
    @jobs.post("/status/{job_id}", summary="A job's state and answer (POST, as RunPod's local server)")
    async def status(job_id: str) -> Response:
        """RunPod's `/status`: `IN_QUEUE`; `IN_PROGRESS` with the newest progress snapshot as `output`;
        or the finished answer: `output` (COMPLETED), or `error` with `output.error_type` and
        `output.details` (FAILED, TIMED_OUT), with `delayTime` and `executionTime` in ms."""
        return await answer(job_of(job_id))

    @jobs.get("/stream/{job_id}", summary="What is new since the last call", operation_id="stream")
    @jobs.post("/stream/{job_id}", summary="What is new since the last call (POST)")
    async def stream(job_id: str) -> dict[str, Any]:
        """RunPod's `/stream`: the progress snapshots published since the previous call, each as
        `{"output": snapshot}`, and once the job ended its final `output` (or `error`)."""
        job = job_of(job_id)
        items: list[dict[str, Any]] = [{"output": e.snapshot} for e in job.events_after(job.stream_cursor)]
        if job.events:
            job.stream_cursor = max(job.stream_cursor, job.events[-1].seq)
        reply: dict[str, Any] = {"id": job.id, "status": job.status.value}
        if job.terminal:
            data = await runtime.service.answer(job)
            if data is None:
                raise _not_found(job.id, settings)
            final = json.loads(data)
            if not job.stream_done and "output" in final and job.status is Status.COMPLETED:
                items.append({"output": final["output"]})
            job.stream_done = True
            for key in ("error", "delayTime", "executionTime"):
                if key in final:
                    reply[key] = final[key]
            if job.status is not Status.COMPLETED and "output" in final:
                reply["output"] = final["output"]
        reply["stream"] = items
        return reply

    @jobs.post("/cancel/{job_id}", summary="Cancel a job")
    async def cancel(job_id: str) -> dict[str, str]:
        """Cancel a queued or running job; a running one is interrupted in ComfyUI. Answers the job's
        state afterwards (a job that had already ended keeps its state)."""
        job = job_of(job_id)
        await runtime.service.cancel(job)
        return {"id": job.id, "status": job.status.value}

    @jobs.post("/purge-queue", summary="Cancel every queued job")
    async def purge_queue() -> dict[str, Any]:
        """Cancel every job still waiting (running jobs go on), as RunPod's `/purge-queue`."""
        removed = await runtime.service.purge()
        return {"removed": removed, "status": "completed"}

    @jobs.get("/jobs/{job_id}/events", summary="Progress and result as server-sent events")
    async def events(
        job_id: str,
        request: Request,
        last_event: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """`text/event-stream`: an `event: progress` for each progress snapshot (the same ones /status
        shows), then one `event: result` with the job's final answer, then the stream ends. Events carry
        ids; a client that reconnects with `Last-Event-ID` gets only what it missed."""
        job = job_of(job_id)
        start = last_event_id(last_event)
        return StreamingResponse(
            _event_stream(job, start, runtime),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # --- service -------------------------------------------------------------------------------

    @service_routes.get("/health", summary="Job and worker counts, as RunPod's /health")
    async def health() -> dict[str, Any]:
        service = runtime.service
        counts = service.counts
        workers = dict.fromkeys(("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0)
        if service.unhealthy is not None:
            workers["unhealthy"] = 1
        elif not runtime.comfyui_ready:
            workers["initializing"] = 1
        elif service.running:
            workers["running"] = 1
        else:
            workers["idle"] = 1
        return {
            "jobs": {
                "completed": counts[Status.COMPLETED],
                "failed": counts[Status.FAILED] + counts[Status.TIMED_OUT],
                "cancelled": counts[Status.CANCELLED],
                "inProgress": service.running,
                "inQueue": service.queue_depth,
                "retried": 0,
            },
            "workers": workers,
            "comfyui": {"ready": runtime.comfyui_ready, "restarts": runtime.comfyui_restarts},
            "acceptingJobs": service.accepting,
        }

    @open_routes.get("/ready", summary="Whether the service takes and runs jobs now")
    async def ready() -> JSONResponse:
        """200 `{"ready": true}` once ComfyUI is up; 503 with the reason while it starts, after it
        could not be brought back, or while the service shuts down. Needs no token."""
        reason = None
        service = runtime.started_service
        if service is None:
            reason = "the service is starting"
        elif not service.accepting:
            reason = "the service is shutting down"
        elif service.unhealthy is not None:
            reason = service.unhealthy
        elif not runtime.comfyui_ready:
            reason = runtime.comfyui_state
        if reason is not None:
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        return JSONResponse({"ready": True})

    @service_routes.get("/templates", summary="The templates jobs can call by name")
    async def templates() -> dict[str, Any]:
        catalog = _catalog(runtime)
        return {"templates": [describe(catalog.templates[name]) for name in catalog.names()]}

    @service_routes.get("/templates/{name}", summary="A template's JSON Schema")
    async def template_schema(name: str) -> dict[str, Any]:
        catalog = _catalog(runtime)
        template = catalog.templates.get(name)
        if template is None:
            raise ServiceError(
                404, f"there is no template {name!r} (available: {', '.join(catalog.names()) or 'none'})"
            )
        schema: dict[str, Any] = template.json_schema()
        return schema

    @service_routes.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        data, content_type = runtime.metrics.render()
        return Response(data, media_type=content_type)

    app.include_router(jobs)
    app.include_router(service_routes)
    app.include_router(open_routes)
    return app


def _catalog(runtime: ServiceRuntime) -> TemplateCatalog:
    if runtime.remote_templates is not None:
        return runtime.remote_templates
    runner = runtime.worker.runner if isinstance(runtime.worker, Worker) else None
    if runner is None:
        raise ServiceError(503, "the service is starting")
    return runner.templates


async def _event_stream(job: Job, after: int, runtime: ServiceRuntime) -> AsyncIterator[bytes]:
    cursor = after
    while True:
        changed = job.changed
        for event in job.events_after(cursor):
            yield sse_event(event.seq, "progress", json.dumps(event.snapshot, separators=(",", ":")))
            cursor = event.seq
        if job.terminal:
            if cursor < job.result_event_id:
                data = await runtime.service.answer(job)
                final = (
                    data.decode("utf-8")
                    if data is not None
                    else json.dumps({"id": job.id, "status": job.status.value, "error": job.error})
                )
                yield sse_event(job.result_event_id, "result", final)
            return
        try:
            await asyncio.wait_for(changed.wait(), KEEP_ALIVE_S)
        except TimeoutError:
            yield KEEP_ALIVE
