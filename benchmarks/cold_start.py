"""Cold start: does the worker make ComfyUI's boot any longer? Measured side by side in one run.

For each round, alternating:
  comfyui - start ComfyUI alone (same arguments the worker uses), poll /system_stats until it answers
            (time to first /system_stats: ComfyUI's own boot), then run one tiny prompt through
            POST /prompt + WebSocket: time to first result;
  worker  - start `python -m comfy_serverless --rp_serve_api`, POST one tiny job to /runsync as soon as
            the API answers (the job waits for ComfyUI's boot): time to first result.
Backend: the emulator by default; a real ComfyUI when COMFYUI_DIR is set (COMFYUI_PYTHON, COMFYUI_ARGS).

Usage: python benchmarks/cold_start.py [--rounds 3] [--json FILE]
(--json also writes the figures to FILE; benchmarks/suite.py reads them from there.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.worker_process import LocalApiWorker, free_port  # noqa: E402

TINY = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cold"}},
}


def backend() -> tuple[Path, str, list[str]]:
    if os.environ.get("COMFYUI_DIR"):
        return (
            Path(os.environ["COMFYUI_DIR"]),
            os.environ.get("COMFYUI_PYTHON", "python3"),
            shlex.split(os.environ.get("COMFYUI_ARGS", "--cpu")),
        )
    return REPO / "tests" / "emulator", sys.executable, []


async def first_prompt(base: str) -> None:
    """One tiny prompt, POST /prompt then wait on the WebSocket for its end (as any client would)."""
    client_id = uuid.uuid4().hex
    ws_url = f"{base.replace('http', 'ws')}/ws?clientId={client_id}"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        body = {"prompt": TINY, "client_id": client_id}
        async with session.post(base + "/prompt", json=body) as response:
            prompt_id = (await response.json())["prompt_id"]
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)["data"]
            if "node" in data and data["node"] is None and data.get("prompt_id") == prompt_id:
                return


def comfyui_alone() -> tuple[float, float]:
    """ComfyUI started alone: seconds to its first /system_stats answer, and to its first tiny result."""
    comfy_dir, python, extra = backend()
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="cold-comfy-"))
    for kind in ("input", "output", "user"):
        (data / kind).mkdir()
    argv = [python, str(comfy_dir / "main.py"), "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
            "--input-directory", str(data / "input"), "--output-directory", str(data / "output"),
            "--temp-directory", str(data), *extra]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=comfy_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(base + "/system_stats", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        answered = time.perf_counter() - started
        asyncio.run(first_prompt(base))
        return answered, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)


def worker_cold() -> float:
    comfy_dir, python, extra = backend()
    env = {
        "COMFYUI_DIR": str(comfy_dir),
        "COMFYUI_PYTHON": python,
        "COMFYUI_ARGS": shlex.join(extra),
        "COMFYUI_PORT": str(free_port()),
        "WORKER_DATA_DIR": tempfile.mkdtemp(prefix="cold-worker-"),
        "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    worker = LocalApiWorker(env)
    try:
        worker.wait_api(timeout=120)
        answer = worker.runsync({"workflow": TINY}, timeout=300)
        assert answer["status"] == "COMPLETED", answer
        return time.perf_counter() - started
    finally:
        worker.stop()


def measure(rounds: int) -> dict[str, Any]:
    """Alternating rounds; every run's seconds, per path, and their medians."""
    runs: dict[str, list[float]] = {
        "comfyui_system_stats": [],
        "comfyui_first_result": [],
        "worker_first_result": [],
    }
    for _ in range(rounds):
        answered, first = comfyui_alone()
        runs["comfyui_system_stats"].append(answered)
        runs["comfyui_first_result"].append(first)
        runs["worker_first_result"].append(worker_cold())
    name = "real ComfyUI " + os.environ["COMFYUI_DIR"] if os.environ.get("COMFYUI_DIR") else "the emulator"
    return {
        "backend": name,
        "rounds": rounds,
        "runs_s": runs,
        "median_s": {label: statistics.median(values) for label, values in runs.items()},
    }


def report(result: dict[str, Any]) -> None:
    labels = {
        "comfyui_system_stats": "comfyui alone, to first /system_stats",
        "comfyui_first_result": "comfyui alone, to first result",
        "worker_first_result": "worker, to first result",
    }
    base = result["median_s"]["comfyui_first_result"]
    print(
        f"\nprocess start -> first answer, {result['rounds']} rounds each, alternating, against {result['backend']}\n"
    )
    print(
        "| path                                  | runs (s)                 | median s | median - alone s | median / alone |"
    )
    print(
        "| ------------------------------------- | ------------------------ | -------- | ---------------- | -------------- |"
    )
    for key, label in labels.items():
        median = result["median_s"][key]
        runs = ", ".join(f"{v:.2f}" for v in result["runs_s"][key])
        print(f"| {label:37} | {runs:24} | {median:8.2f} | {median - base:16.2f} | {median / base:14.2f} |")
    print('\n("alone" is ComfyUI alone to its first result.)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    result = measure(args.rounds)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
