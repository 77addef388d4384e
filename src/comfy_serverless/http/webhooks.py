"""Webhooks: a finished job's answer POSTed to the URL the job named, signed, retried, and held to the
SSRF guard of URL inputs.

The body is exactly what ``GET /status/{id}`` answers for the finished job. Headers:

- ``X-Comfy-Serverless-Timestamp``: Unix time in seconds when this attempt was signed;
- ``X-Comfy-Serverless-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with WEBHOOK_SECRET,
  of the timestamp, a ``.``, and the raw body bytes (only with WEBHOOK_SECRET set);
- ``X-Comfy-Serverless-Job-Id``: the job's id.

A 2xx answer ends the delivery; so does any other answer below 500 but 408 and 429 (the receiver
refused it: sending it again would not help). Connection failures, timeouts, 408, 429 and 5xx are
retried, WEBHOOK_ATTEMPTS times in all, 1 s after the first attempt and doubling (at most 60 s).
Redirects are not followed. The URL must reach a public address, as URL inputs must
(ALLOW_PRIVATE_INPUT_URLS and INPUT_URL_ALLOWED_HOSTS apply): it is checked when the job is submitted
and again, address by address, at each attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import aiohttp

from ..errors import InvalidInputError
from ..media.inputs import InputFetcher, InputRefused, shown_url
from ..settings import Settings

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Comfy-Serverless-Timestamp"
SIGNATURE_HEADER = "X-Comfy-Serverless-Signature"
JOB_ID_HEADER = "X-Comfy-Serverless-Job-Id"
#: Seconds one attempt may take, connecting included.
ATTEMPT_TIMEOUT = 10.0
MAX_DELAY = 60.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookSender:
    """Delivers webhooks in the background of the service's event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_result: Callable[[str], None] | None = None,
        base_delay: float = 1.0,
    ):
        self.attempts = settings.webhook_attempts
        self.base_delay = base_delay
        self.on_result = on_result
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret is not None else ""
        self._secret = secret.encode("utf-8") if secret else None
        self.fetcher = InputFetcher(
            limit=1,
            timeout=ATTEMPT_TIMEOUT,
            allow_private=settings.allow_private_input_urls,
            allowed_hosts=settings.input_url_allowed_hosts,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def signed(self) -> bool:
        return self._secret is not None

    async def check(self, url: str) -> None:
        """Refuse a URL the guard would not let the service reach (InvalidInputError naming ``webhook``)."""
        await self.fetcher.check_endpoint(url, "webhook")

    def deliver(self, job_id: str, url: str, body: bytes) -> None:
        """Start delivering ``body`` to ``url`` in the background."""
        task = asyncio.get_running_loop().create_task(self._deliver(job_id, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report(self, result: str) -> None:
        if self.on_result is not None:
            self.on_result(result)

    def headers(self, job_id: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, JOB_ID_HEADER: job_id}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return headers

    async def _deliver(self, job_id: str, url: str, body: bytes) -> None:
        shown = shown_url(url)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                await self.fetcher.check_endpoint(url, "webhook")
                async with self.fetcher.session.post(
                    url,
                    data=body,
                    headers=self.headers(job_id, body),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT),
                ) as response:
                    status = response.status
            except InvalidInputError as exc:
                log.warning("Webhook of job %s not sent: %s", job_id, exc.message)
                self._report("refused")
                return
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if isinstance(exc.__cause__, InputRefused):
                    log.warning("Webhook of job %s not sent to %s: %s", job_id, shown, exc.__cause__)
                    self._report("refused")
                    return
                problem = str(exc) or type(exc).__name__
            else:
                if 200 <= status < 300:
                    log.info("Webhook of job %s delivered to %s (HTTP %d)", job_id, shown, status)
                    self._report("delivered")
                    return
                if status < 500 and status not in (408, 429):
                    log.warning("Webhook of job %s refused by %s: HTTP %d", job_id, shown, status)
                    self._report("rejected")
                    return
                problem = f"HTTP {status}"
            if attempt < self.attempts:
                delay = min(MAX_DELAY, self.base_delay * 2 ** (attempt - 1))
                log.info(
                    "Webhook of job %s to %s: attempt %d of %d failed (%s); next in %g s",
                    job_id,
                    shown,
                    attempt,
                    self.attempts,
                    problem,
                    delay,
                )
                await asyncio.sleep(delay)
        log.warning(
            "Webhook of job %s to %s failed after %d attempt(s): %s", job_id, shown, self.attempts, problem
        )
        self._report("failed")

    async def wait(self, seconds: float) -> None:
        """Give deliveries in flight up to ``seconds``, then cancel them."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=seconds)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d webhook delivery(ies) cancelled at shutdown", len(late))
                await asyncio.wait(late)

    async def close(self) -> None:
        await self.wait(0)
        await self.fetcher.close()
