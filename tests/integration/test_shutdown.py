"""Worker shutdown: ComfyUI is asked to stop (SIGTERM), not left to the kernel's SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from comfy_serverless.settings import Settings
from comfy_serverless.worker import Worker

from .conftest import Backend


def test_stop_from_atexit_still_terminates_comfyui(backend: Backend, tmp_path: Path) -> None:
    env = backend.env(tmp_path, log_level="WARNING")
    worker = Worker(Settings(**{key.lower(): value for key, value in env.items()}))
    worker.start()
    try:
        worker.wait_ready(180)
        assert worker.supervisor is not None and worker.supervisor.process is not None
        comfy = worker.supervisor.process.popen
        # The worker stops from an atexit handler. By then interpreter exit has closed the thread
        # pools (on Python 3.12, in the image); shutting the loop's default executor down is the same.
        asyncio.run_coroutine_threadsafe(worker.loop.shutdown_default_executor(), worker.loop).result(10)
    finally:
        worker.stop()
    assert comfy.poll() is not None, "ComfyUI must be stopped by the worker, not orphaned"
    # SIGTERM (Python's default death) or a clean exit after it: not the PDEATHSIG SIGKILL.
    assert comfy.returncode in (0, -signal.SIGTERM), comfy.returncode
