"""ComfyUI's own log stays free of errors across ordinary jobs.

The worker quotes ComfyUI's last log lines when ComfyUI crashes; errors logged by every healthy prompt
would push the lines that matter out of that report.
"""

from __future__ import annotations

import time

from .helpers import assert_completed, tiny


def test_ordinary_jobs_leave_no_traceback_in_comfyuis_log(make_worker) -> None:
    worker = make_worker()  # its own worker: the shared one's log holds other tests' failing jobs
    for _ in range(3):
        assert_completed(worker.runsync({"workflow": tiny()}))
    time.sleep(1)  # SQLAlchemy's connection clean-up ran up to a few hundred ms after each prompt
    comfy_lines = [line for line in worker.log_text().splitlines() if " comfyui: " in line]
    assert comfy_lines, "the worker logs ComfyUI's output at DEBUG level"
    assert not [line for line in comfy_lines if "Traceback" in line or "Exception" in line], "\n".join(
        comfy_lines
    )
