"""How a job's end becomes a typed exception: every error_type the README lists, RunPod's own states,
the local development server's bare sentences, and an exception that escaped the worker's handler."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from comfy_serverless.client import (
    ERROR_TYPES,
    ComfyUICrashed,
    DiskFull,
    ExecutionFailed,
    GpuFault,
    InputStagingFailed,
    InvalidInput,
    InvalidWorkflow,
    JobCancelled,
    JobFailed,
    JobTimedOut,
    OutOfMemory,
    OutputFailed,
    OutputTooLarge,
    WorkerUnavailable,
    WorkflowValidationFailed,
)
from comfy_serverless.client.errors import job_failure

README = Path(__file__).resolve().parents[2] / "README.md"

EXPECTED = {
    "invalid_input": InvalidInput,
    "invalid_workflow": InvalidWorkflow,
    "workflow_validation_failed": WorkflowValidationFailed,
    "execution_error": ExecutionFailed,
    "out_of_memory": OutOfMemory,
    "gpu_error": GpuFault,
    "disk_full": DiskFull,
    "timeout": JobTimedOut,
    "comfyui_unavailable": WorkerUnavailable,
    "comfyui_crashed": ComfyUICrashed,
    "input_upload_failed": InputStagingFailed,
    "output_error": OutputFailed,
    "output_too_large": OutputTooLarge,
}


def test_every_error_type_the_readme_lists_has_its_exception() -> None:
    sentence = re.search(r"`error_type` is one of (.+?)\.\n\n", README.read_text(), re.S)
    assert sentence is not None
    listed = set(re.findall(r"`([a-z_]+)`", sentence.group(1)))
    assert listed == set(ERROR_TYPES) == set(EXPECTED)


@pytest.mark.parametrize(("error_type", "cls"), sorted(EXPECTED.items()))
def test_a_failed_job_raises_the_class_of_its_error_type_with_what_the_worker_said(
    error_type: str, cls: type[JobFailed]
) -> None:
    # On RunPod the SDK moves `error` out of the handler's output; error_type and details stay in it.
    answer = {
        "id": "job-7",
        "status": "FAILED",
        "error": "something specific went wrong",
        "output": {"error_type": error_type, "details": {"node_id": "4"}},
    }
    failure = job_failure(answer)
    assert type(failure) is cls
    assert failure.job_id == "job-7" and failure.status == "FAILED"
    assert failure.error == "something specific went wrong" and failure.error_type == error_type
    assert failure.details == {"node_id": "4"}
    assert str(failure) == "job job-7: something specific went wrong"


def test_the_family_tree_lets_callers_catch_broad_kinds() -> None:
    assert issubclass(DiskFull, ExecutionFailed)
    assert issubclass(ComfyUICrashed, WorkerUnavailable)
    assert issubclass(OutputTooLarge, OutputFailed)
    assert all(issubclass(cls, JobFailed) for cls in EXPECTED.values())


def test_runpod_cancel_and_timeout_states_have_their_own_exceptions() -> None:
    cancelled = job_failure({"id": "j", "status": "CANCELLED"})
    timed_out = job_failure({"id": "j", "status": "TIMED_OUT"})
    assert isinstance(cancelled, JobCancelled) and cancelled.status == "CANCELLED"
    assert isinstance(timed_out, JobTimedOut) and timed_out.status == "TIMED_OUT"
    assert "execution timeout" in timed_out.error


@pytest.mark.parametrize(
    ("sentence", "cls"),
    [
        ("Invalid job input: images[2].image: Field required", InvalidInput),
        (
            "Invalid parameters for template ltx2_t2v: duration: Input should be less than or equal to 20",
            InvalidInput,
        ),
        (
            "ComfyUI rejected the workflow: node 4 (LoraLoader) input 'lora_name': model file …",
            WorkflowValidationFailed,
        ),
        ("ComfyUI rejected part of the workflow: node 9 …; nothing was returned", WorkflowValidationFailed),
        (
            "the workflow uses node types this ComfyUI does not have: node 12 ('VHS_VideoCombine')",
            InvalidWorkflow,
        ),
        ("Node 7 (KSampler) failed: RuntimeError: CUDA out of memory", ExecutionFailed),
        ("Node 7 (SaveImage) ran out of disk space: OSError: [Errno 28]", DiskFull),
        ("Job timed out after 300 s while ComfyUI was running node 12 (VAEDecode)", JobTimedOut),
        (
            "ComfyUI was killed by SIGKILL (often the kernel's out-of-memory killer) while running node 7",
            ComfyUICrashed,
        ),
        ("ComfyUI did not become ready within 600 s (COMFYUI_BOOT_TIMEOUT)", WorkerUnavailable),
        ("some sentence nobody planned for", JobFailed),
    ],
)
def test_the_local_server_keeps_only_the_sentence_and_its_opening_names_the_type(
    sentence: str, cls: type[JobFailed]
) -> None:
    failure = job_failure({"id": "test-1", "status": "FAILED", "error": sentence})
    assert type(failure) is cls
    assert failure.error == sentence


def test_an_exception_that_escaped_the_handler_is_reported_readably() -> None:
    crash = {
        "error_type": "<class 'KeyError'>",
        "error_message": "'prompt'",
        "error_traceback": "Traceback (most recent call last): ...",
        "hostname": "worker-3",
    }
    failure = job_failure({"id": "j", "status": "FAILED", "error": json.dumps(crash)})
    assert type(failure) is JobFailed and failure.error_type is None
    assert failure.error == "the worker's handler raised <class 'KeyError'>: 'prompt'"
    assert failure.details["traceback"].startswith("Traceback")
