"""The worker behaves the same on every ComfyUI it drives: 0.3.75 (real, in CI), 0.8.0 (emulated from
recordings) and the newer protocol (emulated, ~0.38). What differs is handled in comfy/ and shows
nowhere else."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tests.support.reference import workflow

from .helpers import assert_completed, assert_failed, decode_image, tiny

CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def comfyui_url(worker: Any) -> str:
    return f"http://127.0.0.1:{worker.env['COMFYUI_PORT']}"


def newer_only(backend: Any) -> None:
    if backend.name != "emulator-0.38":
        pytest.skip("behaviour of the newer ComfyUI protocol (emulator profile 0.38)")


def test_prompt_ids_are_canonical_uuids_that_newer_comfyui_accepts(worker) -> None:
    """Newer ComfyUI refuses any other prompt_id with 400 invalid_prompt_id (server.py@002c3fb9a5)."""
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert CANONICAL_UUID.fullmatch(output["prompt_id"]), output["prompt_id"]


def test_a_missing_node_reads_the_same_on_every_version(worker) -> None:
    job = {
        "workflow": {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "DoesNotExistNode", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
        }
    }
    assert_failed(
        worker.runsync(job),
        "ComfyUI rejected the workflow: node 2 uses class_type 'DoesNotExistNode', which this ComfyUI does "
        "not have (a custom node that is not installed?)",
    )


def test_repeated_and_interleaved_identical_jobs_all_return_their_outputs(make_worker, backend) -> None:
    """Newer ComfyUI caches by RAM pressure and keeps earlier prompts' results; 0.8.0 keeps only the
    last prompt's. Either way the job marker and per-job prefix make the save node run for each job."""
    settings = {} if backend.is_real else {"comfyui_args": "--cpu"}
    policies = [settings]
    if backend.name == "emulator-0.38":
        policies.append({"comfyui_args": "--cpu --cache-classic"})
    for policy in policies:
        worker = make_worker(**policy)
        first, other = tiny(color=0x112233), tiny(prefix="other", color=0x445566)
        for job in (first, first, other, first):
            (item,) = assert_completed(worker.runsync({"workflow": job}))["outputs"]
            assert decode_image(item).size == (64, 64)


def test_newer_comfyui_runs_without_its_assets_system_unless_asked(make_worker, backend) -> None:
    newer_only(backend)
    worker = make_worker()
    (item,) = assert_completed(worker.runsync({"workflow": tiny()}))["outputs"]
    assert requests.get(comfyui_url(worker) + "/features", timeout=10).json()["assets"] is False
    assert "--disable-assets" in worker.log_text()
    # What newer ComfyUI says of each file comes back to the caller.
    assert item["metadata"] == {"kind": "image", "width": 64, "height": 64}

    with_assets = make_worker(comfyui_enable_assets=True)
    (item,) = assert_completed(with_assets.runsync({"workflow": tiny()}))["outputs"]
    assert requests.get(comfyui_url(with_assets) + "/features", timeout=10).json()["assets"] is True
    assert decode_image(item).size == (64, 64) and "id" not in item and "preview_id" not in item


def test_newer_comfyui_cancels_through_its_jobs_route(make_worker, backend, faults) -> None:
    """/interrupt is refused here; a worker that used it would restart ComfyUI (see
    test_a_refused_interrupt_restarts_comfyui_at_once). /api/jobs/{id}/cancel stops the prompt."""
    newer_only(backend)
    faults.set(route_status={"/interrupt": 500})
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    assert_failed(
        worker.runsync({"workflow": workflow("long_chain"), "timeout": 2}), "Job timed out after 2 s"
    )
    assert_completed(worker.runsync({"workflow": tiny()}))
    log = worker.log_text()
    assert "cancels through /api/jobs/{id}/cancel" in log
    assert re.search(r"Abandoned prompt [0-9a-f-]{36} stopped", log)
    assert "Restarting ComfyUI" not in log


def test_a_broken_assets_database_is_reported_once_and_not_restarted_over_and_over(
    make_worker, backend, faults
) -> None:
    newer_only(backend)
    faults.set(assets_startup_failed="corrupt")
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_enable_assets=True)
    first = assert_failed(worker.runsync({"workflow": tiny()}), "ASSETS_STARTUP_FAILED: corrupt")
    assert "ComfyUI could not open its assets database" in first and "COMFYUI_ENABLE_ASSETS" in first
    second = assert_failed(worker.runsync({"workflow": tiny()}), "ASSETS_STARTUP_FAILED: corrupt")
    assert second == first
    assert worker.log_text().count("Starting ComfyUI:") == 1


def test_a_held_assets_database_is_retried_like_any_failed_start(make_worker, backend, faults) -> None:
    newer_only(backend)
    faults.set(assets_startup_failed="in_use")
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_enable_assets=True)
    assert_failed(worker.runsync({"workflow": tiny()}), "ASSETS_STARTUP_FAILED: in_use")
    faults.clear()
    assert_completed(worker.runsync({"workflow": tiny()}))
