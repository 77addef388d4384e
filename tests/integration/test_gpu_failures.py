"""Out of memory and a lost GPU (emulator fault switches): the worker frees ComfyUI's memory and runs
the prompt once more, says so in the result, fails clearly when that is not enough, and asks RunPod to
replace it when CUDA reports an error nothing on this worker can mend."""

from __future__ import annotations

import time

import requests

from tests.support.worker_process import WorkerProcess

from .helpers import assert_completed, assert_failed, decode_image, tiny

INVERT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
}

ILLEGAL_ACCESS = (
    "CUDA error: an illegal memory access was encountered\n"
    "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace "
    "below might be incorrect."
)


def test_out_of_memory_frees_memory_and_the_retry_returns_the_outputs(
    make_worker, faults, emulator_only
) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    # The node runs out of memory until the worker asks ComfyUI to free it (POST /free).
    faults.set(oom_on_class="ImageInvert", oom_until_free=True)
    output = assert_completed(worker.runsync({"workflow": INVERT}))
    assert output["retried"] == {
        "reason": "out_of_memory",
        "node_id": "2",
        "node_type": "ImageInvert",
        "error": "torch.OutOfMemoryError: Allocation on device \nThis error means you ran out of memory on "
        "your GPU.\n\nTIPS: If the workflow worked before you might have accidentally set the batch_size "
        "to a large number.",
    }
    assert faults.read() == {}, "the worker must have sent POST /free before the retry"
    [image] = output["outputs"]
    assert image["node_id"] == "3"
    assert decode_image(image).getpixel((0, 0))[:3] == (255, 255, 255)  # black, inverted
    assert "ran out of memory; freeing ComfyUI's models and cache" in worker.log_text()
    # The job's files are gone from ComfyUI's disk, and both prompts from its history.
    assert [p for p in (worker.data_dir / "output").rglob("*") if p.is_file()] == []
    history_url = f"http://127.0.0.1:{worker.env['COMFYUI_PORT']}/history"
    deadline = time.monotonic() + 10
    while (history := requests.get(history_url, timeout=10).json()) and time.monotonic() < deadline:
        time.sleep(0.1)  # deleted in the background, just after the result
    assert history == {}


def test_out_of_memory_again_after_the_retry_fails_naming_the_node_and_the_next_job_runs(
    make_worker, faults, emulator_only
) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    faults.set(oom_on_class="ImageInvert")  # lasts: freeing memory does not help
    assert_failed(
        worker.runsync({"workflow": INVERT}),
        "Node 2 (ImageInvert) ran out of memory again after the worker freed ComfyUI's models and cache "
        "and ran it once more: torch.OutOfMemoryError: Allocation on device",
        "Lower the resolution, batch size or frame count, or use a GPU with more memory",
    )
    faults.clear()
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert "retried" not in output


def test_a_lost_gpu_fails_the_job_and_asks_runpod_to_replace_the_worker(
    backend, fake_runpod, faults, emulator_only, tmp_path
) -> None:
    env = backend.env(tmp_path / "data", comfy_emulator_faults_file=faults.path) | fake_runpod.env()
    worker = WorkerProcess(env, [])
    try:
        faults.set(
            raise_on_class={"ImageInvert": {"type": "torch.AcceleratorError", "message": ILLEGAL_ACCESS}}
        )
        fake_runpod.submit("gpu", {"workflow": INVERT})
        result = fake_runpod.result("gpu", timeout=120)
        assert result["error"].startswith(
            "Node 2 (ImageInvert) failed: torch.AcceleratorError: CUDA error: an illegal memory access "
            "was encountered"
        )
        assert result["error"].endswith("This GPU cannot run anything more; the worker asks to be replaced")
        assert result["output"]["error_type"] == "gpu_error"
        assert result["stopPod"] is True
        # Not retried: a lost GPU is no memory shortage.
        assert "ran out of memory" not in worker.log_text()
        # Where nobody replaces the worker, a fresh ComfyUI takes the next job.
        assert "Restarting ComfyUI: CUDA reported an unrecoverable error in node 2" in worker.log_text()
        fake_runpod.submit("next", {"workflow": tiny()})
        assert fake_runpod.result("next", timeout=120)["output"]["status"] == "success"
    finally:
        worker.stop()


def test_a_plain_node_error_is_neither_retried_nor_a_reason_to_replace_the_worker(
    backend, fake_runpod, faults, emulator_only, tmp_path
) -> None:
    env = backend.env(tmp_path / "data", comfy_emulator_faults_file=faults.path) | fake_runpod.env()
    worker = WorkerProcess(env, [])
    try:
        faults.set(raise_on_class={"ImageInvert": {"type": "ValueError", "message": "bad image"}})
        fake_runpod.submit("bad", {"workflow": INVERT})
        result = fake_runpod.result("bad", timeout=120)
        assert result["error"] == "Node 2 (ImageInvert) failed: ValueError: bad image"
        assert result["output"]["error_type"] == "execution_error"
        assert "stopPod" not in result
        assert "Restarting ComfyUI" not in worker.log_text()
    finally:
        worker.stop()
