"""What the endpoint answers, as objects: a job's status (with the worker's progress), a submitted
job's handle, the endpoint's health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"

#: States a job never leaves.
TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Progress:
    """The worker's progress snapshot (``/status``'s ``output`` while the job runs): ``stage`` is
    ``waiting_for_comfyui``, ``queued`` or ``running``; the rest is set while running."""

    stage: str
    node_id: str | None = None
    class_type: str | None = None
    step: int | None = None
    steps: int | None = None
    nodes_done: int | None = None
    nodes_total: int | None = None
    percent: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, output: Any) -> Progress | None:
        """The snapshot in a running job's ``output``; None when it holds none."""
        if not isinstance(output, Mapping) or not isinstance(output.get("stage"), str):
            return None
        node_id = output.get("node_id")
        return cls(
            stage=output["stage"],
            node_id=str(node_id) if node_id is not None else None,
            class_type=_str(output.get("class_type")),
            step=_int(output.get("step")),
            steps=_int(output.get("steps")),
            nodes_done=_int(output.get("nodes_done")),
            nodes_total=_int(output.get("nodes_total")),
            percent=_number(output.get("percent")),
            raw=dict(output),
        )

    def __str__(self) -> str:
        if self.stage != "running":
            return self.stage.replace("_", " ")
        where = f"node {self.node_id} ({self.class_type})" if self.node_id else "running"
        step = f", step {self.step}/{self.steps}" if self.step is not None and self.steps else ""
        percent = f", {self.percent:g}%" if self.percent is not None else ""
        return f"{where}{step}{percent}"


@dataclass(frozen=True)
class JobStatus:
    """One ``/status`` answer.

    ``delay_ms`` and ``execution_ms`` are RunPod's ``delayTime`` (time in the queue, a cold start
    included) and ``executionTime``. ``observed_queue_s`` is the client's own measure of the time the
    job spent ``IN_QUEUE`` (from its submission to the first answer that was not ``IN_QUEUE``; None
    while it still is, or when the client never saw it queued), ``observed_s`` the time since its
    submission; both are set by the client's waiting loop, None on a lone :meth:`status` call."""

    job_id: str
    status: str
    output: Any = None
    error: str | None = None
    delay_ms: float | None = None
    execution_ms: float | None = None
    worker_id: str | None = None
    progress: Progress | None = None
    observed_queue_s: float | None = None
    observed_s: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, answer: Mapping[str, Any], job_id: str | None = None) -> JobStatus:
        status = str(answer.get("status") or "")
        output = answer.get("output")
        error = answer.get("error")
        return cls(
            job_id=str(answer.get("id") or job_id or ""),
            status=status,
            output=output,
            error=error if isinstance(error, str) else None,
            delay_ms=_number(answer.get("delayTime")),
            execution_ms=_number(answer.get("executionTime")),
            worker_id=_str(answer.get("workerId")),
            progress=Progress.parse(output) if status not in TERMINAL_STATES else None,
            raw=dict(answer),
        )

    @property
    def done(self) -> bool:
        """The job ended (completed, failed, cancelled or timed out)."""
        return self.status in TERMINAL_STATES

    @property
    def queued(self) -> bool:
        return self.status == IN_QUEUE


@dataclass(frozen=True)
class JobHandle:
    """A submitted job. ``reused`` is True when a job store returned an earlier job with the same input
    instead of submitting again; ``input_digest`` identifies the input (sha256 of its canonical JSON);
    ``wait_s`` is the default time to wait for it (the job's timeout plus a cold start)."""

    id: str
    endpoint: str
    input_digest: str
    status: str = IN_QUEUE
    submitted_at: float = 0.0
    wait_s: float | None = None
    reused: bool = False

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class EndpointHealth:
    """``/health``: job counts (``inQueue``, ``inProgress``, ``completed``, ``failed``, ``retried``) and
    worker counts (``idle``, ``running``, ``ready``, ``initializing``, ``throttled``, ``unhealthy``)."""

    jobs: dict[str, int]
    workers: dict[str, int]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> EndpointHealth:
        def counts(value: Any) -> dict[str, int]:
            if not isinstance(value, Mapping):
                return {}
            return {str(k): v for k, v in value.items() if _int(v) is not None}

        return cls(jobs=counts(answer.get("jobs")), workers=counts(answer.get("workers")), raw=dict(answer))

    @property
    def warm_workers(self) -> int:
        """Workers up and able to take a job now (idle, ready or running)."""
        return sum(self.workers.get(name, 0) for name in ("idle", "ready", "running"))

    @property
    def cold_start_likely(self) -> bool:
        """No worker is up: the next job waits for one to boot (often a minute or two)."""
        return self.warm_workers == 0


__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "IN_QUEUE",
    "TERMINAL_STATES",
    "TIMED_OUT",
    "EndpointHealth",
    "JobHandle",
    "JobStatus",
    "Progress",
]
