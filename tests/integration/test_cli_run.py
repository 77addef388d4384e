"""``comfy-serverless run`` as users run it: a subprocess, against the real worker behind RunPod's local
development server (``--rp_serve_api``) and against a stand-in endpoint that reports progress, with
its bar drawn in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.integration.helpers import tiny
from tests.support.fake_endpoint import FakeEndpoint, JobPlan, image_item, success
from tests.support.worker_process import LocalApiWorker

CLI = [sys.executable, "-m", "comfy_serverless.cli"]
#: A generous bound for one command; reaching it is a failure, never a measurement.
COMMAND_TIMEOUT = 300
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NO_PROGRESS = "progress is unavailable"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def in_terminal(*args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its output; its exit code and what it showed, without
    terminal control sequences."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen([*CLI, *args], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    shown = bytearray()
    deadline = time.monotonic() + COMMAND_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, _ANSI.sub("", shown.decode("utf-8", "replace"))


def write_workflow(folder: Path, workflow: dict[str, Any], name: str = "workflow.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(workflow))
    return path


def unknown_class() -> dict[str, Any]:
    workflow = tiny("unknown")
    workflow["3"] = {"class_type": "DoesNotExistNode", "inputs": {"image": ["1", 0]}}
    workflow["2"]["inputs"]["images"] = ["3", 0]
    return workflow


# --- against the worker ----------------------------------------------------------------------------


def test_run_saves_the_image_named_by_its_node(
    emulator_only: None, worker: LocalApiWorker, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = cli("run", str(write_workflow(tmp_path, tiny("cli"))), "--local", worker.url, "--out", str(out))

    assert done.returncode == 0, done.stderr
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == ["2_cli_00001_.png"]
    with Image.open(saved[0]) as image:
        assert image.size == (64, 64)
        assert image.convert("RGB").getpixel((0, 0)) == (255, 128, 0)
    assert f"saved 1 output to {out}:\n  {saved[0]}  (image, " in done.stdout
    assert NO_PROGRESS in done.stdout


def test_run_json_lists_the_saved_path(emulator_only: None, worker: LocalApiWorker, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cli(
        "run", str(write_workflow(tmp_path, tiny("json"))), "--local", worker.url, "--out", str(out), "--json"
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "COMPLETED" and report["exit_code"] == 0 and report["job_id"]
    [output] = report["outputs"]
    assert (output["node_id"], output["type"], output["filename"]) == ("2", "image", "json_00001_.png")
    assert output["path"] == str(out / "2_json_00001_.png")
    assert Path(output["path"]).stat().st_size == output["size_bytes"]
    assert report["timings"]["total_ms"] > 0
    # Progress goes nowhere in JSON mode; the one notice goes to standard error.
    assert NO_PROGRESS in done.stderr


def test_an_unknown_node_class_is_invalid_and_validate_says_it_first(
    emulator_only: None, worker: LocalApiWorker, tmp_path: Path
) -> None:
    path = write_workflow(tmp_path, unknown_class())
    sentence = (
        "ComfyUI rejected the workflow: node 3 uses class_type 'DoesNotExistNode', which this ComfyUI does "
        "not have (a custom node that is not installed?)"
    )

    done = cli("run", str(path), "--local", worker.url, "--out", str(tmp_path / "out"))

    assert done.returncode == 3
    assert done.stderr.endswith(f": {sentence}\n")
    assert not (tmp_path / "out").exists()
    checked = cli("validate", str(path), "--comfy-url", f"http://127.0.0.1:{worker.env['COMFYUI_PORT']}")
    assert (checked.returncode, checked.stdout) == (3, sentence + "\n")


def _broken(kind: str) -> dict[str, Any]:
    workflow = tiny(kind)
    if kind == "range":
        workflow["1"]["inputs"]["width"] = 99999
    elif kind == "missing":
        workflow["4"] = {"class_type": "ImageInvert", "inputs": {}}
        workflow["2"]["inputs"]["images"] = ["4", 0]
    elif kind == "link":
        workflow["2"]["inputs"]["images"] = ["1", 3]
    elif kind == "type":
        workflow["1"] = {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        }
    return workflow


@pytest.mark.parametrize("kind", ["range", "missing", "link", "type"])
def test_validate_predicts_the_worker_refusal_word_for_word(
    emulator_only: None, worker: LocalApiWorker, tmp_path: Path, kind: str
) -> None:
    path = write_workflow(tmp_path, _broken(kind))
    ran = cli("run", str(path), "--local", worker.url, "--out", str(tmp_path / "out"), "--json")
    checked = cli(
        "validate", str(path), "--comfy-url", f"http://127.0.0.1:{worker.env['COMFYUI_PORT']}", "--json"
    )

    assert ran.returncode == checked.returncode == 3
    worker_said, validate_said = json.loads(ran.stdout), json.loads(checked.stdout)
    assert worker_said["error_type"] == validate_said["error_type"] == "workflow_validation_failed"
    assert validate_said["error"] == worker_said["error"]
    assert validate_said["error"].startswith("ComfyUI rejected the workflow: node ")


def test_the_local_server_notice_in_a_terminal(
    emulator_only: None, worker: LocalApiWorker, tmp_path: Path
) -> None:
    code, shown = in_terminal(
        "run",
        str(write_workflow(tmp_path, tiny("pty"))),
        "--local",
        worker.url,
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0, shown
    assert shown.count(f"{NO_PROGRESS}: {worker.url} is RunPod's local development server") == 1
    assert "completed" in shown
    assert (tmp_path / "out" / "2_pty_00001_.png").is_file()


# --- against a stand-in endpoint that reports progress ---------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


def _snapshot(step: int, percent: float) -> dict[str, Any]:
    return {
        "stage": "running",
        "node_id": "3",
        "class_type": "KSampler",
        "step": step,
        "steps": 20,
        "nodes_done": 2,
        "nodes_total": 5,
        "percent": percent,
    }


def test_the_progress_bar_shows_node_class_step_and_percent(tmp_path: Path) -> None:
    with FakeEndpoint(api_key=None) as endpoint:
        endpoint.plan(
            JobPlan(
                queue_polls=2,
                progress=[{"stage": "queued"}, _snapshot(5, 45.0), _snapshot(15, 55.0)],
                output=success(image_item("9", "bar.png", PNG)),
            )
        )
        code, shown = in_terminal(
            "run",
            str(write_workflow(tmp_path, tiny())),
            "--local",
            endpoint.url,
            "--out",
            str(tmp_path / "out"),
        )

    assert code == 0, shown
    assert "node 3 (KSampler)" in shown
    assert "step 5/20" in shown and " 45.0%" in shown
    assert "step 15/20" in shown and " 55.0%" in shown
    assert "100.0%" in shown
    assert re.search(r"queue \d+\.\ds", shown)  # how long the job waited in RunPod's queue
    assert NO_PROGRESS not in shown
    assert (tmp_path / "out" / "9_bar.png").read_bytes() == PNG


def test_ctrl_c_cancels_the_job(tmp_path: Path) -> None:
    with FakeEndpoint(api_key=None) as endpoint:
        endpoint.plan(JobPlan(hold=True))
        proc = subprocess.Popen(
            [*CLI, "run", str(write_workflow(tmp_path, tiny())), "--local", endpoint.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "job job-1: submitted\n"
            assert proc.stdout.readline() == "job job-1: in queue\n"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130
        assert "interrupted; cancelling job job-1" in err
        assert endpoint.jobs["job-1"].state == "CANCELLED"
