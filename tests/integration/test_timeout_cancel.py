"""A job's timeout and a RunPod cancel both stop the prompt inside ComfyUI, and the next job runs."""

from __future__ import annotations

import time

from tests.support.reference import workflow
from tests.support.worker_process import WorkerProcess

from .helpers import assert_completed, assert_failed, tiny


def _long_chain_files(data_dir) -> list:
    return [p for p in (data_dir / "output").rglob("anchor_long*")]


def test_timeout_interrupts_the_prompt_and_the_next_job_runs(worker) -> None:
    error = assert_failed(
        worker.runsync({"workflow": workflow("long_chain"), "timeout": 3}),
        "Job timed out after 3 s while ComfyUI was running node ",
        "ImageBlur",
        "the prompt was interrupted in ComfyUI",
    )
    assert "step" not in error or "/" in error
    assert_completed(worker.runsync({"workflow": tiny()}))
    assert (
        "stopped" in worker.log_text().split("Job timed out")[-1] or "Abandoned prompt" in worker.log_text()
    )
    assert _long_chain_files(worker.data_dir) == []


def test_timeout_while_queued_removes_the_prompt_from_the_queue(worker) -> None:
    """A second job that times out while the first still runs is deleted from ComfyUI's queue before it
    starts (19_queue_delete_clear)."""
    import threading

    results: dict[str, dict] = {}
    first = threading.Thread(
        target=lambda: results.__setitem__(
            "long", worker.runsync({"workflow": workflow("long_chain"), "timeout": 6})
        )
    )
    first.start()
    time.sleep(1.0)
    queued = worker.runsync({"workflow": tiny(prefix="queued"), "timeout": 2})
    first.join(60)
    assert_failed(queued, "Job timed out after 2 s while queued in ComfyUI")
    assert_failed(results["long"], "Job timed out after 6 s")
    assert "removed from the queue before it ran" in worker.log_text()
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_runpod_cancel_stops_the_prompt_and_the_worker_takes_the_next_job(
    backend, fake_runpod, tmp_path
) -> None:
    env = backend.env(tmp_path / "data", progress_interval=0.2) | fake_runpod.env()
    worker = WorkerProcess(env, [])
    try:
        fake_runpod.submit("warm", {"workflow": tiny()})
        assert fake_runpod.result("warm", timeout=240).get("output", {}).get("status") == "success"
        fake_runpod.submit("long", {"workflow": workflow("long_chain")})
        deadline = time.monotonic() + 60
        while not any(p.get("stage") == "running" for p in fake_runpod.progress("long")):
            assert time.monotonic() < deadline, worker.log_text()
            time.sleep(0.1)
        fake_runpod.cancel("long")
        fake_runpod.submit("after", {"workflow": tiny()})
        after = fake_runpod.result("after", timeout=120)
        assert after["output"]["status"] == "success", after
        assert [p for p in fake_runpod.posts_for("long") if not p.is_progress] == []
        log = worker.log_text()
        assert "Job cancelled while ComfyUI was running node" in log
        assert "Abandoned prompt" in log
        assert _long_chain_files(tmp_path / "data") == []
    finally:
        worker.stop()


def test_a_refused_interrupt_restarts_comfyui_at_once(make_worker, faults) -> None:
    """ComfyUI answering /interrupt with an error cannot stop the prompt; waiting out a 10-minute
    COMFYUI_INTERRUPT_GRACE would hold up the next job, so ComfyUI is restarted straight away."""
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_interrupt_grace=600)
    assert_completed(worker.runsync({"workflow": tiny()}))  # booted: the routes it offers are known
    # Refused on both ways to stop a prompt: /api/jobs/{id}/cancel (newer) and /interrupt (0.8.0).
    faults.set(hang_on_class="ImageBlur", route_status={"/interrupt": 500, "/api/jobs": 500})
    assert_failed(
        worker.runsync({"workflow": workflow("long_chain"), "timeout": 2}), "Job timed out after 2 s"
    )
    # The faults stay: the drain's /interrupt may come after this reply, and a tiny workflow has no
    # ImageBlur. Without the restart this job would wait out the 600 s grace.
    assert_completed(worker.runsync({"workflow": tiny()}, timeout=120))
    log = worker.log_text()
    assert "ComfyUI refused to stop abandoned prompt" in log and "HTTP 500" in log
    assert "Restarting ComfyUI: it refused to stop prompt" in log
