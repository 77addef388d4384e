"""A stand-in for RunPod's job queue, so the worker's production loop (the SDK's JobScaler: job take,
stop signals, progress and result posts) runs for real against it.

Routes follow the URLs the runpod SDK builds from RUNPOD_WEBHOOK_GET_JOB and RUNPOD_WEBHOOK_POST_OUTPUT
(runpod/serverless/modules/rp_job.py and rp_http.py): GET /job-take/<worker>, GET /job-stop/<worker>,
POST /job-done/<worker>/<job>."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .worker_process import free_port


@dataclass
class Post:
    """One POST the worker made for a job: a progress report or the final result."""

    at: float
    job_id: str
    payload: dict[str, Any]

    @property
    def is_progress(self) -> bool:
        return self.payload.get("status") == "IN_PROGRESS"


@dataclass
class FakeRunPod:
    port: int = field(default_factory=free_port)
    worker_id: str = "test-worker"
    posts: list[Post] = field(default_factory=list)
    #: (monotonic time, job id) of each job handed to the worker, in order.
    taken: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._jobs: list[dict[str, Any]] = []
        self._stops: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # --- server ------------------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_get("/job-take/{worker}", self._take)
        app.router.add_get("/job-take-batch/{worker}", self._take_batch)
        app.router.add_get("/job-stop/{worker}", self._stop)
        app.router.add_post("/job-done/{worker}/{job}", self._done)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    async def _wait_for(self, items: list[Any], seconds: float) -> bool:
        """Long-poll like RunPod: hold the request until something arrives or time runs out."""
        if not items:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), seconds)
        return bool(items)

    def _add(self, items: list[Any], item: Any) -> None:
        items.append(item)
        self._arrived.set()

    async def _take(self, request: web.Request) -> web.Response:
        if not await self._wait_for(self._jobs, 0.5):
            return web.Response(status=204)
        job = self._jobs.pop(0)
        self.taken.append((time.monotonic(), job["id"]))
        return web.json_response(job)

    async def _take_batch(self, request: web.Request) -> web.Response:
        """The SDK asks for up to ``batch_size`` jobs when it has that many free slots (concurrency)."""
        if not await self._wait_for(self._jobs, 0.5):
            return web.Response(status=204)
        count = max(1, int(request.query.get("batch_size", "1")))
        jobs, self._jobs[:] = self._jobs[:count], self._jobs[count:]
        now = time.monotonic()
        self.taken.extend((now, job["id"]) for job in jobs)
        return web.json_response(jobs)

    async def _stop(self, request: web.Request) -> web.Response:
        if not await self._wait_for(self._stops, 0.5):
            return web.Response(status=204)
        ids, self._stops[:] = list(self._stops), []
        return web.json_response({"jobsToStop": ids})

    async def _done(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.posts.append(Post(time.monotonic(), request.match_info["job"], json.loads(body)))
        return web.json_response({})

    # --- control from tests ------------------------------------------------------------------------

    def start(self) -> FakeRunPod:
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def env(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_POD_ID": self.worker_id,
            "RUNPOD_SKIP_GPU_CHECK": "true",
        }

    def submit(self, job_id: str, job_input: Any, **beside_input: Any) -> None:
        """Queue a job; ``beside_input`` are fields RunPod sends next to ``input`` (``s3Config``)."""
        job = {"id": job_id, "input": job_input, **beside_input}
        self._loop.call_soon_threadsafe(self._add, self._jobs, job)

    def cancel(self, job_id: str) -> None:
        self._loop.call_soon_threadsafe(self._add, self._stops, job_id)

    def taken_at(self, job_id: str) -> float:
        return next(at for at, taken in list(self.taken) if taken == job_id)

    def posts_for(self, job_id: str) -> list[Post]:
        return [p for p in list(self.posts) if p.job_id == job_id]

    def result(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """The final (non-progress) post for a job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in self.posts_for(job_id):
                if not post.is_progress:
                    return post.payload
            time.sleep(0.05)
        raise TimeoutError(f"no result for {job_id} within {timeout} s")

    def progress(self, job_id: str) -> list[dict[str, Any]]:
        return [p.payload["output"] for p in self.posts_for(job_id) if p.is_progress]
