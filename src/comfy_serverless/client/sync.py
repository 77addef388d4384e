"""The synchronous client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

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
from .outputs import JobResult
from .retry import RetryPolicy
from .store import JobRecord, JobStore, open_store
from .transport import ProgressCallback, SyncDriver


class EndpointClient:
    """A RunPod serverless endpoint running comfy-serverless (or any worker-comfyui compatible worker).

    ``endpoint_id`` names the endpoint on RunPod (``RUNPOD_ENDPOINT_ID`` when omitted); ``base_url``
    replaces RunPod's URL entirely (RunPod's local development server, tests, a proxy). ``api_key``
    (``RUNPOD_API_KEY`` when omitted) is required for RunPod and sent as a Bearer token; it is never sent
    to storage URLs. ``store`` (a SQLite path, a ``redis://`` URL or a :class:`~.store.JobStore`) records
    every submission so that none is lost or made twice across restarts. ``uploads`` is the bucket for
    input files too large to send inline. ``retry`` and ``poll`` tune the retries and the status polling;
    ``cold_start_s`` and ``worker_timeout_s`` make the default waits (see :meth:`run`)."""

    def __init__(
        self,
        endpoint_id: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        store: JobStore | str | Path | None = None,
        uploads: InputStorage | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        cold_start_s: float = COLD_START_S,
        worker_timeout_s: float = WORKER_TIMEOUT_S,
        session: requests.Session | None = None,
    ):
        url = resolve_base_url(endpoint_id, base_url)
        self.store: JobStore | None = open_store(store) if store is not None else None
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
        self._driver = SyncDriver(self.endpoint, self.store, session)

    def __repr__(self) -> str:
        return f"EndpointClient({self.endpoint.base_url!r})"

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._driver.close()
        if self.store is not None:
            self.store.close()

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    # --- jobs --------------------------------------------------------------------------------------

    def submit(
        self,
        job_input: JobInput | Mapping[str, Any],
        *,
        webhook: str | None = None,
        s3_config: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> JobHandle:
        """Queue a job (``POST /run``) and return its handle.

        ``job_input`` is the job's ``input`` (a dict) or a :class:`~.inputs.JobInput` with local files;
        ``webhook``, ``s3_config`` (RunPod's ``s3Config``) and ``policy`` go beside it. The submission is
        repeated only when RunPod provably did not receive it; when its answer is lost this raises
        :class:`~.errors.SubmitUncertain` rather than risk running the job twice. With a store, input
        identical to a pending or completed job returns that job (``reused``) unless ``force``."""
        flow = submit_flow(
            self.endpoint, job_input, webhook=webhook, s3_config=s3_config, policy=policy, force=force
        )
        return self._driver.run(flow)

    def status(self, job: JobRef) -> JobStatus:
        """The job's current ``/status``."""
        return self._driver.run(status_flow(self.endpoint, job_id_of(job)))

    def stream(self, job: JobRef, *, timeout: float | None = None) -> Iterator[JobStatus]:
        """Each change of the job's status (a new state or progress snapshot) as it is seen, ending with
        its final status, whatever it is (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMED_OUT``).
        Polls ``/status``, often at first, then less while nothing changes. Raises WaitTimeout after
        ``timeout`` seconds (default: the handle's wait, else the worker's default timeout plus a cold
        start)."""
        return self._driver.events(wait_flow_for(self.endpoint, job, timeout))

    def wait(
        self, job: JobRef, *, timeout: float | None = None, on_progress: ProgressCallback | None = None
    ) -> JobResult:
        """Wait for the job to end; its result, or the :class:`~.errors.JobFailed` subclass for how it
        failed. ``on_progress`` is called with each status change (a new state or progress snapshot, the
        final status included). A job store that knows the job's end answers at once. Raises
        WaitTimeout when ``timeout`` passes first (the job goes on)."""
        flow = wait_flow_for(self.endpoint, job, timeout)
        return self._finish(self._driver.run(flow, on_progress))

    def run(
        self,
        job_input: JobInput | Mapping[str, Any],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        webhook: str | None = None,
        s3_config: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> JobResult:
        """Submit a job (see :meth:`submit`) and wait for its result (see :meth:`wait`). The default
        ``timeout`` is the job's own ``timeout`` (else the worker's default, 600 s) plus 150 s for a cold
        start."""
        handle = self.submit(job_input, webhook=webhook, s3_config=s3_config, policy=policy, force=force)
        return self.wait(handle, timeout=timeout, on_progress=on_progress)

    def cancel(self, job: JobRef) -> JobStatus:
        """Cancel a queued or running job (``POST /cancel/{id}``)."""
        return self._driver.run(cancel_flow(self.endpoint, job_id_of(job)))

    def retry(self, job: JobRef) -> JobStatus:
        """Requeue a ``FAILED`` or ``TIMED_OUT`` job under the same id (``POST /retry/{id}``)."""
        return self._driver.run(retry_flow(self.endpoint, job_id_of(job)))

    # --- endpoint ----------------------------------------------------------------------------------

    def health(self) -> EndpointHealth:
        """Job and worker counts (``GET /health``); ``cold_start_likely`` when no worker is up."""
        return self._driver.run(health_flow(self.endpoint))

    def purge_queue(self) -> dict[str, Any]:
        """Remove every queued job (``POST /purge-queue``); running jobs go on."""
        return self._driver.run(purge_queue_flow(self.endpoint))

    # --- the job store -----------------------------------------------------------------------------

    def pending(self) -> list[JobRecord]:
        """This endpoint's submissions not known to have ended, oldest first (none without a store).
        Those with a ``job_id`` can be waited for; ``SUBMITTING`` and ``UNCERTAIN`` ones never got one
        (see :class:`~.errors.SubmitUncertain`)."""
        return self.store.pending(self.endpoint.base_url) if self.store is not None else []

    def resume(self) -> list[JobHandle]:
        """Handles of this endpoint's pending jobs, to :meth:`wait` for after a restart."""
        return [handle_of(record) for record in self.pending() if record.job_id is not None]

    # --- helpers -----------------------------------------------------------------------------------

    def _finish(self, status: JobStatus) -> JobResult:
        raise_if_failed(status)
        return JobResult.build(status, self.endpoint, self._driver.run)


__all__ = ["EndpointClient"]
