"""What the worker adds to ComfyUI's own time, measured side by side in one run.

200 tiny jobs (EmptyImage 64x64 -> SaveImage) go, interleaved, through:
  direct   - a lean client talking to ComfyUI itself: POST /prompt, wait on its WebSocket for the end,
             GET /history, GET /view for the file (what any client has to do);
  handler  - the RunPod handler called in-process (validation, staging, tracking, base64, cleanup);
  runsync  - end to end through RunPod's local API server (POST /runsync over HTTP).
All three use the same ComfyUI, started by the worker: the emulator by default, a real ComfyUI when
COMFYUI_DIR is set (COMFYUI_PYTHON, COMFYUI_ARGS as for the worker). Every run uses its own
filename_prefix, so SaveImage really runs each time in every path.

Usage: python benchmarks/overhead.py [--jobs 200] [--json FILE]
(--json also writes the figures to FILE; benchmarks/suite.py reads them from there.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")  # as python -m comfy_serverless sets it

from comfy_serverless.handler import make_handler  # noqa: E402
from comfy_serverless.settings import Settings  # noqa: E402
from comfy_serverless.worker import Worker  # noqa: E402


def tiny(prefix: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


class DirectClient:
    """A lean, persistent client of ComfyUI: the baseline."""

    def __init__(self, base: str):
        self.base = base
        self.client_id = uuid.uuid4().hex
        self.done: dict[str, asyncio.Future[None]] = {}

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(
            f"{self.base.replace('http', 'ws')}/ws?clientId={self.client_id}"
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                future = self.done.get(data["data"].get("prompt_id"))
                if future is not None and not future.done():
                    future.set_result(None)

    async def submit(self, prompt: dict[str, Any]) -> str:
        """Queue a prompt; its end is watched from now on (the WebSocket may report it at once)."""
        prompt_id = str(uuid.uuid4())
        self.done[prompt_id] = asyncio.get_running_loop().create_future()
        async with self.session.post(
            self.base + "/prompt",
            json={"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id},
        ) as response:
            assert response.status == 200, await response.text()
        return prompt_id

    async def result(self, prompt_id: str, node: str = "2") -> tuple[str, bytes]:
        """Wait for a submitted prompt, then fetch its first image: (file name, bytes)."""
        await self.done[prompt_id]
        del self.done[prompt_id]
        async with self.session.get(f"{self.base}/history/{prompt_id}") as response:
            history = await response.json()
        image = history[prompt_id]["outputs"][node]["images"][0]
        async with self.session.get(self.base + "/view", params=image) as response:
            return str(image["filename"]), await response.read()

    async def run(self, prompt: dict[str, Any]) -> bytes:
        return (await self.result(await self.submit(prompt)))[1]

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.session.close()


def start_runsync_server(handler: Any, port: int) -> None:
    import uvicorn
    from runpod.serverless.modules.rp_fastapi import WorkerAPI

    app = WorkerAPI({"handler": handler}).rp_app
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    threading.Thread(target=server.run, daemon=True).start()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(jobs: int) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict (times in ms, RSS in bytes)."""
    data_dir = Path(tempfile.mkdtemp(prefix="overhead-"))
    backend = "real ComfyUI" if os.environ.get("COMFYUI_DIR") else "emulator"
    env = {"COMFYUI_DIR": str(REPO / "tests" / "emulator"), "COMFYUI_PORT": str(free_port())} | {
        k: v for k, v in os.environ.items() if k.startswith("COMFYUI_")
    }
    fields: dict[str, Any] = {k.lower(): v for k, v in env.items()}
    settings = Settings(**fields, worker_data_dir=data_dir, log_level="WARNING")
    worker = Worker(settings)
    worker.start()
    await asyncio.to_thread(worker.wait_ready, 300)
    handler = make_handler(worker)
    direct = DirectClient(settings.base_url)
    await direct.open()
    api_port = free_port()
    start_runsync_server(handler, api_port)
    api = aiohttp.ClientSession()
    for _ in range(50):
        try:
            async with api.get(f"http://127.0.0.1:{api_port}/openapi.json") as response:
                if response.status == 200:
                    break
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)

    async def via_handler(i: int) -> None:
        result = await handler({"id": f"bench-{i}", "input": {"workflow": tiny(f"h{i}")}})
        assert result.get("status") == "success", result

    async def via_runsync(i: int) -> None:
        async with api.post(
            f"http://127.0.0.1:{api_port}/runsync", json={"input": {"workflow": tiny(f"r{i}")}}
        ) as r:
            answer = await r.json()
        assert answer["status"] == "COMPLETED", answer

    async def via_direct(i: int) -> None:
        await direct.run(tiny(f"d{i}"))

    paths = {"direct": via_direct, "handler": via_handler, "runsync": via_runsync}
    for i in range(10):  # warm every path up
        for run in paths.values():
            await run(-1 - i)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(jobs):
        for name, run in paths.items():
            started = time.perf_counter()
            await run(i)
            timings[name].append((time.perf_counter() - started) * 1000)
    rss_after = process.memory_info().rss
    async with direct.session.get(settings.base_url + "/system_stats") as response:
        system_stats = await response.json()

    await api.close()
    await direct.close()
    worker.stop()
    return {
        "backend": backend,
        "base_url": settings.base_url,
        "jobs": jobs,
        "paths": {
            name: {"median_ms": statistics.median(values), "p90_ms": percentile(values, 0.9)}
            for name, values in timings.items()
        },
        "rss_before": rss_before,
        "rss_after": rss_after,
        "system_stats": system_stats,
    }


def report(result: dict[str, Any]) -> None:
    paths = result["paths"]
    base = paths["direct"]["median_ms"]
    print(
        f"\n{result['jobs']} tiny jobs per path, interleaved, against the {result['backend']} ({result['base_url']})\n"
    )
    print("| path    | median ms | p90 ms | median - direct ms | median / direct |")
    print("| ------- | --------- | ------ | ------------------ | --------------- |")
    for name, figures in paths.items():
        median = figures["median_ms"]
        print(
            f"| {name:7} | {median:9.2f} | {figures['p90_ms']:6.2f} | {median - base:18.2f} | {median / base:15.2f} |"
        )
    before, after = result["rss_before"], result["rss_after"]
    print(
        f"\nprocess RSS (worker core, handler, API server and the direct client): {before / 1e6:.1f} MB before, "
        f"{after / 1e6:.1f} MB after {3 * result['jobs']} jobs: {(after - before) / 1e6:+.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    result = asyncio.run(measure(args.jobs))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
