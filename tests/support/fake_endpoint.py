"""A stand-in for RunPod's serverless endpoint API (``https://api.runpod.ai/v2/<endpoint>``): a real HTTP
server (aiohttp, in its own thread, on a loopback port) with behaviour scripted per test.

Routes, under ``/v2/<endpoint id>``: ``POST /run``, ``GET|POST /status/<id>``, ``POST /cancel/<id>``,
``POST /retry/<id>``, ``POST /purge-queue``, ``GET /health``; and ``GET /files/<name>`` (outside the
endpoint, no key: the files an uploaded output's ``url`` points at). Every endpoint route checks the
Bearer key when the server has one.

A job follows its :class:`JobPlan`, one step per ``/status`` request: ``IN_QUEUE`` for ``queue_polls``
polls (or while ``hold`` until :meth:`FakeEndpoint.release`), then ``IN_PROGRESS`` with each ``progress``
snapshot as its output, then its ``outcome``. Faults are queued per route and used by the next requests
to it: :class:`Reply` answers a status (429 with Retry-After, 5xx) without doing the work, :class:`Drop`
closes the connection without an answer (before the work, or after it with ``after=True``: a job made
whose id never reaches the client), :class:`Stall` does the work and answers only after a while.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from comfy_serverless.client import PollPolicy, RetryPolicy

from .worker_process import free_port

ENDPOINT_ID = "ep-test"
API_KEY = "test-key-0123456789"

#: Client settings that keep tests fast: retries and polls a few milliseconds apart.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=20.0)
FAST_POLL = PollPolicy(initial=0.005, maximum=0.02)


@dataclass(frozen=True)
class Reply:
    """Answer this status (and JSON body, headers) without doing the request's work."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering; ``after``: once the request's work is done."""

    after: bool = False


@dataclass(frozen=True)
class Stall:
    """Do the work, then wait ``seconds`` before answering."""

    seconds: float


Fault = Reply | Drop | Stall


def image_item(node_id: str, filename: str, content: bytes, **extra: Any) -> dict[str, Any]:
    """A native result item for an inline file."""
    return {
        "node_id": node_id,
        "type": "image",
        "filename": filename,
        "subfolder": "",
        "mime": "image/png",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "data": base64.b64encode(content).decode(),
        **extra,
    }


def success(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A native success result."""
    return {"status": "success", "prompt_id": "prompt-1", "outputs": list(items), **extra}


@dataclass
class JobPlan:
    """How one job behaves; see the module docstring. ``outcome`` is COMPLETED, FAILED, CANCELLED or
    TIMED_OUT; ``output`` the job's output (a success result, or a failure's ``{error_type, details}``);
    ``error`` a failure's sentence."""

    queue_polls: int = 0
    progress: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "COMPLETED"
    output: Any = field(default_factory=lambda: success(image_item("9", "img.png", b"\x89PNG fake")))
    error: str | None = None
    hold: bool = False
    delay_ms: int = 1500
    execution_ms: int = 800


@dataclass
class FakeJob:
    id: str
    body: dict[str, Any]
    plan: JobPlan
    polls: int = 0
    running_polls: int = 0
    state: str = "IN_QUEUE"
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def input(self) -> Any:
        return self.body.get("input")


class FakeEndpoint:
    def __init__(self, api_key: str | None = API_KEY):
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v2/{ENDPOINT_ID}"
        self.root = f"http://127.0.0.1:{self.port}"
        #: Requests that reached the server, by route name (run, status, cancel, ...; files).
        self.counts: Counter[str] = Counter()
        #: (method, route) of every request, in order.
        self.requests: list[tuple[str, str]] = []
        #: The Authorization header of every request to /files (None when absent).
        self.file_auth: list[str | None] = []
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[str, bytes] = {}
        self.default_plan = JobPlan()
        self._plans: deque[JobPlan] = deque()
        self._faults: dict[str, deque[Fault]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # --- scripting ---------------------------------------------------------------------------------

    def plan(self, *plans: JobPlan) -> FakeEndpoint:
        """The next submitted jobs follow these plans, in order; later ones the default plan."""
        with self._lock:
            self._plans.extend(plans)
        return self

    def fault(self, route: str, *faults: Fault) -> FakeEndpoint:
        """The next requests to ``route`` (run, status, cancel, retry, purge-queue, health, files) meet
        these faults, one each."""
        with self._lock:
            self._faults.setdefault(route, deque()).extend(faults)
        return self

    def add_file(self, name: str, content: bytes) -> str:
        """Serve ``content`` at a URL (an uploaded output's ``url``)."""
        self.files[name] = content
        return f"{self.root}/files/{name}"

    def release(self, job_id: str) -> None:
        """Let a job planned with ``hold`` leave the queue."""
        self.jobs[job_id].released.set()

    @property
    def submissions(self) -> int:
        """Jobs made by /run."""
        return len(self.jobs)

    # --- server ------------------------------------------------------------------------------------

    def start(self) -> FakeEndpoint:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake endpoint did not start")
        return self

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._middleware])
        base = f"/v2/{ENDPOINT_ID}"
        app.router.add_post(f"{base}/run", self._run)
        app.router.add_get(f"{base}/status/{{job}}", self._status)
        app.router.add_post(f"{base}/status/{{job}}", self._status)
        app.router.add_post(f"{base}/cancel/{{job}}", self._cancel)
        app.router.add_post(f"{base}/retry/{{job}}", self._retry)
        app.router.add_post(f"{base}/purge-queue", self._purge)
        app.router.add_get(f"{base}/health", self._health)
        app.router.add_get("/files/{name}", self._file)
        # Stalled handlers must not hold up a test's teardown.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    @staticmethod
    def _route(request: web.Request) -> str:
        parts = request.path.strip("/").split("/")
        return parts[0] if parts[0] == "files" else (parts[2] if len(parts) > 2 else "")

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = self._route(request)
        with self._lock:
            self.counts[route] += 1
            self.requests.append((request.method, route))
            queue = self._faults.get(route)
            fault = queue.popleft() if queue else None
        if isinstance(fault, Reply):
            body = fault.body if fault.body is not None else {"error": f"fault {fault.status}"}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        if isinstance(fault, Drop) and not fault.after:
            return self._drop(request)
        if route == "files":
            self.file_auth.append(request.headers.get("Authorization"))
        elif self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        response = await handler(request)
        if isinstance(fault, Drop):
            return self._drop(request)
        if isinstance(fault, Stall):
            await asyncio.sleep(fault.seconds)
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise web.HTTPInternalServerError()  # never reaches the closed connection

    # --- routes ------------------------------------------------------------------------------------

    async def _run(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return web.json_response({"error": "input is required"}, status=400)
        with self._lock:
            plan = self._plans.popleft() if self._plans else self.default_plan
            job = FakeJob(id=f"job-{next(self._ids)}", body=body, plan=plan)
            self.jobs[job.id] = job
        return web.json_response({"id": job.id, "status": "IN_QUEUE"})

    def _job(self, request: web.Request) -> FakeJob:
        job = self.jobs.get(request.match_info["job"])
        if job is None:
            raise web.HTTPNotFound(
                text='{"error": "request does not exist"}', content_type="application/json"
            )
        return job

    def _advance(self, job: FakeJob) -> dict[str, Any]:
        plan = job.plan
        if job.state in ("IN_QUEUE", "IN_PROGRESS"):
            job.polls += 1
            if job.polls <= plan.queue_polls or (plan.hold and not job.released.is_set()):
                job.state = "IN_QUEUE"
            else:
                job.running_polls += 1
                step = job.running_polls - 1
                if step < len(plan.progress):
                    job.state = "IN_PROGRESS"
                    output = plan.progress[step]
                    return {
                        "id": job.id,
                        "status": "IN_PROGRESS",
                        "delayTime": plan.delay_ms,
                        "output": output,
                    }
                job.state = plan.outcome
        answer: dict[str, Any] = {"id": job.id, "status": job.state}
        if job.state == "IN_QUEUE":
            return answer
        answer["delayTime"] = plan.delay_ms
        if job.state == "COMPLETED":
            answer.update(executionTime=plan.execution_ms, output=plan.output)
        elif job.state == "FAILED":
            answer.update(executionTime=plan.execution_ms, error=plan.error, output=plan.output)
        return answer

    async def _status(self, request: web.Request) -> web.Response:
        with self._lock:
            answer = self._advance(self._job(request))
        return web.json_response(answer)

    async def _cancel(self, request: web.Request) -> web.Response:
        with self._lock:
            job = self._job(request)
            if job.state in ("IN_QUEUE", "IN_PROGRESS"):
                job.state = "CANCELLED"
        return web.json_response({"id": job.id, "status": job.state})

    async def _retry(self, request: web.Request) -> web.Response:
        with self._lock:
            job = self._job(request)
            if job.state not in ("FAILED", "TIMED_OUT"):
                return web.json_response(
                    {"error": f"job {job.id} is {job.state}; only failed jobs retry"}, status=400
                )
            job.plan = self._plans.popleft() if self._plans else self.default_plan
            job.polls, job.running_polls, job.state = 0, 0, "IN_QUEUE"
        return web.json_response({"id": job.id, "status": "IN_QUEUE"})

    async def _purge(self, request: web.Request) -> web.Response:
        with self._lock:
            queued = [job for job in self.jobs.values() if job.state == "IN_QUEUE"]
            for job in queued:
                job.state = "CANCELLED"
        return web.json_response({"removed": len(queued), "status": "completed"})

    async def _health(self, request: web.Request) -> web.Response:
        with self._lock:
            states = Counter(job.state for job in self.jobs.values())
        return web.json_response(
            {
                "jobs": {
                    "completed": states["COMPLETED"],
                    "failed": states["FAILED"],
                    "inProgress": states["IN_PROGRESS"],
                    "inQueue": states["IN_QUEUE"],
                    "retried": 0,
                },
                "workers": {
                    "idle": 0,
                    "initializing": 1,
                    "ready": 0,
                    "running": 0,
                    "throttled": 0,
                    "unhealthy": 0,
                },
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["name"])
        if content is None:
            raise web.HTTPNotFound()
        return web.Response(body=content, content_type="application/octet-stream")


__all__ = [
    "API_KEY",
    "ENDPOINT_ID",
    "FAST_POLL",
    "FAST_RETRY",
    "Drop",
    "FakeEndpoint",
    "FakeJob",
    "JobPlan",
    "Reply",
    "Stall",
    "image_item",
    "success",
]
