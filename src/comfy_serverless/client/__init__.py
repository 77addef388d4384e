"""A Python client for a RunPod serverless endpoint running this worker.

>>> from comfy_serverless.client import EndpointClient, JobInput
>>> with EndpointClient("my-endpoint-id", store="jobs.db") as client:  # doctest: +SKIP
...     job = JobInput.from_workflow("workflow.json", files={"photo.png": "photo.png"})
...     result = client.run(job, on_progress=print)
...     result.save_all("out/")

:class:`EndpointClient` (blocking, ``requests``) and :class:`AsyncEndpointClient` (asyncio, aiohttp)
have the same methods: ``submit``, ``run``, ``wait``, ``status``, ``stream``, ``cancel``, ``retry``,
``health``, ``purge_queue``, ``pending`` and ``resume``. Both run the same logic (:mod:`.core`).
"""

from .aio import AsyncEndpointClient
from .core import PollPolicy
from .errors import (
    ERROR_TYPES,
    AuthenticationError,
    ComfyUICrashed,
    DiskFull,
    EndpointClientError,
    EndpointNotFound,
    ExecutionFailed,
    GpuFault,
    InfrastructureError,
    InputStagingFailed,
    InputTooLarge,
    InputUploadFailed,
    InvalidInput,
    InvalidWorkflow,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobTimedOut,
    OutOfMemory,
    OutputDownloadFailed,
    OutputFailed,
    OutputIntegrityError,
    OutputTooLarge,
    RequestRejected,
    RequestUncertain,
    ServiceUnavailable,
    SubmitUncertain,
    WaitTimeout,
    WorkerUnavailable,
    WorkflowValidationFailed,
)
from .inputs import InputStorage, JobInput
from .models import EndpointHealth, JobHandle, JobStatus, Progress
from .outputs import AsyncJobResult, AsyncOutput, JobResult, Output
from .retry import RetryPolicy
from .store import (
    AsyncJobStore,
    AsyncRedisJobStore,
    JobRecord,
    JobStore,
    RedisJobStore,
    SQLiteJobStore,
)
from .sync import EndpointClient

__all__ = [
    "ERROR_TYPES",
    "AsyncEndpointClient",
    "AsyncJobResult",
    "AsyncJobStore",
    "AsyncOutput",
    "AsyncRedisJobStore",
    "AuthenticationError",
    "ComfyUICrashed",
    "DiskFull",
    "EndpointClient",
    "EndpointClientError",
    "EndpointHealth",
    "EndpointNotFound",
    "ExecutionFailed",
    "GpuFault",
    "InfrastructureError",
    "InputStagingFailed",
    "InputStorage",
    "InputTooLarge",
    "InputUploadFailed",
    "InvalidInput",
    "InvalidWorkflow",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobInput",
    "JobNotFound",
    "JobRecord",
    "JobResult",
    "JobStatus",
    "JobStore",
    "JobTimedOut",
    "OutOfMemory",
    "Output",
    "OutputDownloadFailed",
    "OutputFailed",
    "OutputIntegrityError",
    "OutputTooLarge",
    "PollPolicy",
    "Progress",
    "RedisJobStore",
    "RequestRejected",
    "RequestUncertain",
    "RetryPolicy",
    "SQLiteJobStore",
    "ServiceUnavailable",
    "SubmitUncertain",
    "WaitTimeout",
    "WorkerUnavailable",
    "WorkflowValidationFailed",
]
