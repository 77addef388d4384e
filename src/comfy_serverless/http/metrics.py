"""Prometheus metrics of the HTTP service (``GET /metrics``), in a registry of the service's own.

| metric | type | meaning |
| --- | --- | --- |
| ``comfy_serverless_jobs_total{status}`` | counter | jobs that ended, by final state |
| ``comfy_serverless_jobs_submitted_total`` | counter | jobs accepted by ``/run`` and ``/runsync`` |
| ``comfy_serverless_jobs_rejected_total{reason}`` | counter | submissions refused: ``queue_full``, ``shutting_down`` |
| ``comfy_serverless_queue_depth`` | gauge | jobs waiting for a slot |
| ``comfy_serverless_jobs_running`` | gauge | jobs in a slot |
| ``comfy_serverless_job_duration_seconds{status}`` | histogram | run time of jobs that started |
| ``comfy_serverless_job_queue_wait_seconds`` | histogram | time from submission to start |
| ``comfy_serverless_comfyui_ready`` | gauge | 1 while ComfyUI takes prompts |
| ``comfy_serverless_comfyui_restarts_total`` | counter | ComfyUI starts after the first |
| ``comfy_serverless_webhook_deliveries_total{result}`` | counter | ``delivered``, ``rejected`` (a 4xx), ``refused`` (SSRF guard), ``failed`` (attempts spent) |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .jobs import FINAL_STATES, Status

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WEBHOOK_RESULTS = ("delivered", "rejected", "refused", "failed")
REJECT_REASONS = ("queue_full", "shutting_down")


# The ``*_created`` timestamps of every counter and histogram double the exposition and tell nothing a
# scraper needs (it sees restarts as resets).
disable_created_metrics()  # type: ignore[no-untyped-call]


class _Restarts(Collector):
    def __init__(self, restarts: Callable[[], int]):
        self.restarts = restarts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "comfy_serverless_comfyui_restarts",
            "ComfyUI starts after the first one (crashes, hangs, restarts)",
        )
        family.add_metric([], float(self.restarts()))
        yield family


class ServiceMetrics:
    """Every metric of one service. The callables are read at each scrape."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int],
        running: Callable[[], int],
        comfyui_ready: Callable[[], bool],
        comfyui_restarts: Callable[[], int],
    ):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.jobs = Counter(
            "comfy_serverless_jobs", "Jobs that ended, by final state", ["status"], registry=registry
        )
        self.submitted = Counter(
            "comfy_serverless_jobs_submitted", "Jobs accepted by /run and /runsync", registry=registry
        )
        self.rejected = Counter(
            "comfy_serverless_jobs_rejected", "Submissions refused, by reason", ["reason"], registry=registry
        )
        self.duration = Histogram(
            "comfy_serverless_job_duration_seconds",
            "Run time of jobs that started, by final state",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "comfy_serverless_job_queue_wait_seconds",
            "Time from submission to start",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.webhooks = Counter(
            "comfy_serverless_webhook_deliveries",
            "Webhook deliveries, by result",
            ["result"],
            registry=registry,
        )
        Gauge("comfy_serverless_queue_depth", "Jobs waiting for a slot", registry=registry).set_function(
            lambda: float(queue_depth())
        )
        Gauge("comfy_serverless_jobs_running", "Jobs in a slot", registry=registry).set_function(
            lambda: float(running())
        )
        Gauge(
            "comfy_serverless_comfyui_ready", "1 while ComfyUI takes prompts", registry=registry
        ).set_function(lambda: 1.0 if comfyui_ready() else 0.0)
        registry.register(_Restarts(comfyui_restarts))
        for status in FINAL_STATES:  # every state shows, 0 included
            self.jobs.labels(status.value)
        for result in WEBHOOK_RESULTS:
            self.webhooks.labels(result)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    # JobObserver
    def started(self, queue_wait_s: float) -> None:
        self.queue_wait.observe(queue_wait_s)

    def finished(self, status: Status, execution_s: float | None) -> None:
        self.jobs.labels(status.value).inc()
        if execution_s is not None:
            self.duration.labels(status.value).observe(execution_s)

    def webhook(self, result: str) -> None:
        self.webhooks.labels(result).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
