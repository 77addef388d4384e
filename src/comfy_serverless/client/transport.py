"""The I/O under the flows of :mod:`.core`: :class:`SyncDriver` performs their effects with ``requests``
and blocking calls, :class:`AsyncDriver` with aiohttp and ``asyncio``. Each turns a failed request into
one of two exceptions, the only distinction the retry rules need:

- :class:`~.core.NotSent`: the request provably never reached the server (connection refused, DNS
  failure, connect timeout);
- :class:`~.core.AnswerLost`: it was sent, or may have been, and no whole answer came back.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, TypeVar

import aiohttp
import requests
import urllib3.exceptions

from .core import (
    AnswerLost,
    Blocking,
    Effect,
    Emit,
    Endpoint,
    Flow,
    HttpAnswer,
    HttpRequest,
    NotSent,
    Send,
    Sleep,
    Stepper,
    StoreCall,
)
from .models import JobStatus
from .store import AsyncJobStore, JobStore

T = TypeVar("T")

_CHUNK = 1024 * 1024
ProgressCallback = Callable[[JobStatus], Any]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether requests failed before a connection was made (refused, DNS, connect timeout)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, urllib3.exceptions.MaxRetryError):
            seen = seen.reason
            continue
        if isinstance(seen, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        seen = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else seen.__cause__
    return False


class SyncDriver:
    """Performs flows for the synchronous client."""

    def __init__(self, endpoint: Endpoint, store: JobStore | None, session: requests.Session | None = None):
        self.endpoint = endpoint
        self.store = store
        self.session = session or requests.Session()

    def close(self) -> None:
        self.session.close()

    def run(self, flow: Flow[T], on_emit: ProgressCallback | None = None) -> T:
        """The flow's result; ``on_emit`` sees each status it emits."""
        events = self.events(flow)
        while True:
            try:
                status = next(events)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if on_emit is not None:
                on_emit(status)

    def events(self, flow: Flow[T]) -> Generator[JobStatus, None, T]:
        """The statuses the flow emits, as they come; returns the flow's result."""
        stepper = Stepper(flow)
        try:
            effect = stepper.advance()
            while effect is not None:
                if isinstance(effect, Emit):
                    yield effect.status
                    effect = stepper.advance()
                    continue
                try:
                    value = self.perform(effect)
                except Exception as exc:
                    effect = stepper.advance(error=exc)
                else:
                    effect = stepper.advance(value)
            return stepper.result  # type: ignore[return-value]
        finally:
            stepper.close()

    def perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return self.send(effect.request)
        if isinstance(effect, Sleep):
            time.sleep(max(0.0, effect.seconds))
            return None
        if isinstance(effect, Blocking):
            return effect.fn(*effect.args)
        if isinstance(effect, StoreCall):
            if self.store is None:
                raise RuntimeError("this client has no job store")
            return getattr(self.store, effect.method)(*effect.args)
        raise TypeError(f"unknown effect {effect!r}")

    def send(self, request: HttpRequest) -> HttpAnswer:
        try:
            response = self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=self.endpoint.headers(request),
                timeout=(request.connect_timeout, request.read_timeout),
                stream=request.into is not None,
                allow_redirects=request.method == "GET",
            )
        except requests.exceptions.SSLError as exc:
            raise NotSent(_describe(exc), retryable=False) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise NotSent(_describe(exc)) from exc
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise NotSent(_describe(exc)) from exc
            raise AnswerLost(_describe(exc)) from exc
        except (requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise AnswerLost(_describe(exc)) from exc
        with response:
            headers = {name.lower(): value for name, value in response.headers.items()}
            try:
                if request.into is not None and response.status_code == 200:
                    digest = hashlib.sha256()
                    size = 0
                    try:
                        with request.into.open("wb") as file:
                            for chunk in response.iter_content(_CHUNK):
                                digest.update(chunk)
                                size += len(chunk)
                                file.write(chunk)
                    except BaseException:
                        request.into.unlink(missing_ok=True)
                        raise
                    return HttpAnswer(200, headers, b"", size, digest.hexdigest())
                body = response.content
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise AnswerLost(_describe(exc)) from exc
        return HttpAnswer(response.status_code, headers, body, len(body))


class AsyncDriver:
    """Performs flows for the asyncio client: aiohttp for HTTP, threads for blocking calls and
    synchronous stores."""

    def __init__(
        self, endpoint: Endpoint, store: AsyncJobStore | None, session: aiohttp.ClientSession | None = None
    ):
        self.endpoint = endpoint
        self.store = store
        self._session = session
        self._own_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def run(self, flow: Flow[T], on_emit: ProgressCallback | None = None) -> T:
        """The flow's result; ``on_emit`` (a function or a coroutine function) sees each status."""
        stepper = Stepper(flow)
        try:
            effect = stepper.advance()
            while effect is not None:
                if isinstance(effect, Emit):
                    if on_emit is not None:
                        outcome = on_emit(effect.status)
                        if inspect.isawaitable(outcome):
                            await outcome
                    effect = stepper.advance()
                    continue
                effect = await self._step(stepper, effect)
            return stepper.result  # type: ignore[return-value]
        finally:
            stepper.close()

    async def events(self, flow: Flow[Any]) -> AsyncIterator[JobStatus]:
        """The statuses the flow emits, as they come."""
        stepper = Stepper(flow)
        try:
            effect = stepper.advance()
            while effect is not None:
                if isinstance(effect, Emit):
                    yield effect.status
                    effect = stepper.advance()
                    continue
                effect = await self._step(stepper, effect)
        finally:
            stepper.close()

    async def _step(self, stepper: Stepper[Any], effect: Effect) -> Effect | None:
        try:
            value = await self.perform(effect)
        except Exception as exc:
            return stepper.advance(error=exc)
        return stepper.advance(value)

    async def perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return await self.send(effect.request)
        if isinstance(effect, Sleep):
            await asyncio.sleep(max(0.0, effect.seconds))
            return None
        if isinstance(effect, Blocking):
            return await asyncio.to_thread(effect.fn, *effect.args)
        if isinstance(effect, StoreCall):
            if self.store is None:
                raise RuntimeError("this client has no job store")
            return await getattr(self.store, effect.method)(*effect.args)
        raise TypeError(f"unknown effect {effect!r}")

    async def send(self, request: HttpRequest) -> HttpAnswer:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=request.connect_timeout,
            sock_connect=request.connect_timeout,
            sock_read=request.read_timeout,
        )
        try:
            async with self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=self.endpoint.headers(request),
                timeout=timeout,
                allow_redirects=request.method == "GET",
            ) as response:
                headers = {name.lower(): value for name, value in response.headers.items()}
                if request.into is not None and response.status == 200:
                    size, sha256 = await self._download(response, request)
                    return HttpAnswer(200, headers, b"", size, sha256)
                body = await response.read()
                return HttpAnswer(response.status, headers, body, len(body))
        except aiohttp.ClientSSLError as exc:
            raise NotSent(_describe(exc), retryable=False) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(_describe(exc)) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise AnswerLost(_describe(exc)) from exc

    async def _download(self, response: aiohttp.ClientResponse, request: HttpRequest) -> tuple[int, str]:
        assert request.into is not None
        digest = hashlib.sha256()
        size = 0
        file = await asyncio.to_thread(request.into.open, "wb")
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(file.write, chunk)
        except BaseException:
            await asyncio.to_thread(file.close)
            await asyncio.to_thread(request.into.unlink, True)
            raise
        await asyncio.to_thread(file.close)
        return size, digest.hexdigest()


__all__ = ["AsyncDriver", "SyncDriver"]
