"""Everything the client raises, and how a failed job or an HTTP answer becomes one of them.

Three families, all under :class:`EndpointClientError`:

- :class:`JobFailed`: the job ran (or was queued) and ended without a result. One subclass per
  ``error_type`` the worker reports (see the README's "Errors and progress"), plus RunPod's own ends
  (``CANCELLED``, ``TIMED_OUT``). Each carries the job id, the worker's one-sentence ``error``, its
  ``error_type`` and ``details``.
- :class:`InfrastructureError`: the endpoint could not be used (refused credentials, unknown endpoint
  or job, HTTP errors or lost connections that outlasted the retries, a request whose fate is unknown).
- Errors of the caller's own side: :class:`WaitTimeout` (the client stopped waiting; the job may still
  run), :class:`InputTooLarge`, :class:`InputUploadFailed`, :class:`OutputIntegrityError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


class EndpointClientError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, job_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.job_id = job_id


# --- jobs ------------------------------------------------------------------------------------------


class JobFailed(EndpointClientError):
    """A job ended without a result.

    ``status`` is RunPod's final state (``FAILED``, ``CANCELLED``, ``TIMED_OUT``); ``error`` the worker's
    sentence; ``error_type`` one of the worker's error types (None when nobody said, e.g. RunPod's own
    timeout); ``details`` the structured rest; ``raw`` the whole ``/status`` answer."""

    error_types: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        status: str = "FAILED",
        error_type: str | None = None,
        details: Mapping[str, Any] | None = None,
        raw: Mapping[str, Any] | None = None,
    ):
        super().__init__(message, job_id=job_id)
        self.status = status
        self.error = message
        self.error_type = error_type
        self.details: dict[str, Any] = dict(details or {})
        self.raw: dict[str, Any] = dict(raw or {})

    def __str__(self) -> str:
        prefix = f"job {self.job_id}: " if self.job_id else ""
        return prefix + self.message


class InvalidInput(JobFailed):
    """The job input was refused: a missing or malformed field, a bad template parameter, an input
    file that does not fit its name."""

    error_types = ("invalid_input",)


class InvalidWorkflow(JobFailed):
    """The workflow cannot be sent to ComfyUI as given (its shape, ``params`` naming an unknown node,
    node classes this ComfyUI lacks)."""

    error_types = ("invalid_workflow",)


class WorkflowValidationFailed(JobFailed):
    """ComfyUI rejected the workflow when it was queued (a missing model, a value out of range)."""

    error_types = ("workflow_validation_failed",)


class ExecutionFailed(JobFailed):
    """A node raised while ComfyUI ran the workflow."""

    error_types = ("execution_error",)


class OutOfMemory(ExecutionFailed):
    """A node ran out of GPU or CPU memory, also on the worker's one retry with ComfyUI's models and
    cache freed: the workflow needs less memory (resolution, batch size, frames) or a larger GPU."""

    error_types = ("out_of_memory",)


class DiskFull(ExecutionFailed):
    """ComfyUI or the worker ran out of disk space."""

    error_types = ("disk_full",)


class InputStagingFailed(JobFailed):
    """The worker could not fetch or store an input file (an unreachable URL, a storage error)."""

    error_types = ("input_upload_failed",)


class OutputFailed(JobFailed):
    """Outputs were made but could not be delivered (an upload to storage failed)."""

    error_types = ("output_error",)


class OutputTooLarge(OutputFailed):
    """The outputs do not fit in a RunPod result and the worker has no storage to upload them to."""

    error_types = ("output_too_large",)


class JobTimedOut(JobFailed):
    """The job ran past its timeout: the worker's own (``error_type`` ``timeout``) or RunPod's execution
    timeout (status ``TIMED_OUT``)."""

    error_types = ("timeout",)


class JobCancelled(JobFailed):
    """The job was cancelled (status ``CANCELLED``)."""


class WorkerUnavailable(JobFailed):
    """The worker's ComfyUI could not be started or stopped answering. Usually worth retrying: the
    worker restarts ComfyUI, or RunPod replaces the worker."""

    error_types = ("comfyui_unavailable",)


class ComfyUICrashed(WorkerUnavailable):
    """The ComfyUI process died while the job ran (often out of memory)."""

    error_types = ("comfyui_crashed",)


class GpuFault(WorkerUnavailable):
    """CUDA reported an error that leaves the worker's GPU unusable (illegal memory access,
    device-side assert); the worker asked RunPod to replace it, so a retry runs elsewhere."""

    error_types = ("gpu_error",)


_JOB_ERRORS: dict[str, type[JobFailed]] = {
    error_type: cls
    for cls in (
        InvalidInput,
        InvalidWorkflow,
        WorkflowValidationFailed,
        ExecutionFailed,
        OutOfMemory,
        DiskFull,
        InputStagingFailed,
        OutputFailed,
        OutputTooLarge,
        JobTimedOut,
        WorkerUnavailable,
        ComfyUICrashed,
        GpuFault,
    )
    for error_type in cls.error_types
}

#: Every error_type the worker reports, and the exception each becomes.
ERROR_TYPES: Mapping[str, type[JobFailed]] = _JOB_ERRORS

# RunPod's local development server keeps only a failed job's ``error`` sentence; these are the
# worker's own openings for the types a caller most often handles (README "Errors and progress").
_MESSAGE_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Invalid (job input|parameters for template)\b"), "invalid_input"),
    (re.compile(r"^ComfyUI rejected (part of )?the workflow\b"), "workflow_validation_failed"),
    (re.compile(r"^the workflow uses node types this ComfyUI does not have\b"), "invalid_workflow"),
    (re.compile(r"^Job timed out after\b"), "timeout"),
    (re.compile(r"^Node \S+ \(.*\) ran out of disk space\b"), "disk_full"),
    (re.compile(r"^Node \S+ \(.*\) failed:"), "execution_error"),
    (re.compile(r"^ComfyUI (was killed|exited|was restarted)\b"), "comfyui_crashed"),
    (
        re.compile(r"^ComfyUI (did not become ready|failed to start|stopped answering)\b"),
        "comfyui_unavailable",
    ),
)


def guess_error_type(message: str) -> str | None:
    """The worker's error type from its sentence alone, for servers that drop ``error_type`` (RunPod's
    local development server); None when the sentence does not say."""
    for pattern, error_type in _MESSAGE_TYPES:
        if pattern.search(message):
            return error_type
    return None


def _sdk_crash(error: str) -> dict[str, Any] | None:
    """RunPod's SDK reports an exception that escaped the handler as a JSON string with
    ``error_type``, ``error_message`` and ``error_traceback``; the decoded object, else None."""
    if not error.startswith("{"):
        return None
    try:
        decoded = json.loads(error)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) and "error_message" in decoded else None


def job_failure(answer: Mapping[str, Any]) -> JobFailed:
    """The exception for a ``/status`` answer in a final state other than ``COMPLETED``."""
    job_id = str(answer.get("id") or "") or None
    status = str(answer.get("status") or "FAILED")
    output = answer.get("output")
    output = output if isinstance(output, Mapping) else {}
    error = answer.get("error") or output.get("error")
    message = error if isinstance(error, str) and error.strip() else ""
    details = output.get("details")
    details = dict(details) if isinstance(details, Mapping) else {}
    error_type = output.get("error_type") if isinstance(output.get("error_type"), str) else None
    if status == "CANCELLED":
        return JobCancelled(
            message or "the job was cancelled", job_id=job_id, status=status, details=details, raw=answer
        )
    if status == "TIMED_OUT":
        return JobTimedOut(
            message or "RunPod stopped the job at the endpoint's execution timeout (TIMED_OUT)",
            job_id=job_id,
            status=status,
            error_type=error_type,
            details=details,
            raw=answer,
        )
    crash = _sdk_crash(message)
    if crash is not None:
        # Not one of the worker's errors: an exception escaped its handler.
        message = f"the worker's handler raised {crash.get('error_type')}: {crash.get('error_message')}"
        details = {**details, "traceback": crash.get("error_traceback"), "hostname": crash.get("hostname")}
        error_type = None
    elif error_type is None and message:
        error_type = guess_error_type(message)
    cls = _JOB_ERRORS.get(error_type or "", JobFailed)
    return cls(
        message or f"the job ended {status} without an error message",
        job_id=job_id,
        status=status,
        error_type=error_type,
        details=details,
        raw=answer,
    )


def failure_from_record(job_id: str, state: str, error: Mapping[str, Any]) -> JobFailed:
    """The exception a job store's recorded failure stands for (see :func:`failure_record`)."""
    return job_failure({"id": job_id, "status": state, "error": error.get("error"), "output": error})


def failure_record(exc: JobFailed) -> dict[str, Any]:
    """What a job store keeps of a failure: enough for :func:`failure_from_record`."""
    return {"error": exc.error, "error_type": exc.error_type, "details": exc.details}


# --- infrastructure --------------------------------------------------------------------------------


class InfrastructureError(EndpointClientError):
    """The endpoint could not be used. ``status_code`` is the last HTTP status (None when no answer
    came), ``operation`` the request (e.g. ``POST /run``), ``answer`` RunPod's error text if any."""

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status_code: int | None = None,
        answer: str | None = None,
        job_id: str | None = None,
    ):
        super().__init__(message, job_id=job_id)
        self.operation = operation
        self.status_code = status_code
        self.answer = answer


class AuthenticationError(InfrastructureError):
    """RunPod refused the API key (HTTP 401 or 403)."""


class EndpointNotFound(InfrastructureError):
    """The endpoint id (or the server's route) does not exist (HTTP 404)."""


class JobNotFound(InfrastructureError):
    """RunPod does not know the job: a wrong id, or its result expired (30 minutes after a ``/run``
    job ends)."""


class RequestRejected(InfrastructureError):
    """RunPod refused the request itself (HTTP 400, 413 for a body over its size limit, 422)."""


class ServiceUnavailable(InfrastructureError):
    """The endpoint kept answering 429 or 5xx, or could not be reached, for longer than the retry
    policy allows."""


class RequestUncertain(InfrastructureError):
    """A request that must not be repeated blindly (it changes state on RunPod) was sent, but its
    answer was lost: it may or may not have taken effect."""


class SubmitUncertain(RequestUncertain):
    """A job submission was sent but its answer was lost (a dropped connection, a read timeout, a 5xx
    from a gateway after RunPod may have queued it). RunPod has no idempotency key, so submitting again
    could run the job twice: the client does not. ``input_digest`` identifies the input; with a job
    store the submission is recorded as ``UNCERTAIN`` and an identical input is refused until the
    caller decides (``submit(..., force=True)``)."""

    def __init__(self, message: str, *, input_digest: str, record_id: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.input_digest = input_digest
        self.record_id = record_id


class OutputDownloadFailed(InfrastructureError):
    """An uploaded output could not be downloaded (an expired presigned URL, storage errors)."""


# --- the caller's side -----------------------------------------------------------------------------


class WaitTimeout(EndpointClientError, TimeoutError):
    """The client stopped waiting for a job that had not ended. The job goes on (cancel it, or wait
    again); ``last_status`` is the last state seen."""

    def __init__(self, message: str, *, job_id: str, last_status: str | None):
        super().__init__(message, job_id=job_id)
        self.last_status = last_status


class InputTooLarge(EndpointClientError):
    """The request would pass RunPod's size limit and no storage was given to upload files to."""


class InputUploadFailed(EndpointClientError):
    """An input file could not be uploaded to the caller's bucket."""


class OutputIntegrityError(EndpointClientError):
    """An output's bytes do not match the size or sha256 the worker reported (a corrupted or truncated
    download). Nothing is written."""


__all__ = [
    "ERROR_TYPES",
    "AuthenticationError",
    "ComfyUICrashed",
    "DiskFull",
    "EndpointClientError",
    "EndpointNotFound",
    "ExecutionFailed",
    "InfrastructureError",
    "InputStagingFailed",
    "InputTooLarge",
    "InputUploadFailed",
    "InvalidInput",
    "InvalidWorkflow",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "JobTimedOut",
    "OutputDownloadFailed",
    "OutputFailed",
    "OutputIntegrityError",
    "OutputTooLarge",
    "RequestRejected",
    "RequestUncertain",
    "ServiceUnavailable",
    "SubmitUncertain",
    "WaitTimeout",
    "WorkerUnavailable",
    "WorkflowValidationFailed",
    "failure_from_record",
    "failure_record",
    "guess_error_type",
    "job_failure",
]
