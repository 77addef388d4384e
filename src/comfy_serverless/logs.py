"""Logging set-up: every record carries the id of the job it belongs to (``-`` outside jobs)."""

from __future__ import annotations

import contextvars
import logging
import sys

job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")

_FORMAT = "%(asctime)s %(levelname)s [job %(job_id)s] %(name)s: %(message)s"


class JobIdFilter(logging.Filter):
    """Adds ``job_id`` to records from the current context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = job_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send the worker's logs to stderr with the job id in every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(JobIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # ComfyUI's own log lines are copied at DEBUG; keep the HTTP libraries quiet.
    for noisy in ("aiohttp.access", "botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
