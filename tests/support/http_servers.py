"""Real HTTP servers for input-download tests: aiohttp on a loopback address, on a random port.

Routes:
  /file/<name>          bytes from ``files``, with Content-Length
  /chunked/<name>       the same without Content-Length (chunked), in 1000-byte pieces
  /sized/<n>            n bytes with Content-Length n
  /slow                 headers and one byte, then nothing for 30 s
  /status/<code>        that HTTP status (``?delay=`` seconds first)
  /empty                200 with no body
  /redirect?to=<url>    302 to ``to``
  /hops/<n>             n redirects (n >= 1), the last to /file/img.png
  /gate/<name>          ``files[name]`` once ``gate_size`` requests are in flight (or after 1 s)
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from PIL import Image


def image_bytes(fmt: str = "PNG", color: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format=fmt)
    return buffer.getvalue()


class FileServer:
    """One test server and what it saw."""

    def __init__(self, server: TestServer, files: dict[str, bytes]):
        self.server = server
        self.files = files
        #: path and query of every request, in order
        self.hits: list[str] = []
        self.gate_size = 1
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@asynccontextmanager
async def file_server(
    host: str = "127.0.0.1", files: dict[str, bytes] | None = None
) -> AsyncIterator[FileServer]:
    state: FileServer | None = None

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        assert state is not None
        state.hits.append(request.path_qs)
        return await handler(request)

    async def file(request: web.Request) -> web.StreamResponse:
        assert state is not None
        name = request.match_info["name"]
        if name not in state.files:
            raise web.HTTPNotFound()
        return web.Response(body=state.files[name])

    async def chunked(request: web.Request) -> web.StreamResponse:
        assert state is not None
        data = state.files[request.match_info["name"]]
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 1000):
            await response.write(data[start : start + 1000])
        await response.write_eof()
        return response

    async def sized(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"x")
        await asyncio.sleep(30)  # cancelled when the client goes
        return response

    async def status(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.query.get("delay", "0")))
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def empty(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"")

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    async def hops(request: web.Request) -> web.StreamResponse:
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/hops/{left - 1}" if left > 1 else "/file/img.png")

    async def gate(request: web.Request) -> web.StreamResponse:
        assert state is not None
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        if state.in_flight >= state.gate_size:
            state.gate.set()
        try:
            await asyncio.wait_for(state.gate.wait(), 1.0)
        except TimeoutError:
            pass
        finally:
            state.in_flight -= 1
        return web.Response(body=state.files[request.match_info["name"]])

    app = web.Application(middlewares=[record])
    app.router.add_get("/file/{name}", file)
    app.router.add_get("/chunked/{name}", chunked)
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/empty", empty)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/hops/{n}", hops)
    app.router.add_get("/gate/{name}", gate)
    server = TestServer(app, host=host)
    await server.start_server()
    state = FileServer(server, dict(files or {}))
    try:
        yield state
    finally:
        await server.close()


class FakeResolver(AbstractResolver):
    """Answers DNS questions from a table: host name -> addresses."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such host: {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass
