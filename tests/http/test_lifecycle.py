"""The service's life: where it may listen, results that expire, ComfyUI restarts and failures seen in
/ready, /health and /metrics, and the drain on SIGTERM (each with a service of its own, emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from comfy_serverless.http.auth import BindRefused, check_bind
from comfy_serverless.settings import Settings
from tests.support.faults import Faults
from tests.support.worker_process import REPO

from .conftest import SETTING_NAMES, Service, blur_chain, parse_events, tiny

StartService = Callable[..., Service]


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
    return subprocess.run(
        [sys.executable, "-m", "comfy_serverless.cli", "serve", *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_public_address_without_a_token_is_refused() -> None:
    result = _serve("--host", "0.0.0.0", "--port", "8123")
    assert result.returncode == 2
    assert result.stderr == (
        "comfy-serverless: refusing to serve on 0.0.0.0 without a token: anyone who can reach it could run "
        "jobs. Set HTTP_TOKEN (callers then send 'Authorization: Bearer <token>'), or HTTP_ALLOW_PUBLIC=true "
        "when a proxy of your own checks callers, or listen on 127.0.0.1\n"
    )
    assert result.stdout == ""
    # HTTP_HOST is the default address, and held to the same rule.
    from_setting = _serve(HTTP_HOST="::")
    assert from_setting.returncode == 2
    assert from_setting.stderr.startswith("comfy-serverless: refusing to serve on :: without a token")
    for host in ("192.0.2.10", "10.0.0.5", "gpu-box.internal", "::ffff:127.0.0.1x"):
        with pytest.raises(BindRefused):
            check_bind(host, Settings())


def test_loopback_a_token_or_an_explicit_allowance_may_listen() -> None:
    bare = Settings()
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, bare)
    check_bind("0.0.0.0", Settings(http_token="secret-token"))
    check_bind("0.0.0.0", Settings(http_allow_public=True))
    with pytest.raises(BindRefused):
        check_bind("0.0.0.0", Settings(http_token=""))  # an empty token is no token


def test_results_expire_after_the_ttl_with_their_files(make_service: StartService) -> None:
    service = make_service(http_result_ttl=1)
    answer = service.runsync({"workflow": tiny()})
    assert answer["status"] == "COMPLETED"
    stored = service.data_dir / "http-results" / f"{answer['id']}.json"
    assert stored.is_file() and service.status(answer["id"]) == answer
    deadline = time.monotonic() + 10
    while service.get(f"/status/{answer['id']}").status_code == 200:
        assert time.monotonic() < deadline, "the result outlived HTTP_RESULT_TTL"
        time.sleep(0.1)
    gone = service.get(f"/status/{answer['id']}")
    assert gone.status_code == 404
    assert gone.json() == {
        "error": f"job {answer['id']} is unknown: a wrong id, or it ended more than HTTP_RESULT_TTL (1 s) ago"
    }
    assert not stored.exists()
    assert list((service.data_dir / "http-results").iterdir()) == []


def test_a_comfyui_crash_fails_the_job_and_the_restart_is_counted(
    make_service: StartService, tmp_path: Path
) -> None:
    faults = Faults(tmp_path / "faults.json")
    service = make_service(comfy_emulator_faults_file=faults.path)
    faults.set(crash_on_class="ImageInvert", crash_once=True)
    workflow = tiny()
    workflow["3"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    workflow["2"]["inputs"]["images"] = ["3", 0]
    crashed = service.runsync({"workflow": workflow})
    assert crashed["status"] == "FAILED" and crashed["output"]["error_type"] == "comfyui_crashed"
    assert service.runsync({"workflow": tiny()})["status"] == "COMPLETED"
    assert service.get("/health").json()["comfyui"] == {"ready": True, "restarts": 1}
    metrics = service.get("/metrics").text.splitlines()
    assert "comfy_serverless_comfyui_restarts_total 1.0" in metrics
    assert 'comfy_serverless_jobs_total{status="FAILED"} 1.0' in metrics


def test_comfyui_that_cannot_start_shows_in_ready_and_health(
    make_service: StartService, tmp_path: Path
) -> None:
    faults = Faults(tmp_path / "faults.json")
    faults.set(boot_fail=True)
    service = make_service(wait=False, comfy_emulator_faults_file=faults.path, comfyui_max_restarts=1)
    deadline = time.monotonic() + 60
    while True:
        try:
            ready = requests.get(service.url + "/ready", timeout=5)
        except requests.ConnectionError:
            ready = None
        if ready is not None and ready.json().get("reason", "").startswith("ComfyUI failed to start"):
            break
        assert time.monotonic() < deadline, service.log_text()
        time.sleep(0.1)
    assert ready.status_code == 503
    assert ready.json() == {
        "ready": False,
        "reason": "ComfyUI failed to start (1 time(s) in a row); the next job tries again",
    }
    failed = service.runsync({"workflow": tiny()})
    assert failed["status"] == "FAILED" and failed["output"]["error_type"] == "comfyui_unavailable"
    assert failed["error"].startswith(
        "ComfyUI failed to start 1 times in a row; this worker is being replaced"
    )
    # RunPod would replace this worker (refresh_worker); here an orchestrator sees it in /ready and /health.
    assert service.get("/ready").json() == {"ready": False, "reason": failed["error"]}
    assert service.get("/health").json()["workers"]["unhealthy"] == 1


def _collect_events(service: Service, job_id: str) -> tuple[threading.Thread, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def read() -> None:
        with service.get(f"/jobs/{job_id}/events", stream=True, timeout=120) as response:
            events.extend(parse_events(response))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, events


def _comfyui_answers(service: Service) -> bool:
    try:
        requests.get(service.comfyui_url + "/system_stats", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_sigterm_finishes_the_running_job_refuses_new_ones_and_stops_comfyui(
    make_service: StartService,
) -> None:
    service = make_service(http_shutdown_grace=60, progress_interval=0.05)
    running = service.run({"workflow": blur_chain(4)})
    service.wait_running(running, "ImageBlur")
    queued = service.run({"workflow": tiny()})
    reader, events = _collect_events(service, running)
    service.terminate()
    service.wait_log("Shutting down: no new jobs; 1 queued job(s) cancelled, 1 running job(s) get up to 60 s")
    refused = service.post("/run", json={"input": {"workflow": tiny()}})
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "5")
    assert refused.json() == {"error": "the service is shutting down and takes no new jobs"}
    assert service.get("/ready").json() == {"ready": False, "reason": "the service is shutting down"}
    cancelled = service.status(queued)
    assert (cancelled["status"], cancelled["error"]) == (
        "CANCELLED",
        "cancelled: the service is shutting down",
    )
    assert service.wait_exit(60) == 0
    reader.join(10)
    assert events[-1]["event"] == "result" and events[-1]["data"]["status"] == "COMPLETED"
    assert len(events[-1]["data"]["output"]["outputs"]) == 1
    assert not _comfyui_answers(service)
    log = service.log_text()
    assert "ComfyUI and the worker core stopped" in log
    assert log.index(f"Job {running} ended COMPLETED") < log.index("ComfyUI and the worker core stopped")


def test_sigterm_cancels_a_job_that_outlasts_the_grace(make_service: StartService) -> None:
    service = make_service(http_shutdown_grace=1, progress_interval=0.05)
    running = service.run({"workflow": blur_chain(12, prefix="outlasting")})
    service.wait_running(running, "ImageBlur")
    reader, events = _collect_events(service, running)
    time.sleep(0.2)
    stopped_at = time.monotonic()
    service.terminate()
    assert service.wait_exit(60) == 0
    assert time.monotonic() - stopped_at < 20
    reader.join(10)
    final = events[-1]["data"]
    assert (final["status"], final["error"]) == (
        "CANCELLED",
        "cancelled: the service shut down before the job finished (HTTP_SHUTDOWN_GRACE = 1 s)",
    )
    log = service.log_text()
    assert f"Job {running} did not finish within the shutdown grace; cancelling it" in log
    assert "Job cancelled while ComfyUI was running node" in log
    assert not list((service.data_dir / "output").rglob("outlasting*"))
    assert not _comfyui_answers(service)


def test_a_second_sigterm_cancels_at_once(make_service: StartService) -> None:
    service = make_service(http_shutdown_grace=120)
    running = service.run({"workflow": blur_chain(12)})
    service.wait_running(running, "ImageBlur")
    stopped_at = time.monotonic()
    service.terminate()
    service.wait_log("Shutting down: no new jobs")
    service.terminate()
    assert service.wait_exit(60) == 0
    assert time.monotonic() - stopped_at < 15  # not the 120 s grace, nor the job's 8 s
    log = service.log_text()
    assert "Second stop signal: cancelling what still runs" in log
    assert (
        f"Job {running} cancelled: cancelled: the service was stopped before the shutdown grace ended" in log
    )
    assert not _comfyui_answers(service)
