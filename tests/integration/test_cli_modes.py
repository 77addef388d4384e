"""RunPod's own ways of running a worker locally work unchanged: --test_input and test_input.json."""

from __future__ import annotations

import json

import pytest

from tests.support.worker_process import WorkerProcess

from .helpers import tiny

pytestmark = pytest.mark.usefixtures("emulator_only")


def test_test_input_flag_runs_one_job_and_exits(backend, tmp_path) -> None:
    worker = WorkerProcess(
        backend.env(tmp_path / "data"), ["--test_input", json.dumps({"input": {"workflow": tiny()}})]
    )
    try:
        assert worker.wait_exit(120) == 0, worker.log_text()
        assert "completed successfully" in worker.log_text()
    finally:
        worker.stop()


def test_test_input_json_in_the_working_directory(backend, tmp_path) -> None:
    (tmp_path / "test_input.json").write_text(json.dumps({"input": {"workflow": tiny()}}))
    worker = WorkerProcess(backend.env(tmp_path / "data"), [], cwd=tmp_path)
    try:
        assert worker.wait_exit(120) == 0, worker.log_text()
    finally:
        worker.stop()


def test_failing_test_input_exits_non_zero_with_the_error(backend, tmp_path) -> None:
    worker = WorkerProcess(
        backend.env(tmp_path / "data"), ["--test_input", json.dumps({"input": {"workflow": {"1": {}}}})]
    )
    try:
        assert worker.wait_exit(120) == 1
        assert "workflow node '1' has no class_type" in worker.log_text()
    finally:
        worker.stop()


def test_comfyui_child_does_not_outlive_the_worker(backend, tmp_path) -> None:
    import requests

    worker = WorkerProcess(
        backend.env(tmp_path / "data"), ["--test_input", json.dumps({"input": {"workflow": tiny()}})]
    )
    port = worker.env["COMFYUI_PORT"]
    assert worker.wait_exit(120) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/system_stats", timeout=2)
