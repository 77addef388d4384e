"""The asyncio client: :class:`~.sync.EndpointClient`'s methods, awaited (``stream`` is an async
iterator). Same flows, so the same retries, polling, errors and job-store rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from .core import (
    COLD_START_S,
    WORKER_TIMEOUT_S,
    Endpoint,
    JobRef,
    PollPolicy,
    cancel_flow,
    handle_of,
    health_flow,
    job_id_of,
    purge_queue_flow,
    raise_if_failed,
    resolve_api_key,
    resolve_base_url,
    retry_flow,
    status_flow,
    submit_flow,
    wait_flow_for,
)
from .inputs import InputStorage, JobInput
from .models import EndpointHealth, JobHandle, JobStatus
from .outputs import AsyncJobResult
from .retry import RetryPolicy
from .store import AsyncJobStore, JobRecord, JobStore, open_async_store
from .transport import AsyncDriver, ProgressCallback


class AsyncEndpointClient:
    """The asyncio twin of :class:`~.sync.EndpointClient` (same arguments; ``store`` may also be an
    :class:`~.store.AsyncJobStore`; a SQLite store is used from a thread, a ``redis://`` one through
    ``redis.asyncio``). Use it as ``async with AsyncEndpointClient(...) as client:`` or call
    :meth:`aclose`. ``on_progress`` may be a function or a coroutine function."""

    def __init__(
        self,
        endpoint_id: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        store: AsyncJobStore | JobStore | str | Path | None = None,
        uploads: InputStorage | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        cold_start_s: float = COLD_START_S,
        worker_timeout_s: float = WORKER_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
    ):
        url = resolve_base_url(endpoint_id, base_url)
        self.store: AsyncJobStore | None = open_async_store(store) if store is not None else None
        self.endpoint = Endpoint(
            base_url=url,
            api_key=resolve_api_key(api_key, url),
            retry=retry or RetryPolicy(),
            poll=poll or PollPolicy(),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            cold_start_s=cold_start_s,
            worker_timeout_s=worker_timeout_s,
            uploads=uploads,
            has_store=self.store is not None,
        )
        self._driver = AsyncDriver(self.endpoint, self.store, session)

    def __repr__(self) -> str:
        return f"AsyncEndpointClient({self.endpoint.base_url!r})"

    async def __aenter__(self) -> AsyncEndpointClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._driver.close()
        if self.store is not None:
            await self.store.close()

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    # --- jobs --------------------------------------------------------------------------------------

    async def submit(
        self,
        job_input: JobInput | Mapping[str, Any],
        *,
        webhook: str | None = None,
        s3_config: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> JobHandle:
        """See :meth:`.EndpointClient.submit`."""
        flow = submit_flow(
            self.endpoint, job_input, webhook=webhook, s3_config=s3_config, policy=policy, force=force
        )
        return await self._driver.run(flow)

    async def status(self, job: JobRef) -> JobStatus:
        return await self._driver.run(status_flow(self.endpoint, job_id_of(job)))

    def stream(self, job: JobRef, *, timeout: float | None = None) -> AsyncIterator[JobStatus]:
        """See :meth:`.EndpointClient.stream`: ``async for status in client.stream(job)``."""
        return self._driver.events(wait_flow_for(self.endpoint, job, timeout))

    # ``timeout`` is the budget for the job to end, not an I/O timeout: the wait polls once more at the
    # deadline and raises WaitTimeout with the last state seen, which asyncio.timeout() cannot.
    async def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        on_progress: ProgressCallback | None = None,
    ) -> AsyncJobResult:
        """See :meth:`.EndpointClient.wait`."""
        flow = wait_flow_for(self.endpoint, job, timeout)
        status = await self._driver.run(flow, on_progress)
        raise_if_failed(status)
        return AsyncJobResult.build(status, self.endpoint, self._driver.run)

    async def run(
        self,
        job_input: JobInput | Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        on_progress: ProgressCallback | None = None,
        webhook: str | None = None,
        s3_config: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> AsyncJobResult:
        """See :meth:`.EndpointClient.run`."""
        handle = await self.submit(
            job_input, webhook=webhook, s3_config=s3_config, policy=policy, force=force
        )
        return await self.wait(handle, timeout=timeout, on_progress=on_progress)

    async def cancel(self, job: JobRef) -> JobStatus:
        return await self._driver.run(cancel_flow(self.endpoint, job_id_of(job)))

    async def retry(self, job: JobRef) -> JobStatus:
        return await self._driver.run(retry_flow(self.endpoint, job_id_of(job)))

    # --- endpoint ----------------------------------------------------------------------------------

    async def health(self) -> EndpointHealth:
        return await self._driver.run(health_flow(self.endpoint))

    async def purge_queue(self) -> dict[str, Any]:
        return await self._driver.run(purge_queue_flow(self.endpoint))

    # --- the job store -----------------------------------------------------------------------------

    async def pending(self) -> list[JobRecord]:
        """See :meth:`.EndpointClient.pending`."""
        return await self.store.pending(self.endpoint.base_url) if self.store is not None else []

    async def resume(self) -> list[JobHandle]:
        """See :meth:`.EndpointClient.resume`."""
        return [handle_of(record) for record in await self.pending() if record.job_id is not None]


__all__ = ["AsyncEndpointClient"]
