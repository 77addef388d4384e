"""Server-sent events of a job's progress. The snapshots are the ones the RunPod handler sends to
RunPod's ``/status``, throttled the same way (:class:`~..progress.ProgressThrottle`); the HTTP service
shows them in ``/status``, ``/stream`` and ``/jobs/{id}/events``.
"""

from __future__ import annotations

#: Sent on an idle event stream so proxies keep the connection open.
KEEP_ALIVE = b": keep-alive\n\n"


def sse_event(event_id: int, event: str, data: str) -> bytes:
    """One server-sent event. ``data`` is compact JSON: one line, as the format needs."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def last_event_id(header: str | None) -> int:
    """The ``Last-Event-ID`` a reconnecting client sends (0 when absent or not ours)."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0
