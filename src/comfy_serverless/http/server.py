"""uvicorn, run programmatically, with the service's own shutdown: on SIGTERM (or Ctrl-C) the server
keeps answering while the jobs drain (new jobs get 503; status, events and cancel still work), and
exits once they have ended or HTTP_SHUTDOWN_GRACE has passed; then ComfyUI is stopped. A second signal
cancels what still runs at once."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ..settings import Settings
from .app import ServiceRuntime, create_app

log = logging.getLogger(__name__)

#: Seconds uvicorn waits for open connections once the jobs have drained.
CONNECTIONS_GRACE = 5.0


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains the service's jobs before it stops listening."""

    def __init__(self, config: uvicorn.Config, runtime: ServiceRuntime, grace: float):
        super().__init__(config)
        self.runtime = runtime
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._cancelling: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded as a captured signal: after a clean drain the process exits 0 instead of
        # re-raising the signal at itself.
        if self._drain is not None or self._loop is None or self.should_exit:
            log.warning("Second stop signal: cancelling what still runs")
            self.should_exit = True
            self.force_exit = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._cancel_all)
            return
        log.info("%s received: draining jobs", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _cancel_all(self) -> None:
        service = self.runtime.started_service
        if service is not None:
            task = asyncio.get_running_loop().create_task(
                service.cancel_all("cancelled: the service was stopped before the shutdown grace ended")
            )
            self._cancelling = task  # kept referenced until done

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            service = self.runtime.started_service
            if service is not None:
                await service.drain(self.grace)
        finally:
            self.should_exit = True


def serve(settings: Settings, host: str, port: int, *, app: FastAPI | None = None) -> int:
    """Run the service on ``host:port`` until it is stopped; the exit status."""
    app = app or create_app(settings)
    runtime: ServiceRuntime = app.state.runtime
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="asyncio",
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=settings.log_level == "DEBUG",
        timeout_graceful_shutdown=int(CONNECTIONS_GRACE),
    )
    server = DrainingServer(config, runtime, settings.http_shutdown_grace)
    log.info("comfy-serverless HTTP service on http://%s:%d", host, port)
    server.run()
    return 0 if server.started else 1
