"""Cold start: does the worker make ComfyUI's boot any longer? Measured side by side in one run.

For each round, alternating:
  comfyui - start ComfyUI alone (same arguments the worker uses), poll /system_stats until it answers,
            then run one tiny prompt through POST /prompt + WebSocket: time to first result;
  worker  - start `python -m comfy_serverless --rp_serve_api`, POST one tiny job to /runsync as soon as
            the API answers (the job waits for ComfyUI's boot): time to first result.
Backend: the emulator by default; a real ComfyUI when COMFYUI_DIR is set (COMFYUI_PYTHON, COMFYUI_ARGS).

Usage: python benchmarks/cold_start.py [--rounds 3]
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


def comfyui_alone() -> float:
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
        asyncio.run(first_prompt(base))
        return time.perf_counter() - started
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


def main(rounds: int) -> None:
    results: dict[str, list[float]] = {"comfyui alone": [], "worker": []}
    for _ in range(rounds):
        results["comfyui alone"].append(comfyui_alone())
        results["worker"].append(worker_cold())
    base = statistics.median(results["comfyui alone"])
    name = "real ComfyUI " + os.environ["COMFYUI_DIR"] if os.environ.get("COMFYUI_DIR") else "the emulator"
    print(f"\nprocess start -> first tiny result, {rounds} rounds each, alternating, against {name}\n")
    print("| path          | runs (s)                 | median s | median - alone s | median / alone |")
    print("| ------------- | ------------------------ | -------- | ---------------- | -------------- |")
    for label, values in results.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {label:13} | {runs:24} | {median:8.2f} | {median - base:16.2f} | {median / base:14.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
