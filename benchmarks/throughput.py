"""Throughput: short jobs through the worker's production loop, beside the same prompts sent to ComfyUI.

For each CONCURRENCY (1 and 2 by default) one worker runs `python -m comfy_serverless` in production mode:
RunPod's SDK (its JobScaler: job take, result posts) against tests/support/fake_runpod.py, a local
stand-in for RunPod's job queue. The jobs are split into chunks and, chunk by chunk, alternate with:
  direct, one at a time - a lean client of the same ComfyUI (the one this worker started, idle
                          meanwhile): POST /prompt, wait on the WebSocket, GET /history and /view, then
                          the next prompt;
  direct, all queued    - the same client queues the whole chunk at once, then collects the results
                          (ComfyUI's own pace, with no client round trip between prompts);
  worker                - the chunk is put on the fake queue at once; time from then to the last result
                          posted back.
Every job (direct ones too) is a tiny EmptyImage -> SaveImage with its own filename_prefix and its own
colour; each result is checked (file name and pixel colour), and the ones that are not their own job's
are counted.

Backend: the emulator by default; a real ComfyUI when COMFYUI_DIR is set (COMFYUI_PYTHON, COMFYUI_ARGS).

Usage: python benchmarks/throughput.py [--jobs 100] [--chunks 4] [--concurrency 1,2] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cold_start import backend
from overhead import DirectClient
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fake_runpod import FakeRunPod  # noqa: E402
from tests.support.worker_process import WorkerProcess, free_port  # noqa: E402


@dataclass(frozen=True)
class Job:
    id: str
    rgb: tuple[int, int, int]

    @property
    def prompt(self) -> dict[str, Any]:
        r, g, b = self.rgb
        return {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": r << 16 | g << 8 | b},
            },
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": self.id}},
        }

    def owns(self, filename: str, png: bytes) -> bool:
        """Whether an output is this job's: its file name prefix, and its colour (within 1: real
        ComfyUI works in float32 and truncates)."""
        if not filename.startswith(self.id + "_"):
            return False
        with Image.open(io.BytesIO(png)) as image:
            pixel = image.convert("RGB").getpixel((0, 0))
        assert isinstance(pixel, tuple)
        return all(abs(int(a) - b) <= 1 for a, b in zip(pixel, self.rgb, strict=True))


class Jobs:
    """Jobs with unique ids and colours at least 4 apart in some channel, so mixed outputs show."""

    def __init__(self) -> None:
        self.count = 0

    def make(self, label: str, n: int) -> list[Job]:
        made = []
        for _ in range(n):
            i = self.count
            self.count += 1
            rgb = (4 * (i % 64), 4 * (i // 64 % 64), 4 * (i // 4096 % 64) + 2)
            made.append(Job(f"{label}-{i:05d}", rgb))
        return made


@dataclass
class Tally:
    jobs: int = 0
    seconds: float = 0.0
    wrong: int = 0

    def add(self, jobs: int, seconds: float, wrong: int) -> None:
        self.jobs += jobs
        self.seconds += seconds
        self.wrong += wrong

    def figures(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "seconds": self.seconds,
            "jobs_per_s": self.jobs / self.seconds if self.seconds else 0.0,
            "wrong_outputs": self.wrong,
        }


async def direct_chunk(client: DirectClient, jobs: list[Job], all_queued: bool) -> tuple[float, int]:
    started = time.perf_counter()
    outputs: list[tuple[str, bytes]] = []
    if all_queued:
        ids = [await client.submit(job.prompt) for job in jobs]
        outputs = [await client.result(prompt_id) for prompt_id in ids]
    else:
        for job in jobs:
            outputs.append(await client.result(await client.submit(job.prompt)))
    seconds = time.perf_counter() - started
    return seconds, sum(not job.owns(*output) for job, output in zip(jobs, outputs, strict=True))


def worker_chunk(fake: FakeRunPod, jobs: list[Job]) -> tuple[float, int]:
    """Queue the chunk on the fake RunPod at once; seconds until the last result was posted back."""
    started = time.monotonic()
    for job in jobs:
        fake.submit(job.id, {"workflow": job.prompt})
    wrong = 0
    ended = started
    for job in jobs:
        result = fake.result(job.id, timeout=120 + 5 * len(jobs))
        ended = max(ended, max(p.at for p in fake.posts_for(job.id) if not p.is_progress))
        output = result.get("output")
        items = output.get("outputs") if isinstance(output, dict) else None
        if not items or len(items) != 1 or "data" not in items[0]:
            wrong += 1
            continue
        wrong += not job.owns(items[0]["filename"], base64.b64decode(items[0]["data"]))
    return ended - started, wrong


def worker_env(concurrency: int, data_dir: Path, port: int) -> dict[str, str]:
    comfy_dir, python, extra = backend()
    return {
        "COMFYUI_DIR": str(comfy_dir),
        "COMFYUI_PYTHON": python,
        "COMFYUI_ARGS": shlex.join(extra),
        "COMFYUI_PORT": str(port),
        "COMFYUI_BOOT_TIMEOUT": "300",
        "WORKER_DATA_DIR": str(data_dir),
        "RUNPOD_VOLUME_PATH": str(data_dir / "no-volume"),
        "LOG_LEVEL": "WARNING",
        "CONCURRENCY": str(concurrency),
    }


async def at_concurrency(concurrency: int, jobs: int, chunks: int, made: Jobs) -> dict[str, Any]:
    port = free_port()
    fake = FakeRunPod().start()
    data_dir = Path(tempfile.mkdtemp(prefix=f"throughput-c{concurrency}-"))
    worker = WorkerProcess(worker_env(concurrency, data_dir, port) | fake.env(), [])
    client = DirectClient(f"http://127.0.0.1:{port}")
    tallies = {"worker": Tally(), "direct_one_at_a_time": Tally(), "direct_all_queued": Tally()}
    try:
        # The first job waits for ComfyUI's boot; a few more warm every path up.
        warm = made.make(f"warm{concurrency}", 3)
        await asyncio.to_thread(worker_chunk, fake, warm[:1])
        await client.open()
        await direct_chunk(client, warm[1:2], all_queued=False)
        await asyncio.to_thread(worker_chunk, fake, warm[2:])
        async with client.session.get(f"http://127.0.0.1:{port}/system_stats") as response:
            stats = await response.json()
        sizes = [jobs // chunks + (i < jobs % chunks) for i in range(chunks)]
        for size in sizes:
            label = f"c{concurrency}"
            seconds, wrong = await direct_chunk(client, made.make(f"d1{label}", size), all_queued=False)
            tallies["direct_one_at_a_time"].add(size, seconds, wrong)
            seconds, wrong = await asyncio.to_thread(worker_chunk, fake, made.make(f"w{label}", size))
            tallies["worker"].add(size, seconds, wrong)
            seconds, wrong = await direct_chunk(client, made.make(f"dq{label}", size), all_queued=True)
            tallies["direct_all_queued"].add(size, seconds, wrong)
    except BaseException:
        print(worker.log_text()[-4000:], file=sys.stderr)
        raise
    finally:
        if hasattr(client, "session"):
            await client.close()
        worker.stop()
        fake.close()
    return {name: tally.figures() for name, tally in tallies.items()} | {"system_stats": stats}


async def measure(jobs: int, chunks: int = 4, concurrencies: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """``jobs`` jobs per path at each concurrency, in ``chunks`` alternating chunks."""
    made = Jobs()
    results: dict[str, Any] = {"jobs": jobs, "chunks": chunks, "concurrency": {}}
    for concurrency in concurrencies:
        figures = await at_concurrency(concurrency, jobs, max(1, min(chunks, jobs)), made)
        results["system_stats"] = figures.pop("system_stats")
        results["concurrency"][str(concurrency)] = figures
    return results


def report(result: dict[str, Any]) -> None:
    print(
        f"\n{result['jobs']} tiny jobs per path and concurrency, in {result['chunks']} alternating chunks\n"
    )
    print("| concurrency | path                  | jobs/s | seconds | wrong outputs |")
    print("| ----------- | --------------------- | ------ | ------- | ------------- |")
    for concurrency, paths in result["concurrency"].items():
        for name, figures in paths.items():
            print(
                f"| {concurrency:11} | {name:21} | {figures['jobs_per_s']:6.2f} | {figures['seconds']:7.2f} "
                f"| {figures['wrong_outputs']:13} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100, help="jobs per path and concurrency")
    parser.add_argument("--chunks", type=int, default=4, help="alternating chunks the jobs are split in")
    parser.add_argument("--concurrency", default="1,2", help="CONCURRENCY values, comma-separated")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the fake RunPod's request log
    result = asyncio.run(measure(args.jobs, args.chunks, concurrencies))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
