"""Every route of the HTTP service, against the emulator and (with COMFYUI_DIR) a real ComfyUI, through
one shared service: RunPod's answer shapes and states, progress as server-sent events, cancel (ComfyUI
interrupted), timeouts, the bounded queue, templates and metrics."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from comfy_serverless.settings import SHIPPED_TEMPLATES
from comfy_serverless.workflows.templates import TemplateCatalog
from tests.support.worker_process import REPO

from .conftest import Service, backend_params, blur_chain, decode_png, parse_events, rgb, start_service, tiny

QUEUE_SIZE = 2


@pytest.fixture(scope="module", params=backend_params())
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    instance = start_service(
        request.param,
        tmp_path_factory.mktemp(f"routes-{request.param}"),
        http_queue_size=QUEUE_SIZE,
        progress_interval=0,
    )
    try:
        yield instance
    finally:
        instance.stop()


def metric_samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = service.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def assert_completed_tiny(answer: dict[str, Any], color: int, width: int = 16) -> None:
    assert set(answer) == {"id", "status", "output", "delayTime", "executionTime"}
    assert answer["status"] == "COMPLETED"
    assert isinstance(answer["delayTime"], int) and answer["delayTime"] >= 0
    assert isinstance(answer["executionTime"], int) and answer["executionTime"] > 0
    output = answer["output"]
    assert output["status"] == "success"
    [item] = output["outputs"]
    assert (item["node_id"], item["type"], item["mime"]) == ("2", "image", "image/png")
    image = decode_png(item)
    assert image.size == (width, 8)
    assert all(
        abs(a - b) <= 1 for a, b in zip(image.convert("RGB").getpixel((0, 0)), rgb(color), strict=True)
    )


def test_ready_health_docs_and_openapi(service: Service) -> None:
    assert service.get("/ready").json() == {"ready": True}
    health = service.get("/health").json()
    assert health["workers"] == {
        "idle": 1,
        "initializing": 0,
        "ready": 0,
        "running": 0,
        "throttled": 0,
        "unhealthy": 0,
    }
    assert health["comfyui"] == {"ready": True, "restarts": 0}
    assert health["acceptingJobs"] is True
    assert set(health["jobs"]) == {"completed", "failed", "cancelled", "inProgress", "inQueue", "retried"}
    docs = service.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    paths = service.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/run",
        "/runsync",
        "/status/{job_id}",
        "/stream/{job_id}",
        "/cancel/{job_id}",
        "/purge-queue",
        "/jobs/{job_id}/events",
        "/health",
        "/templates",
        "/templates/{name}",
        "/metrics",
        "/ready",
    }
    assert "wait" in [p["name"] for p in paths["/runsync"]["post"]["parameters"]]


def test_runsync_answers_the_handlers_result_in_runpods_shape(service: Service) -> None:
    before = service.get("/health").json()["jobs"]["completed"]
    color = 0x3366CC
    answer = service.runsync({"workflow": tiny(color=color, width=24)})
    assert_completed_tiny(answer, color, width=24)
    assert re.fullmatch(r"tiny_\d{5}_\.png", answer["output"]["outputs"][0]["filename"])
    assert service.get("/health").json()["jobs"]["completed"] == before + 1
    # The answer stays readable under its id.
    assert service.status(answer["id"]) == answer


def test_run_then_status_and_stream(service: Service) -> None:
    color = 0x80FF10
    response = service.post("/run", json={"input": {"workflow": tiny(color=color)}})
    assert response.status_code == 200
    submitted = response.json()
    assert set(submitted) == {"id", "status"} and submitted["status"] == "IN_QUEUE"
    answer = service.wait_status(submitted["id"], "COMPLETED", "FAILED")
    assert_completed_tiny(answer, color)
    assert answer["id"] == submitted["id"]
    # RunPod's /stream answers what is new: the output once, then nothing more.
    first = service.post(f"/stream/{submitted['id']}").json()
    assert first["status"] == "COMPLETED" and first["id"] == submitted["id"]
    assert first["stream"][-1] == {"output": answer["output"]}
    assert all(set(item) == {"output"} for item in first["stream"])
    again = service.get(f"/stream/{submitted['id']}").json()
    assert again["stream"] == [] and again["status"] == "COMPLETED"


def test_runsync_wait_answers_in_progress_then_status_has_the_result(service: Service) -> None:
    response = service.post("/runsync", params={"wait": 300}, json={"input": {"workflow": blur_chain(3)}})
    assert response.status_code == 200
    early = response.json()
    assert early["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert "executionTime" not in early and "error" not in early
    final = service.wait_status(early["id"], "COMPLETED", "FAILED", timeout=120)
    assert final["status"] == "COMPLETED", final
    [item] = final["output"]["outputs"]
    assert decode_png(item).size == (768, 768)
    # A wait the job fits in gives the whole answer at once.
    whole = service.post("/runsync", params={"wait": 60000}, json={"input": {"workflow": tiny()}}).json()
    assert whole["status"] == "COMPLETED"


def test_events_stream_progress_in_order_then_the_result(service: Service) -> None:
    job_id = service.run({"workflow": blur_chain(3)})
    with service.get(f"/jobs/{job_id}/events", stream=True, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_events(response)
    *progress, result = events
    assert [event["event"] for event in progress] == ["progress"] * len(progress)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert result["event"] == "result"
    assert result["data"] == service.status(job_id)
    assert result["data"]["status"] == "COMPLETED"
    running = [event["data"] for event in progress if event["data"]["stage"] == "running"]
    nodes = [snapshot["node_id"] for snapshot in running]
    # Every blur node (0.65 s each) shows, in execution order; nothing comes after the result.
    assert [node for node in dict.fromkeys(nodes) if node in {"2", "3", "4"}] == ["2", "3", "4"]
    assert nodes == sorted(nodes, key=int)
    assert next(s["class_type"] for s in running if s["node_id"] == "3") == "ImageBlur"
    assert all(s["nodes_total"] == 5 for s in running)
    percents = [s["percent"] for s in running]
    assert percents == sorted(percents) and percents[-1] < 100
    # A client that reconnects with Last-Event-ID gets only what it missed: here, the result.
    with service.get(
        f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(result["id"] - 1)}, stream=True
    ) as response:
        assert parse_events(response) == [result]


def test_cancel_of_a_running_job_interrupts_comfyui(service: Service) -> None:
    job_id = service.run({"workflow": blur_chain(8, prefix="cancelled_run")})
    service.wait_running(job_id, "ImageBlur")
    response = service.post(f"/cancel/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "status": "CANCELLED"}
    answer = service.status(job_id)
    assert answer["status"] == "CANCELLED" and answer["error"] == "cancelled by POST /cancel"
    assert "output" not in answer
    # The prompt is stopped inside ComfyUI, not left running: the worker confirms it, ComfyUI's queue
    # is empty, no file of it was kept, and the next job runs at once.
    service.wait_log("Abandoned prompt")
    assert requests.get(service.comfyui_url + "/queue", timeout=10).json()["queue_running"] == []
    assert not list((service.data_dir / "output").rglob("cancelled_run*"))
    started = time.monotonic()
    assert service.runsync({"workflow": tiny()})["status"] == "COMPLETED"
    assert time.monotonic() - started < 10
    # Cancelling a job that ended changes nothing.
    assert service.post(f"/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}


def test_a_job_past_its_timeout_ends_timed_out(service: Service) -> None:
    answer = service.runsync({"workflow": blur_chain(6), "timeout": 1})
    assert answer["status"] == "TIMED_OUT"
    assert answer["error"].startswith("Job timed out after 1 s while ComfyUI was running node ")
    assert answer["error"].endswith("the prompt was interrupted in ComfyUI")
    assert answer["output"]["error_type"] == "timeout"
    assert answer["output"]["details"]["timeout"] == 1
    assert set(answer) == {"id", "status", "error", "output", "delayTime", "executionTime"}


def test_a_failed_job_carries_the_workers_error_as_runpod_shows_it(service: Service) -> None:
    answer = service.runsync({"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert answer["status"] == "FAILED"
    assert answer["error"].startswith("ComfyUI rejected the workflow: node 1 uses class_type 'NoSuchNode'")
    assert answer["output"]["error_type"] == "workflow_validation_failed"
    assert set(answer["output"]) == {"error_type", "details"}
    invalid = service.runsync({"images": "not a list"})
    assert invalid["status"] == "FAILED" and invalid["error"].startswith("Invalid job input: ")
    assert invalid["output"]["error_type"] == "invalid_input"
    # s3Config beside the input reaches the worker as RunPod's handler gives it.
    bucket = service.runsync(
        {"workflow": tiny()},
        s3Config={"accessId": "a", "bucketName": "b", "endpointUrl": "https://s3.example"},
    )
    assert bucket["status"] == "FAILED"
    assert bucket["error"] == "s3Config.accessSecret is missing"
    assert bucket["output"] == {"error_type": "invalid_input", "details": {"field": "s3Config.accessSecret"}}


def test_a_full_queue_answers_429_and_purge_queue_empties_it(service: Service) -> None:
    running = service.run({"workflow": blur_chain(8)})
    service.wait_running(running, "ImageBlur")
    queued = [service.run({"workflow": tiny()}) for _ in range(QUEUE_SIZE)]
    assert [service.status(job_id) for job_id in queued] == [
        {"id": job_id, "status": "IN_QUEUE"} for job_id in queued
    ]
    refused = service.post("/run", json={"input": {"workflow": tiny()}})
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    assert refused.json() == {
        "error": f"the queue is full ({QUEUE_SIZE} jobs waiting, HTTP_QUEUE_SIZE = {QUEUE_SIZE}); "
        f"try again in {retry_after} s"
    }
    assert service.post("/runsync", json={"input": {"workflow": tiny()}}).status_code == 429
    health = service.get("/health").json()
    assert (health["jobs"]["inQueue"], health["jobs"]["inProgress"]) == (QUEUE_SIZE, 1)
    assert health["workers"]["running"] == 1
    samples = metric_samples(service)
    assert samples[("comfy_serverless_queue_depth", ())] == QUEUE_SIZE
    assert samples[("comfy_serverless_jobs_running", ())] == 1
    assert samples[("comfy_serverless_jobs_rejected_total", (("reason", "queue_full"),))] == 2

    assert service.post("/purge-queue").json() == {"removed": QUEUE_SIZE, "status": "completed"}
    for job_id in queued:
        answer = service.status(job_id)
        assert (answer["status"], answer["error"], answer["executionTime"]) == (
            "CANCELLED",
            "cancelled by POST /purge-queue",
            0,
        )
    assert service.status(running)["status"] == "IN_PROGRESS"  # purge leaves running jobs alone
    assert service.post(f"/cancel/{running}").json() == {"id": running, "status": "CANCELLED"}
    assert service.post("/purge-queue").json() == {"removed": 0, "status": "completed"}


def test_unknown_jobs_routes_and_bad_bodies(service: Service) -> None:
    unknown = "0f0e0d0c-no-such-job"
    for method, path in [
        ("GET", f"/status/{unknown}"),
        ("POST", f"/status/{unknown}"),
        ("GET", f"/stream/{unknown}"),
        ("POST", f"/cancel/{unknown}"),
        ("GET", f"/jobs/{unknown}/events"),
    ]:
        response = service.http.request(method, service.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json() == {
            "error": f"job {unknown} is unknown: a wrong id, or it ended more than HTTP_RESULT_TTL "
            "(1800 s) ago"
        }
    # A route the service does not have answers FastAPI's own 404 (the client tells the two apart).
    assert service.post("/retry/x").json() == {"detail": "Not Found"}
    missing = service.post("/run", json={"webhook": None})
    assert (missing.status_code, missing.json()) == (400, {"error": "invalid request: input: Field required"})
    garbage = service.post("/run", data=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["error"].startswith("invalid request: ")
    too_long = service.post("/runsync", params={"wait": 300001}, json={"input": {}})
    assert too_long.status_code == 400
    assert too_long.json() == {"error": "invalid request: wait: Input should be less than or equal to 300000"}


def test_templates_list_and_schemas(service: Service) -> None:
    shipped = TemplateCatalog.load([SHIPPED_TEMPLATES])
    listing = service.get("/templates").json()["templates"]
    assert [t["name"] for t in listing] == shipped.names()
    ltx = next(t for t in listing if t["name"] == "ltx2_t2v")
    assert ltx["title"] == shipped.templates["ltx2_t2v"].manifest.title
    assert ltx["parameters"]["prompt"]["required"] is True
    schema = service.get("/templates/ltx2_t2v").json()
    assert schema == json.loads((REPO / "schemas" / "templates" / "ltx2_t2v.schema.json").read_text())
    missing = service.get("/templates/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": f"there is no template 'nope' (available: {', '.join(shipped.names())})"
    }


def test_metrics_count_what_health_counts(service: Service) -> None:
    health = service.get("/health").json()["jobs"]
    samples = metric_samples(service)

    def jobs(status: str) -> float:
        return samples[("comfy_serverless_jobs_total", (("status", status),))]

    assert jobs("COMPLETED") == health["completed"] >= 5
    assert jobs("FAILED") + jobs("TIMED_OUT") == health["failed"] >= 4
    assert jobs("TIMED_OUT") >= 1
    assert jobs("CANCELLED") == health["cancelled"] >= 4
    assert samples[("comfy_serverless_comfyui_ready", ())] == 1
    assert samples[("comfy_serverless_comfyui_restarts_total", ())] == 0
    assert samples[("comfy_serverless_queue_depth", ())] == 0
    started = samples[("comfy_serverless_job_queue_wait_seconds_count", ())]
    ran = sum(
        samples.get(("comfy_serverless_job_duration_seconds_count", (("status", s),)), 0)
        for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
    )
    assert started == ran  # every job that started has a duration
    assert samples[("comfy_serverless_jobs_submitted_total", ())] == sum(
        jobs(s) for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
    )


def test_results_are_files_under_the_data_folder(service: Service) -> None:
    answer = service.runsync({"workflow": tiny()})
    stored = Path(service.data_dir) / "http-results" / f"{answer['id']}.json"
    assert json.loads(stored.read_text()) == answer
