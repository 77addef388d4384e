"""One job never sees another job's files; after delivery nothing of a job stays on disk or in
ComfyUI's history, over many jobs."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.support.reference import workflow

from .helpers import assert_completed, assert_failed, assert_rgb_close, png_b64, tiny


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _comfy_history(worker) -> dict:
    port = worker.env["COMFYUI_PORT"]
    return requests.get(f"http://127.0.0.1:{port}/history", timeout=10).json()


def _load_invert(name: str) -> dict:
    wf = workflow("load_invert")
    next(n for n in wf.values() if n["class_type"] == "LoadImage")["inputs"]["image"] = name
    return wf


def test_inputs_and_outputs_are_removed_after_delivery(worker) -> None:
    job = {"workflow": _load_invert("private.png"), "images": [{"name": "private.png", "image": png_b64()}]}
    output = assert_completed(worker.runsync(job))
    assert output["outputs"]
    for kind in ("input", "output", "temp"):
        assert _files_under(worker.data_dir / kind) == [], kind


def test_a_later_job_cannot_load_an_earlier_jobs_upload(worker) -> None:
    first = {"workflow": _load_invert("secret.png"), "images": [{"name": "secret.png", "image": png_b64()}]}
    assert_completed(worker.runsync(first))
    assert_failed(
        worker.runsync({"workflow": _load_invert("secret.png")}),
        "node 1 (LoadImage) input 'image'",
        "secret.png",
    )


def test_a_job_cannot_reach_into_another_jobs_folder_by_name(worker) -> None:
    """Even naming the per-job folder layout explicitly finds nothing: it was removed with the job."""
    assert_completed(worker.runsync({"workflow": tiny(prefix="mine")}))
    assert_failed(
        worker.runsync({"workflow": _load_invert("mine_00001_.png [output]")}), "node 1 (LoadImage)"
    )


def test_disk_and_history_do_not_grow_over_many_jobs(worker) -> None:
    for index in range(60):
        job = {
            "workflow": _load_invert(f"in{index}.png"),
            "images": [{"name": f"in{index}.png", "image": png_b64()}],
        }
        assert_completed(worker.runsync(job))
    for kind in ("input", "output", "temp"):
        assert _files_under(worker.data_dir / kind) == [], kind
    # The history entry is deleted after the result is delivered (off the job's own time), so the last
    # job's may still be on its way out: allow it a moment, then nothing may be left.
    deadline = time.monotonic() + 10
    while _comfy_history(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _comfy_history(worker) == {}


def test_two_jobs_with_the_same_input_name_each_get_their_own_file(worker) -> None:
    red = {
        "workflow": _load_invert("same.png"),
        "images": [{"name": "same.png", "image": png_b64(color=(255, 0, 0))}],
    }
    blue = {
        "workflow": _load_invert("same.png"),
        "images": [{"name": "same.png", "image": png_b64(color=(0, 0, 255))}],
    }
    import base64
    import io

    from PIL import Image

    def first_pixel(answer: dict) -> tuple:
        data = base64.b64decode(assert_completed(answer)["outputs"][0]["data"])
        return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))

    assert_rgb_close(first_pixel(worker.runsync(red)), (0, 255, 255))
    assert_rgb_close(first_pixel(worker.runsync(blue)), (255, 255, 0))


def test_concurrent_jobs_with_the_same_input_name_do_not_mix(worker) -> None:
    """RunPod's local server runs /runsync requests concurrently: both jobs are in ComfyUI at once."""
    import base64
    import io
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    colors = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (10, 20, 30)]

    def run(color: tuple[int, int, int]) -> tuple[int, ...]:
        job = {
            "workflow": _load_invert("same.png"),
            "images": [{"name": "same.png", "image": png_b64(color=color)}],
        }
        data = base64.b64decode(assert_completed(worker.runsync(job))["outputs"][0]["data"])
        return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))

    with ThreadPoolExecutor(len(colors)) as pool:
        results = list(pool.map(run, colors))
    for color, pixel in zip(colors, results, strict=True):
        assert_rgb_close(pixel, tuple(255 - c for c in color))
