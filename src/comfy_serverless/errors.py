"""The errors a job can end with.

Every failure a user can see is one of these, raised once with its cause. The message is one readable
sentence that already names the culprit (field, node, input or file), because RunPod's local API server
drops every key of a failed job except ``error``. ``details`` carries the structured rest.
"""

from __future__ import annotations

from typing import Any


def seconds_text(value: float) -> str:
    """Seconds as people write them: 3, 2.5, 10000000."""
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


def bytes_text(size: int) -> str:
    """A size as people read it: 812 bytes, 40.2 kB, 104.9 MB, 2.1 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale * 0.99995:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class JobError(Exception):
    """A job failed in a way the caller should hear about."""

    error_type = "job_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, refresh_worker: bool = False):
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.refresh_worker = refresh_worker

    def to_dict(self) -> dict[str, Any]:
        """The error as the job result shows it."""
        return {"error": self.message, "error_type": self.error_type, "details": self.details}


class InvalidInputError(JobError):
    """The job input is malformed: a field is missing, of the wrong type or has a bad value."""

    error_type = "invalid_input"


class WorkflowError(JobError):
    """The workflow cannot be sent to ComfyUI as given (shape, params, unsafe names)."""

    error_type = "invalid_workflow"


class WorkflowValidationError(JobError):
    """ComfyUI rejected the workflow when it was queued (HTTP 400 or node_errors)."""

    error_type = "workflow_validation_failed"


class ExecutionError(JobError):
    """A node raised an exception while ComfyUI ran the workflow."""

    error_type = "execution_error"


class OutOfMemoryError(ExecutionError):
    """A node ran out of GPU or CPU memory, also when the worker tried it again with memory freed."""

    error_type = "out_of_memory"


class GpuFaultError(ExecutionError):
    """CUDA reported an error that leaves the GPU unusable (illegal memory access, device-side assert):
    the worker asks to be replaced."""

    error_type = "gpu_error"


class DiskFullError(ExecutionError):
    """ComfyUI or the worker ran out of disk space."""

    error_type = "disk_full"


class JobTimeoutError(JobError):
    """The job ran past its timeout and was stopped."""

    error_type = "timeout"


class ComfyUnavailableError(JobError):
    """ComfyUI could not be started, did not become ready, or stopped answering."""

    error_type = "comfyui_unavailable"


class ComfyCrashedError(JobError):
    """The ComfyUI process died while the job ran."""

    error_type = "comfyui_crashed"


class InputStagingError(JobError):
    """An input file could not be handed to ComfyUI."""

    error_type = "input_upload_failed"


class OutputError(JobError):
    """Outputs were produced but could not be collected or delivered."""

    error_type = "output_error"


class OutputTooLargeError(OutputError):
    """The outputs do not fit in a RunPod result and no storage is configured."""

    error_type = "output_too_large"
