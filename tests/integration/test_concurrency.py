"""CONCURRENCY: RunPod's SDK hands the worker that many jobs at once (its concurrency_modifier). The next
job is taken and prepared while ComfyUI runs the current one, and outputs never mix between jobs."""

from __future__ import annotations

import pytest

from tests.support.worker_process import WorkerProcess

from .helpers import decode_image, tiny

SLOW_INVERT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
}


@pytest.mark.parametrize("concurrency", [1, 2])
def test_the_next_job_is_taken_while_comfyui_runs_the_current_one_only_above_concurrency_1(
    backend, fake_runpod, faults, emulator_only, tmp_path, concurrency
) -> None:
    env = (
        backend.env(tmp_path / "data", comfy_emulator_faults_file=faults.path, concurrency=concurrency)
        | fake_runpod.env()
    )
    worker = WorkerProcess(env, [])
    try:
        faults.set(node_delay_s={"ImageInvert": 2})
        fake_runpod.submit("slow", {"workflow": SLOW_INVERT})
        fake_runpod.submit("next", {"workflow": tiny("next")})
        assert fake_runpod.result("slow", timeout=120)["output"]["status"] == "success"
        assert fake_runpod.result("next", timeout=120)["output"]["status"] == "success"
        slow_done = next(p.at for p in fake_runpod.posts_for("slow") if not p.is_progress)
        assert (fake_runpod.taken_at("next") < slow_done) is (concurrency == 2), fake_runpod.taken
    finally:
        worker.stop()


def test_concurrent_jobs_each_get_their_own_outputs(backend, fake_runpod, emulator_only, tmp_path) -> None:
    env = backend.env(tmp_path / "data", concurrency=3) | fake_runpod.env()
    worker = WorkerProcess(env, [])
    colors = {f"job{i}": (i * 30, 255 - i * 30, i * 17) for i in range(8)}
    try:
        for job_id, (r, g, b) in colors.items():
            fake_runpod.submit(
                job_id, {"workflow": tiny(job_id, width=32 + len(job_id), color=r << 16 | g << 8 | b)}
            )
        for job_id, rgb in colors.items():
            result = fake_runpod.result(job_id, timeout=120)
            assert "outputs" in result.get("output", {}), result
            [image] = result["output"]["outputs"]
            assert image["filename"].startswith(f"{job_id}_"), (job_id, image["filename"])
            decoded = decode_image(image)
            assert decoded.getpixel((0, 0))[:3] == rgb
        taken = [job_id for _, job_id in fake_runpod.taken]
        assert sorted(taken) == sorted(colors)
    finally:
        worker.stop()
