"""Fault injection (emulator only): ComfyUI crashes, hangs, drops its socket, fills the disk or fails to
boot. Each ends in a clear error, and the worker recovers before the next job."""

from __future__ import annotations

import time

from .helpers import assert_completed, assert_failed, tiny

INVERT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
}


def test_crash_mid_job_fails_fast_with_log_and_the_worker_restarts_comfyui(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    assert_completed(worker.runsync({"workflow": tiny()}))
    faults.set(crash_on_class="ImageInvert", crash_once=True)
    started = time.monotonic()
    error = assert_failed(
        worker.runsync({"workflow": INVERT}),
        "ComfyUI exited with code",
        "while running node 2",
        "Last ComfyUI log lines",
    )
    assert time.monotonic() - started < 30, "the job must fail within seconds, not sit out a timeout"
    assert "Restarting ComfyUI" in worker.log_text()
    output = assert_completed(worker.runsync({"workflow": INVERT}))
    assert output["outputs"][0]["type"] == "image"
    assert error


def test_repeated_crashes_each_recover(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    for _ in range(3):
        faults.set(crash_on_class="ImageInvert", crash_once=True)
        assert_failed(worker.runsync({"workflow": INVERT}), "ComfyUI exited")
        assert_completed(worker.runsync({"workflow": tiny()}))


def test_hung_node_times_out_and_comfyui_is_restarted(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_interrupt_grace=1)
    faults.set(hang_on_class="ImageInvert")
    assert_failed(
        worker.runsync({"workflow": INVERT, "timeout": 2}),
        "Job timed out after 2 s while ComfyUI was running node 2 (ImageInvert)",
    )
    faults.clear()
    assert_completed(worker.runsync({"workflow": INVERT}))
    assert "did not stop within 1 s of being interrupted" in worker.log_text()


def test_frozen_comfyui_process_is_restarted(make_worker, faults) -> None:
    """The whole ComfyUI process stops answering (event loop blocked): HTTP times out too."""
    worker = make_worker(
        comfy_emulator_faults_file=faults.path, comfyui_interrupt_grace=1, comfyui_request_timeout=2
    )
    faults.set(hang_event_loop_on_class="ImageInvert")
    assert_failed(worker.runsync({"workflow": INVERT, "timeout": 3}), "Job timed out after 3 s")
    faults.clear()
    assert_completed(worker.runsync({"workflow": tiny()}))
    assert "Restarting ComfyUI" in worker.log_text()


def test_socket_drop_mid_job_still_returns_the_outputs(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    assert_completed(worker.runsync({"workflow": tiny()}))
    faults.set(drop_ws_after_messages=4)
    output = assert_completed(worker.runsync({"workflow": INVERT}))
    assert output["outputs"][0]["type"] == "image"
    assert "WebSocket to ComfyUI dropped with 1 prompt(s) in flight" in worker.log_text()
    assert_completed(worker.runsync({"workflow": tiny()}))
    assert "WebSocket to ComfyUI reconnected" in worker.log_text()


def test_socket_refused_after_drop_falls_back_to_history(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    assert_completed(worker.runsync({"workflow": tiny()}))
    faults.set(drop_ws_after_messages=3, refuse_ws_s=4)
    output = assert_completed(worker.runsync({"workflow": INVERT, "timeout": 30}))
    assert output["outputs"][0]["type"] == "image"


def test_disk_full_while_saving_is_a_clear_error_and_the_next_job_succeeds(make_worker, faults) -> None:
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    faults.set(disk_full=True)
    assert_failed(
        worker.runsync({"workflow": tiny()}),
        "Node 2 (SaveImage) ran out of disk space",
        "No space left on device",
    )
    faults.clear()
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_failed_boot_fails_the_job_at_once_with_the_log_then_recovers(make_worker, faults) -> None:
    faults.set(boot_fail_times=1, boot_delay_s=3)  # the job arrives while ComfyUI is still starting
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_boot_timeout=120)
    started = time.monotonic()
    assert_failed(
        worker.runsync({"workflow": tiny()}), "ComfyUI exited with code 1 while starting", "RuntimeError"
    )
    assert time.monotonic() - started < 60, "must not sit out COMFYUI_BOOT_TIMEOUT"
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_slow_boot_makes_the_first_job_wait_then_succeed(make_worker, faults) -> None:
    faults.set(boot_delay_s=3)
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert output["timings"]["comfyui_wait_ms"] > 0


def test_boot_timeout_is_reported_with_its_setting(make_worker, faults) -> None:
    faults.set(boot_delay_s=30)
    worker = make_worker(comfy_emulator_faults_file=faults.path, comfyui_boot_timeout=2)
    assert_failed(
        worker.runsync({"workflow": tiny()}), "did not become ready within 2 s", "COMFYUI_BOOT_TIMEOUT"
    )


def test_job_timeout_while_comfyui_is_still_starting(make_worker, faults) -> None:
    faults.set(boot_delay_s=6)
    worker = make_worker(comfy_emulator_faults_file=faults.path)
    assert_failed(
        worker.runsync({"workflow": tiny(), "timeout": 1}),
        "Job timed out after 1 s while waiting for ComfyUI to start",
    )
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_port_already_taken_is_reported(make_worker, backend, tmp_path) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        worker = make_worker(comfyui_port=port)
        assert_failed(
            worker.runsync({"workflow": tiny()}), f"port {port} on 127.0.0.1 is already taken", "COMFYUI_PORT"
        )
