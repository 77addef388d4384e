"""What a node's exception says about the machine: out of memory (worth freeing memory and trying the
prompt again), a broken GPU (the CUDA context is lost: nothing on this worker will run again), or
neither (the workflow's own failure).

ComfyUI reports the exception's full type name and message in ``execution_error``
(0.8.0 execution.py: ``full_type_name(typ)``, ``"{ex}\\n{tips}"``); the markers below are the texts
PyTorch and CUDA use for each case.
"""

from __future__ import annotations

from enum import StrEnum

from .events import ExecutionFailed


class FailureKind(StrEnum):
    OUT_OF_MEMORY = "out_of_memory"
    GPU_FAULT = "gpu_fault"
    OTHER = "other"


#: Exception types that always mean memory ran out (CUDA, ROCm and Apple GPUs, and the CPU).
_OOM_TYPES = frozenset(
    {
        "torch.OutOfMemoryError",
        "torch.cuda.OutOfMemoryError",
        "torch.mps.OutOfMemoryError",
        "MemoryError",
        "builtins.MemoryError",
    }
)

#: Messages of allocation failures raised as plain RuntimeErrors (older PyTorch, CPU tensors, ROCm, MPS).
_OOM_MARKERS = (
    "cuda out of memory",
    "hip out of memory",
    "mps backend out of memory",
    "allocation on device",
    "defaultcpuallocator: can't allocate memory",
    "cuda error: out of memory",
    "cublas_status_alloc_failed",
)

#: CUDA errors after which the device context is unusable: every later kernel fails the same way.
_GPU_FAULT_MARKERS = (
    "illegal memory access",
    "device-side assert triggered",
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction was encountered",
    "uncorrectable ecc error",
    "cudaerrorlaunchfailure",
    "cuda error: unknown error",
    "gpu has fallen off the bus",
)


def classify_failure(failure: ExecutionFailed | None) -> FailureKind:
    """Which kind of failure ComfyUI reported. A lost GPU wins over out-of-memory: CUDA sometimes
    reports an illegal access while it is also short of memory, and only a new worker mends that."""
    if failure is None:
        return FailureKind.OTHER
    text = f"{failure.exception_type}: {failure.exception_message}".lower()
    if any(marker in text for marker in _GPU_FAULT_MARKERS):
        return FailureKind.GPU_FAULT
    if failure.exception_type in _OOM_TYPES or any(marker in text for marker in _OOM_MARKERS):
        return FailureKind.OUT_OF_MEMORY
    return FailureKind.OTHER
