"""What every subcommand shares: exit codes, the one-line errors, JSON and text on stdout."""

from __future__ import annotations

import json
import re
import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

from ..client import (
    EndpointClientError,
    ExecutionFailed,
    InfrastructureError,
    InputStagingFailed,
    InputTooLarge,
    InvalidInput,
    InvalidWorkflow,
    JobCancelled,
    JobFailed,
    JobTimedOut,
    OutputDownloadFailed,
    OutputFailed,
    OutputIntegrityError,
    WaitTimeout,
    WorkerUnavailable,
    WorkflowValidationFailed,
)
from ..errors import JobError


class ExitCode(IntEnum):
    """The command's exit status, by what went wrong."""

    OK = 0
    #: Anything else: a file that cannot be read or written, an answer the command cannot use.
    ERROR = 1
    #: The command line is wrong (argparse's own code), or lacks an endpoint or API key.
    USAGE = 2
    #: The workflow or input is invalid: ``validate`` found problems, or the worker refused the job
    #: before running it (invalid_input, invalid_workflow, workflow_validation_failed).
    INVALID = 3
    #: The job failed while running (a node raised, the disk filled, its outputs could not be
    #: delivered or saved).
    FAILED = 4
    #: The job ran past its timeout, or the command stopped waiting for it (``--timeout``).
    TIMED_OUT = 5
    #: The job was cancelled.
    CANCELLED = 6
    #: The endpoint, the worker or ComfyUI could not be used: unreachable, refused API key, unknown
    #: endpoint or job, ComfyUI down or crashed.
    UNAVAILABLE = 7
    #: Interrupted with Ctrl-C (the job was cancelled).
    INTERRUPTED = 130


EXIT_CODES_TEXT = """\
exit codes:
  0    success (validate: the workflow is valid)
  1    any other error: a file that cannot be read or written
  2    usage: bad arguments, no endpoint or API key
  3    invalid workflow or input: validate found problems, or the worker refused the job
       (invalid_input, invalid_workflow, workflow_validation_failed)
  4    the job failed while running (execution_error, disk_full, output_error, ...) or its outputs
       could not be saved
  5    the job timed out, or --timeout passed first (the job goes on)
  6    the job was cancelled
  7    the endpoint, worker or ComfyUI is unavailable (connection, API key, unknown endpoint or job,
       comfyui_unavailable, comfyui_crashed)
  130  interrupted (Ctrl-C; run cancels its job first)"""


class CommandError(Exception):
    """A failure the command reports in one line, exiting with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR):
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an error of the client, the worker's own code, or the command."""
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, JobTimedOut | WaitTimeout):
        return ExitCode.TIMED_OUT
    if isinstance(exc, JobCancelled):
        return ExitCode.CANCELLED
    if isinstance(exc, InvalidInput | InvalidWorkflow | WorkflowValidationFailed | InputTooLarge | JobError):
        return ExitCode.INVALID
    if isinstance(exc, WorkerUnavailable):
        return ExitCode.UNAVAILABLE
    if isinstance(
        exc,
        ExecutionFailed | OutputFailed | InputStagingFailed | OutputDownloadFailed | OutputIntegrityError,
    ):
        return ExitCode.FAILED
    if isinstance(exc, JobFailed):
        return ExitCode.FAILED
    if isinstance(exc, InfrastructureError | EndpointClientError):
        return ExitCode.UNAVAILABLE
    return ExitCode.ERROR


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_fields(exc: BaseException) -> dict[str, Any]:
    """``error``, ``error_type`` and ``details`` of a failure, for ``--json``: the worker's error type
    when it said one, else the client's error class in snake case (``service_unavailable``,
    ``wait_timeout``, ...)."""
    if isinstance(exc, JobFailed):
        return {
            "error": exc.error,
            "error_type": exc.error_type or _snake(type(exc).__name__),
            "details": exc.details,
        }
    if isinstance(exc, CommandError):
        kinds = {ExitCode.USAGE: "usage", ExitCode.UNAVAILABLE: "unavailable"}
        return {"error": str(exc), "error_type": kinds.get(exc.code, "error")}
    if isinstance(exc, JobError):
        return {"error": exc.message, "error_type": exc.error_type, "details": exc.details}
    if isinstance(exc, EndpointClientError):
        fields: dict[str, Any] = {"error": exc.message, "error_type": _snake(type(exc).__name__)}
        if isinstance(exc, InfrastructureError) and exc.status_code is not None:
            fields["status_code"] = exc.status_code
        return fields
    return {"error": str(exc), "error_type": "error"}


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def write_json(value: Any) -> None:
    write(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def complain(message: str) -> None:
    sys.stderr.write(f"comfy-serverless: {message}\n")


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> int:
    complain(message)
    return int(code)


def read_json(path: str, what: str) -> Any:
    """A JSON file (``-`` for standard input); CommandError when it cannot be read or parsed."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what} {path} is not JSON: {exc}") from None
