"""The worker in production mode: RunPod's SDK job loop against a stand-in for RunPod's queue."""

from __future__ import annotations

from tests.support.reference import workflow
from tests.support.worker_process import WorkerProcess

from .helpers import tiny


def _upscale() -> dict:
    wf = workflow("progress_upscale")
    next(n for n in wf.values() if n["class_type"] == "UpscaleModelLoader")["inputs"]["model_name"] = (
        "tiny_2x.safetensors"
    )
    return wf


def test_progress_reports_arrive_before_the_result_and_name_node_and_step(
    backend, fake_runpod, tmp_path
) -> None:
    # The emulator replays long_chain's recorded 29 s; a fifth of it still spans dozens of reports.
    env = (
        backend.env(tmp_path / "data", progress_interval=0.05, comfy_emulator_time_scale=0.2)
        | fake_runpod.env()
    )
    worker = WorkerProcess(env, [])
    try:
        fake_runpod.submit("slow", {"workflow": workflow("long_chain")})
        result = fake_runpod.result("slow", timeout=300)
        assert result["output"]["status"] == "success", result
        posts = fake_runpod.posts_for("slow")
        assert posts[-1].is_progress is False, "no progress report may arrive after the result"
        progress = [p.payload["output"] for p in posts if p.is_progress]
        running = [p for p in progress if p.get("stage") == "running"]
        assert running, progress
        assert {p["class_type"] for p in running} >= {"ImageBlur"}
        assert all(p["nodes_total"] == 10 for p in running)
        assert running[-1]["nodes_done"] >= running[0]["nodes_done"]
        assert 0 <= running[0]["percent"] <= running[-1]["percent"] <= 100
    finally:
        worker.stop()


def test_step_progress_from_a_node_with_a_progress_bar(backend, fake_runpod, tmp_path) -> None:
    """15_progress_upscale: ImageUpscaleWithModel reports tiles as steps."""
    env = backend.env(tmp_path / "data", progress_interval=0) | fake_runpod.env()
    worker = WorkerProcess(env, [])
    try:
        fake_runpod.submit("up", {"workflow": _upscale()})
        result = fake_runpod.result("up", timeout=300)
        assert result["output"]["status"] == "success", result
        steps = [
            p
            for p in fake_runpod.progress("up")
            if p.get("class_type") == "ImageUpscaleWithModel" and p.get("steps")
        ]
        assert steps, fake_runpod.progress("up")
        assert all(1 <= p["step"] <= p["steps"] for p in steps)
    finally:
        worker.stop()


def test_failed_job_keeps_error_type_and_details_on_runpod(backend, fake_runpod, tmp_path) -> None:
    env = backend.env(tmp_path / "data") | fake_runpod.env()
    worker = WorkerProcess(env, [])
    try:
        fake_runpod.submit("bad", {"workflow": workflow("broken_value_not_in_list")})
        result = fake_runpod.result("bad", timeout=240)
        assert result["error"].startswith(
            "ComfyUI rejected the workflow: node 2 (ImageScale) input 'upscale_method'"
        )
        assert result["output"]["error_type"] == "workflow_validation_failed"
        assert result["output"]["details"]["node_errors"][0]["received_value"] == "magic"
        assert "stopPod" not in result
        fake_runpod.submit("good", {"workflow": tiny()})
        assert fake_runpod.result("good", timeout=60)["output"]["status"] == "success"
    finally:
        worker.stop()


def test_worker_asks_to_be_replaced_when_comfyui_keeps_failing_to_start(
    backend, fake_runpod, faults, tmp_path
) -> None:
    faults.set(boot_fail=True, boot_delay_s=2)  # the first job arrives during the first boot
    env = (
        backend.env(tmp_path / "data", comfyui_max_restarts=2, comfy_emulator_faults_file=faults.path)
        | fake_runpod.env()
    )
    worker = WorkerProcess(env, [])
    try:
        fake_runpod.submit("one", {"workflow": tiny()})
        first = fake_runpod.result("one", timeout=60)
        assert "ComfyUI exited with code 1 while starting" in first["error"]
        assert "stopPod" not in first
        fake_runpod.submit("two", {"workflow": tiny()})
        second = fake_runpod.result("two", timeout=60)
        assert "ComfyUI exited with code 1 while starting" in second["error"]
        assert second.get("stopPod") is True, second
    finally:
        worker.stop()
