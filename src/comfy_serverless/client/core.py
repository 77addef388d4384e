"""The client's logic, free of I/O: every operation is a generator ("flow") that yields the effects it
needs (an HTTP request, a sleep, a blocking call, a job-store call, an event for the caller) and gets
their results back. :mod:`.transport` performs the effects, with ``requests`` for the synchronous client
and aiohttp for the asyncio one, so both clients share every decision: retries, polling, error mapping,
the job store's rules. A failed effect is thrown into the flow at the point it was yielded, as if the
call had been made there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

from .errors import (
    AuthenticationError,
    EndpointClientError,
    EndpointNotFound,
    InfrastructureError,
    InputTooLarge,
    JobNotFound,
    RequestRejected,
    RequestUncertain,
    ServiceUnavailable,
    SubmitUncertain,
    WaitTimeout,
    job_failure,
)
from .inputs import RUN_BODY_LIMIT, InputStorage, JobInput, PreparedInput, prepare_input
from .models import COMPLETED, FAILED, IN_QUEUE, TERMINAL_STATES, EndpointHealth, JobHandle, JobStatus
from .retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after, safe_to_resend
from .store import EXPIRED, SUBMITTING, UNCERTAIN, JobRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

RUNPOD_API = "https://api.runpod.ai/v2"
#: Time a job may wait for a worker to boot (pull the image, start ComfyUI, load models) before it runs.
COLD_START_S = 150.0
#: The worker's JOB_TIMEOUT_DEFAULT: how long a job that names no ``timeout`` may run.
WORKER_TIMEOUT_S = 600.0
#: RunPod's local development server runs the whole job inside one ``/status`` request.
_BLOCKING_STATUS_TIMEOUT = 3600.0


# --- effects ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request. ``idempotent`` says whether it may be repeated when its answer is lost;
    ``auth`` whether it carries the API key (never to storage URLs); ``into`` streams a 200 answer's
    body into that file instead of memory (downloads)."""

    method: str
    url: str
    operation: str
    body: bytes | None = None
    idempotent: bool = True
    auth: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    into: Path | None = None


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer. ``headers`` have lower-case names. With ``into``, a 200's body is in that file
    and ``size`` and ``sha256`` describe it; otherwise ``body`` holds it."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    size: int = 0
    sha256: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class NotSent(Exception):
    """The request provably never reached the server (connection refused, DNS failure, connect
    timeout). ``retryable`` is False for failures another attempt cannot fix (a TLS certificate)."""

    def __init__(self, reason: str, *, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class AnswerLost(Exception):
    """The request was sent (or may have been) but no complete answer came back: a read timeout, a
    connection closed by the server, a truncated body."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Send:
    request: HttpRequest


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Blocking:
    """Call ``fn(*args)``: disk or storage work, run in a thread by the asyncio client."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StoreCall:
    """Call the job store's ``method(*args)``."""

    method: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Emit:
    """Hand a status to the caller (stream(), on_progress)."""

    status: JobStatus


Effect = Send | Sleep | Blocking | StoreCall | Emit
Flow = Generator[Effect, Any, T]


class Stepper(Generic[T]):
    """Runs a flow one effect at a time: :meth:`advance` takes the last effect's result (or the
    exception it raised, thrown into the flow where it yielded) and gives the next effect, or None once
    the flow returned (its value is then :attr:`result`)."""

    def __init__(self, flow: Flow[T]):
        self.flow = flow
        self.result: T | None = None

    def advance(self, value: Any = None, error: Exception | None = None) -> Effect | None:
        try:
            if error is not None:
                return self.flow.throw(error)
            return self.flow.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def close(self) -> None:
        self.flow.close()


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollPolicy:
    """How often a job's status is asked while waiting. The first wait is ``initial``; while nothing
    changes each wait grows by ``factor`` up to ``maximum``; a change (a new state or progress
    snapshot) shortens it again, so progress is followed closely and a long queue costs few requests.
    A wait never goes past the caller's deadline."""

    initial: float = 0.5
    maximum: float = 5.0
    factor: float = 1.5

    def next_delay(self, delay: float, changed: bool) -> float:
        if changed:
            return max(self.initial, delay / self.factor)
        return min(self.maximum, max(self.initial, delay * self.factor))


def resolve_base_url(endpoint_id: str | None, base_url: str | None) -> str:
    """``base_url`` as given (tests, RunPod's local development server, a proxy), else RunPod's URL of
    ``endpoint_id`` (or ``RUNPOD_ENDPOINT_ID``)."""
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        return base_url.rstrip("/")
    endpoint_id = endpoint_id or os.environ.get("RUNPOD_ENDPOINT_ID")
    if not endpoint_id:
        raise ValueError("pass an endpoint id (or set RUNPOD_ENDPOINT_ID), or a base_url")
    return f"{RUNPOD_API}/{quote(endpoint_id, safe='')}"


def resolve_api_key(api_key: str | None, base_url: str) -> str | None:
    """The API key (argument, else ``RUNPOD_API_KEY``); required for RunPod's own API only."""
    key = api_key or os.environ.get("RUNPOD_API_KEY") or None
    if key is None and base_url.startswith(RUNPOD_API):
        raise ValueError("RunPod's API needs an API key: pass api_key= or set RUNPOD_API_KEY")
    return key


def default_wait(job_input: Mapping[str, Any], *, cold_start_s: float, worker_timeout_s: float) -> float:
    """How long to wait for a job by default: its own ``timeout`` (else the worker's default) plus a
    cold start."""
    timeout = job_input.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout) + cold_start_s
    return worker_timeout_s + cold_start_s


@dataclass
class Endpoint:
    """Everything the flows need to know about one endpoint, and what the client learnt about it."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollPolicy = field(default_factory=PollPolicy)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    #: A submission carries the whole input; give it longer to be read and answered.
    submit_timeout: float = 120.0
    cold_start_s: float = COLD_START_S
    worker_timeout_s: float = WORKER_TIMEOUT_S
    body_limit: int = RUN_BODY_LIMIT
    uploads: InputStorage | None = None
    has_store: bool = False
    #: Learnt: RunPod answers /status to GET; its local development server only to POST, and runs the
    #: job inside that request.
    status_method: str = "GET"

    @property
    def blocking_status(self) -> bool:
        return self.status_method == "POST"

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        idempotent: bool = True,
        read_timeout: float | None = None,
    ) -> HttpRequest:
        body = None if payload is None else encode_json(payload)
        return HttpRequest(
            method=method,
            url=self.base_url + path,
            operation=f"{method} {path}",
            body=body,
            idempotent=idempotent,
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout or self.read_timeout,
        )

    def headers(self, request: HttpRequest) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        if request.auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def job_path(route: str, job_id: str) -> str:
    if not job_id:
        raise ValueError("a job id is required")
    return f"/{route}/{quote(job_id, safe='')}"


# --- requests with retries -------------------------------------------------------------------------


def answer_text(answer: HttpAnswer, limit: int = 300) -> str | None:
    """RunPod's error text from an answer: ``error``, ``message`` or ``detail`` of a JSON body, else the
    body's start."""
    try:
        data = answer.json()
    except ValueError:
        text = answer.body.decode("utf-8", "replace").strip()
        return text[:limit] or None
    if isinstance(data, Mapping):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])[:limit]
    return json.dumps(data)[:limit]


def call(request: HttpRequest, policy: RetryPolicy) -> Flow[HttpAnswer]:
    """Send ``request`` until it gets an answer worth returning: any status outside
    :data:`~.retry.RETRYABLE_STATUSES`. 429, 5xx and connection failures are retried with the
    policy's backoff (``Retry-After`` honoured) while :func:`~.retry.safe_to_resend` allows.

    Raises ServiceUnavailable when the policy gives up, RequestUncertain when a request that must not
    be repeated lost its answer."""
    attempts = policy.start()
    while True:
        retry_after: float | None = None
        status: int | None = None
        delivered = True
        retryable = True
        try:
            answer: HttpAnswer = yield Send(request)
        except NotSent as exc:
            delivered, problem, retryable = False, exc.reason, exc.retryable
        except AnswerLost as exc:
            problem = f"the answer was lost ({exc.reason})"
        else:
            if answer.status not in RETRYABLE_STATUSES:
                return answer
            status = answer.status
            text = answer_text(answer)
            problem = f"HTTP {status}" + (f": {text}" if text else "")
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
        if not safe_to_resend(status, idempotent=request.idempotent, delivered=delivered):
            raise RequestUncertain(
                f"{request.operation}: {problem}; it may or may not have taken effect, so it was not "
                "sent again",
                operation=request.operation,
                status_code=status,
            )
        delay = attempts.next_delay(retry_after) if retryable else None
        if delay is None:
            tries = f"{attempts.made} attempt{'s' if attempts.made != 1 else ''} in {attempts.elapsed:.1f} s"
            raise ServiceUnavailable(
                f"{request.operation} failed: {problem} ({tries})",
                operation=request.operation,
                status_code=status,
            )
        log.info(
            "%s failed (%s); attempt %d of %d in %.2f s",
            request.operation,
            problem,
            attempts.made,
            policy.max_attempts,
            delay,
        )
        yield Sleep(delay)


def checked(answer: HttpAnswer, request: HttpRequest, *, job_id: str | None = None) -> Any:
    """The JSON of a successful answer; the matching InfrastructureError for any other."""
    status = answer.status
    if 200 <= status < 300:
        try:
            return answer.json()
        except ValueError:
            raise InfrastructureError(
                f"{request.operation} answered HTTP {status} with something that is not JSON",
                operation=request.operation,
                status_code=status,
                job_id=job_id,
            ) from None
    text = answer_text(answer)
    said = f": {text}" if text else ""
    common: dict[str, Any] = {
        "operation": request.operation,
        "status_code": status,
        "answer": text,
        "job_id": job_id,
    }
    if status in (401, 403):
        raise AuthenticationError(
            f"{request.operation} was refused (HTTP {status}{said}): check the API key "
            "(api_key= or RUNPOD_API_KEY) and that it may use this endpoint",
            **common,
        )
    if status == 404:
        if text == "Not Found":
            # FastAPI's answer for a route it does not have.
            raise EndpointNotFound(
                f"the server has no route for {request.operation} (RunPod's local development "
                "server offers only /run, /runsync, /status and /stream)",
                **common,
            )
        if job_id is not None:
            raise JobNotFound(
                f"job {job_id} is unknown to the endpoint (a wrong id, or its result expired: RunPod "
                f"keeps results 30 minutes after a /run job ends){said}",
                **common,
            )
        raise EndpointNotFound(f"{request.url} does not exist: check the endpoint id{said}", **common)
    raise RequestRejected(f"{request.operation} was refused (HTTP {status}{said})", **common)


# --- operations ------------------------------------------------------------------------------------


def status_flow(endpoint: Endpoint, job_id: str, *, deadline: float | None = None) -> Flow[JobStatus]:
    """``/status`` of a job. RunPod's local development server answers it only to POST and runs the
    job inside that request: then the request may take until ``deadline`` and is not repeated when its
    answer is lost (repeating it would run the job again)."""
    path = job_path("status", job_id)
    while True:
        blocking = endpoint.blocking_status
        read_timeout = None
        if blocking:
            left = deadline - time.monotonic() if deadline is not None else _BLOCKING_STATUS_TIMEOUT
            read_timeout = max(1.0, left)
        request = endpoint.request(
            endpoint.status_method, path, idempotent=not blocking, read_timeout=read_timeout
        )
        answer = yield from call(request, endpoint.retry)
        if answer.status == 405 and not blocking:
            log.info(
                "%s answers /status only to POST: RunPod's local development server, which runs the "
                "job inside that request",
                endpoint.base_url,
            )
            endpoint.status_method = "POST"
            continue
        status = JobStatus.parse(checked(answer, request, job_id=job_id), job_id)
        if status.status == FAILED and status.error == "Job ID not found" and status.output is None:
            # The local development server's answer for an unknown (or already collected) job.
            raise JobNotFound(
                f"job {job_id} is unknown to the server (RunPod's local development server forgets a "
                "job once its status was read)",
                operation=request.operation,
                status_code=answer.status,
                job_id=job_id,
            )
        return status


def _change_key(status: JobStatus) -> str:
    return status.status + "\0" + json.dumps(status.output, sort_keys=True, default=str)


def watch_flow(
    endpoint: Endpoint,
    job_id: str,
    *,
    timeout: float,
    submitted_at: float | None = None,
    record: JobRecord | None = None,
) -> Flow[JobStatus]:
    """Poll a job until it ends; emit every change (state or progress) and the final status. Raises
    WaitTimeout once ``timeout`` seconds pass without an end. With a job store record, each new state
    is saved, the final answer included."""
    deadline = time.monotonic() + timeout
    started = submitted_at if submitted_at is not None else time.time()
    delay = endpoint.poll.initial
    last_key: str | None = None
    seen_queued = False
    queue_s: float | None = None
    last: JobStatus | None = None
    while True:
        try:
            status = yield from status_flow(endpoint, job_id, deadline=deadline)
        except JobNotFound as exc:
            if record is not None:
                now = time.time()
                record = replace(record, state=EXPIRED, error=exc.message, finished_at=now, updated_at=now)
                yield StoreCall("save", (record,))
            raise
        except RequestUncertain:
            if endpoint.blocking_status and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"job {job_id} did not end within {timeout:g} s",
                    job_id=job_id,
                    last_status=last.status if last else None,
                ) from None
            raise
        now = time.time()
        if status.queued:
            seen_queued = True
        elif queue_s is None and (seen_queued or submitted_at is not None):
            queue_s = max(0.0, now - started)
        status = replace(status, observed_queue_s=queue_s, observed_s=max(0.0, now - started))
        key = _change_key(status)
        changed = key != last_key
        if record is not None and (last is None or status.status != last.status):
            record = record.moved_to(status)
            yield StoreCall("save", (record,))
        last_key, last = key, status
        if changed:
            yield Emit(status)
        if status.done:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(
                f"job {job_id} did not end within {timeout:g} s (last state {status.status})",
                job_id=job_id,
                last_status=status.status,
            )
        delay = endpoint.poll.next_delay(delay, changed)
        yield Sleep(min(delay, left))


def wait_flow(
    endpoint: Endpoint, job_id: str, *, timeout: float | None, submitted_at: float | None = None
) -> Flow[JobStatus]:
    """Wait for a job's end. A job store that already holds the job's end answers without a request
    (RunPod forgets results 30 minutes after a job ends; the store does not). ``submitted_at`` (Unix
    time; the store's record knows it too) lets the client measure the time the job spent queued."""
    record: JobRecord | None = None
    if endpoint.has_store:
        record = yield StoreCall("find_job", (endpoint.base_url, job_id))
        if record is not None and record.final is not None and record.state in TERMINAL_STATES:
            status = JobStatus.parse(record.final, job_id)
            yield Emit(status)
            return status
    if timeout is None:
        timeout = (record.wait_s if record is not None else None) or (
            endpoint.worker_timeout_s + endpoint.cold_start_s
        )
    if record is not None and record.submitted_at is not None:
        submitted_at = record.submitted_at
    return (
        yield from watch_flow(endpoint, job_id, timeout=timeout, submitted_at=submitted_at, record=record)
    )


def submit_flow(
    endpoint: Endpoint,
    job_input: JobInput | Mapping[str, Any],
    *,
    webhook: str | None = None,
    s3_config: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Flow[JobHandle]:
    """``POST /run``: prepare the input (local files inline or uploaded), record the submission in the
    job store, send it once.

    A submission is sent again only when RunPod provably did not take it: the connection was refused
    or never made, or RunPod answered 429, 503 or 408 (see :mod:`.retry`). When the request went out
    and its answer was lost, RunPod may have queued the job; it has no idempotency key, so sending it
    again could run the job twice. The client raises SubmitUncertain instead (with the input's digest),
    and a job store marks the submission UNCERTAIN: identical input is then refused until the caller
    checks and submits with ``force=True``.

    With a job store, an input identical to one already pending or completed on this endpoint is not
    submitted again: the earlier job's handle comes back with ``reused=True`` (``force=True`` submits
    anyway). A failed, cancelled or timed-out earlier job does not block a new submission."""
    extras: dict[str, Any] = {}
    if webhook:
        extras["webhook"] = webhook
    if policy:
        extras["policy"] = dict(policy)
    reserve = len(encode_json({**extras, "input": {}})) + 1024
    prepared: PreparedInput = yield Blocking(
        prepare_input, (job_input, endpoint.uploads, endpoint.body_limit - reserve)
    )
    s3 = dict(s3_config) if s3_config is not None else prepared.s3_config
    body: dict[str, Any] = {"input": prepared.input, **extras}
    if s3:
        body["s3Config"] = s3
    request = endpoint.request("POST", "/run", body, idempotent=False, read_timeout=endpoint.submit_timeout)
    size = len(request.body or b"")
    if size > endpoint.body_limit:
        raise InputTooLarge(
            f"the request is {size} bytes, over RunPod's {endpoint.body_limit}-byte limit for /run; send "
            "large files as URLs (JobInput files with an InputStorage upload them)"
        )
    wait_s = default_wait(
        prepared.input, cold_start_s=endpoint.cold_start_s, worker_timeout_s=endpoint.worker_timeout_s
    )
    record: JobRecord | None = None
    if endpoint.has_store:
        claim = yield StoreCall("claim", (endpoint.base_url, prepared.digest, force, wait_s))
        if claim.existing:
            return _reused(endpoint, claim.record)
        record = claim.record
    try:
        answer = yield from call(request, endpoint.retry)
        data = checked(answer, request)
        job_id = data.get("id") if isinstance(data, Mapping) else None
        if not isinstance(job_id, str) or not job_id:
            raise RequestUncertain(
                f"POST /run answered without a job id: {str(data)[:200]}",
                operation=request.operation,
                status_code=answer.status,
            )
    except RequestUncertain as exc:
        if record is not None:
            record = replace(record, state=UNCERTAIN, error=exc.message, updated_at=time.time())
            yield StoreCall("save", (record,))
        raise SubmitUncertain(
            f"{exc.message}. The job may be queued; RunPod cannot tell without its id. Submit again with "
            "force=True once you know it is not running (or cancel jobs from the RunPod console)",
            input_digest=prepared.digest,
            record_id=record.record_id if record else None,
            operation=exc.operation,
            status_code=exc.status_code,
        ) from None
    except EndpointClientError:
        # Refused or never delivered: no job was made, so the input may be sent again later.
        if record is not None:
            yield StoreCall("delete", (record.record_id,))
        raise
    now = time.time()
    state = str(data.get("status") or IN_QUEUE)
    if record is not None:
        record = replace(record, job_id=job_id, state=state, submitted_at=now, updated_at=now)
        yield StoreCall("save", (record,))
    log.info("Submitted job %s to %s", job_id, endpoint.base_url)
    return JobHandle(
        id=job_id,
        endpoint=endpoint.base_url,
        input_digest=prepared.digest,
        status=state,
        submitted_at=now,
        wait_s=wait_s,
    )


def _reused(endpoint: Endpoint, record: JobRecord) -> JobHandle:
    if record.job_id is None or record.state in (SUBMITTING, UNCERTAIN):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created_at))
        if record.state == UNCERTAIN:
            why = f"its answer was lost ({record.error})" if record.error else "its answer was lost"
        else:
            why = "no job id was recorded: it is still in flight, or its process stopped mid-submission"
        raise SubmitUncertain(
            f"an identical input was submitted to {endpoint.base_url} at {since} and {why}; it may be "
            "queued. Submit with force=True once you know it is not running",
            input_digest=record.input_digest,
            record_id=record.record_id,
            operation="POST /run",
        )
    log.info("Input already submitted as job %s (%s); not submitting again", record.job_id, record.state)
    return handle_of(record)


JobRef = str | JobHandle


def job_id_of(job: JobRef) -> str:
    return job.id if isinstance(job, JobHandle) else str(job)


def wait_flow_for(endpoint: Endpoint, job: JobRef, timeout: float | None) -> Flow[JobStatus]:
    """:func:`wait_flow` for a job id or handle (whose default wait and submission time it uses)."""
    submitted_at = job.submitted_at if isinstance(job, JobHandle) and job.submitted_at else None
    return wait_flow(endpoint, job_id_of(job), timeout=wait_budget(job, timeout), submitted_at=submitted_at)


def wait_budget(job: JobRef, timeout: float | None) -> float | None:
    """The caller's timeout, else the handle's default wait (None: the flows decide)."""
    if timeout is not None:
        return timeout
    return job.wait_s if isinstance(job, JobHandle) else None


def raise_if_failed(status: JobStatus) -> None:
    """Raise the JobFailed subclass for a final status other than COMPLETED."""
    if status.status != COMPLETED:
        raise job_failure(status.raw or {"id": status.job_id, "status": status.status})


def handle_of(record: JobRecord) -> JobHandle:
    """A stored submission's handle (it must have a job id)."""
    assert record.job_id is not None
    return JobHandle(
        id=record.job_id,
        endpoint=record.endpoint,
        input_digest=record.input_digest,
        status=record.state,
        submitted_at=record.submitted_at or record.created_at,
        wait_s=record.wait_s,
        reused=True,
    )


def json_flow(endpoint: Endpoint, request: HttpRequest, *, job_id: str | None = None) -> Flow[Any]:
    answer = yield from call(request, endpoint.retry)
    return checked(answer, request, job_id=job_id)


def cancel_flow(endpoint: Endpoint, job_id: str) -> Flow[JobStatus]:
    """``POST /cancel/{id}``: safe to repeat, so retried like a read."""
    request = endpoint.request("POST", job_path("cancel", job_id))
    data = yield from json_flow(endpoint, request, job_id=job_id)
    status = JobStatus.parse(data if isinstance(data, Mapping) else {}, job_id)
    if endpoint.has_store:
        record = yield StoreCall("find_job", (endpoint.base_url, job_id))
        if record is not None and status.status and status.status != record.state:
            yield StoreCall("save", (record.moved_to(status),))
    return status


def retry_flow(endpoint: Endpoint, job_id: str) -> Flow[JobStatus]:
    """``POST /retry/{id}``: requeue a FAILED or TIMED_OUT job under the same id. Repeated only when
    RunPod provably did not act on it."""
    request = endpoint.request("POST", job_path("retry", job_id), idempotent=False)
    data = yield from json_flow(endpoint, request, job_id=job_id)
    status = JobStatus.parse(data if isinstance(data, Mapping) else {}, job_id)
    if endpoint.has_store:
        record = yield StoreCall("find_job", (endpoint.base_url, job_id))
        if record is not None:
            now = time.time()
            record = replace(
                record,
                state=status.status or IN_QUEUE,
                final=None,
                error=None,
                finished_at=None,
                submitted_at=now,
                updated_at=now,
            )
            yield StoreCall("save", (record,))
    return status


def health_flow(endpoint: Endpoint) -> Flow[EndpointHealth]:
    request = endpoint.request("GET", "/health")
    data = yield from json_flow(endpoint, request)
    return EndpointHealth.parse(data if isinstance(data, Mapping) else {})


def purge_queue_flow(endpoint: Endpoint) -> Flow[dict[str, Any]]:
    """``POST /purge-queue``: removes every queued job (not running ones). Not repeated when its answer
    is lost: a second purge could remove jobs queued in between."""
    request = endpoint.request("POST", "/purge-queue", idempotent=False)
    data = yield from json_flow(endpoint, request)
    return dict(data) if isinstance(data, Mapping) else {"answer": data}


__all__ = [
    "COLD_START_S",
    "RUNPOD_API",
    "WORKER_TIMEOUT_S",
    "AnswerLost",
    "Blocking",
    "Effect",
    "Emit",
    "Endpoint",
    "Flow",
    "HttpAnswer",
    "HttpRequest",
    "JobRef",
    "NotSent",
    "PollPolicy",
    "Send",
    "Sleep",
    "Stepper",
    "StoreCall",
    "call",
    "checked",
    "default_wait",
    "handle_of",
    "job_id_of",
    "raise_if_failed",
    "resolve_api_key",
    "resolve_base_url",
    "status_flow",
    "submit_flow",
    "wait_budget",
    "wait_flow",
    "wait_flow_for",
    "watch_flow",
]
