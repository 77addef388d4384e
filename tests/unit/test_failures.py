"""Which node failures the worker retries with memory freed, which make it ask to be replaced, and which
are the workflow's own (the texts PyTorch and CUDA print, as ComfyUI reports them)."""

from __future__ import annotations

import pytest

from comfy_serverless.comfy.events import ExecutionFailed
from comfy_serverless.comfy.failures import FailureKind, classify_failure


def _failure(exception_type: str, message: str) -> ExecutionFailed:
    return ExecutionFailed("p", "7", "KSampler", exception_type, message)


@pytest.mark.parametrize(
    ("exception_type", "message", "kind"),
    [
        (
            "torch.OutOfMemoryError",
            "Allocation on device \nThis error means you ran out of memory",
            "out_of_memory",
        ),
        ("torch.cuda.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory"),
        (
            "RuntimeError",
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 34359738368 bytes",
            "out_of_memory",
        ),
        ("RuntimeError", "MPS backend out of memory (MPS allocated: 17.00 GB)", "out_of_memory"),
        ("MemoryError", "", "out_of_memory"),
        ("torch.AcceleratorError", "CUDA error: an illegal memory access was encountered", "gpu_fault"),
        (
            "RuntimeError",
            "CUDA error: device-side assert triggered\nCompile with `TORCH_USE_CUDA_DSA`",
            "gpu_fault",
        ),
        ("RuntimeError", "CUDA error: unspecified launch failure", "gpu_fault"),
        # An illegal access reported while memory is also short is still a lost GPU.
        ("torch.OutOfMemoryError", "CUDA out of memory; CUDA error: an illegal memory access", "gpu_fault"),
        ("ValueError", "Expected image of 3 channels, got 4", "other"),
        ("RuntimeError", "mat1 and mat2 shapes cannot be multiplied (77x768 and 2048x320)", "other"),
    ],
)
def test_each_failure_is_classified_by_what_pytorch_said(
    exception_type: str, message: str, kind: str
) -> None:
    assert classify_failure(_failure(exception_type, message)) is FailureKind(kind)


def test_no_failure_details_is_not_a_machine_fault() -> None:
    assert classify_failure(None) is FailureKind.OTHER
