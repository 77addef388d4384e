"""Time and memory of delivering large outputs, inline and uploaded, measured side by side in one run.

For outputs of 1, 50 and 200 MB (random bytes in a temporary file) each way of delivering runs in a
fresh Python process, so its peak memory is its own:
  inline        - delivery.inline.encode_file: chunked base64 into a buffer of the exact size;
  inline (old)  - what the runner did before: read the whole file, base64.b64encode, decode;
  s3            - delivery.storage.S3Store.upload to moto's S3 server, started here on loopback
                  (its own memory is not counted: it stands in for the remote storage).
Peak RSS growth is the process's high-water mark during the call (reset through /proc/self/clear_refs
just before it) less its RSS before; clients, imports and a first small upload come before that.
Targets: uploads grow the worker by less than 64 MB whatever the size; inline by at most 3x the output.
With --modes view,... a direct baseline runs beside them:
  view          - what a client of ComfyUI itself does to get the file: GET /view from a ComfyUI (the
                  emulator, or a real one when COMFYUI_DIR is set) whose output folder holds it, read
                  into memory over loopback with aiohttp (ComfyUI's own memory is not counted).
--rounds N repeats every case N times, alternating the modes, and reports medians.

Usage: python benchmarks/outputs.py [--sizes 1,50,200] [--modes inline,inline (old),s3,view] [--rounds 1]
                                    [--json FILE]
(--json also writes the figures to FILE; benchmarks/suite.py reads them from there.)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

MB = 1_000_000
MODES = ("inline", "inline (old)", "s3", "view")
DEFAULT_MODES = "inline,inline (old),s3"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMeter:
    """Peak RSS growth of this process over a stretch of code."""

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm = True
        except OSError:
            self.hwm = False
            self.max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.before = _status_kib("VmRSS")

    def growth_bytes(self) -> int:
        if self.hwm:
            peak = _status_kib("VmHWM")
        else:  # ru_maxrss only ever rises: right when the stretch peaks above everything before it
            peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, self.max_before)
        return max(0, peak - self.before) * 1024


async def _child(mode: str, path: Path, size: int, endpoint: str, warm: Path) -> dict[str, Any]:
    from pydantic import SecretStr

    from comfy_serverless.delivery.inline import base64_len, encode_file
    from comfy_serverless.delivery.storage import StorageConfig, StoreCache

    meter = PeakMeter()
    if mode == "s3":
        config = StorageConfig(
            bucket="bench",
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id="AKIABENCH",
            secret_access_key=SecretStr("bench-secret"),
        )
        store = StoreCache().get(config)
        await store.upload(warm, "warm.bin", "application/octet-stream", label="warm-up")
        meter.start()
        started = time.perf_counter()
        stored = await store.upload(path, f"bench/{path.name}", "application/octet-stream", label=path.name)
        seconds = time.perf_counter() - started
        growth = meter.growth_bytes()
        assert stored.size_bytes == size
    elif mode == "inline":
        meter.start()
        started = time.perf_counter()
        encoded = await encode_file(path)
        seconds = time.perf_counter() - started
        growth = meter.growth_bytes()
        assert len(encoded.data) == base64_len(size)
    elif mode == "view":
        import aiohttp

        async with aiohttp.ClientSession() as session:
            view = endpoint + "/view"
            async with session.get(view, params={"filename": warm.name, "type": "output"}) as response:
                assert response.status == 200, response.status
                await response.read()
            meter.start()
            started = time.perf_counter()
            async with session.get(view, params={"filename": path.name, "type": "output"}) as response:
                assert response.status == 200, response.status
                data = await response.read()
            seconds = time.perf_counter() - started
            growth = meter.growth_bytes()
        assert len(data) == size
    else:
        meter.start()
        started = time.perf_counter()
        text = base64.b64encode(await asyncio.to_thread(path.read_bytes)).decode("ascii")
        seconds = time.perf_counter() - started
        growth = meter.growth_bytes()
        assert len(text) == base64_len(size)
    return {"seconds": seconds, "growth": growth}


def _run_case(mode: str, path: Path, endpoint: str) -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), endpoint],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


def _random_file(folder: Path, size: int) -> Path:
    path = folder / f"out-{size // MB}MB.bin"
    with path.open("wb") as file:
        left = size
        while left:
            piece = min(left, 4 * 1024 * 1024)
            file.write(os.urandom(piece))
            left -= piece
    return path


@contextmanager
def comfyui(folder: Path) -> Iterator[str]:
    """ComfyUI (the emulator, or COMFYUI_DIR's) with ``folder`` as its output folder; yields its URL."""
    import requests
    from cold_start import backend

    from tests.support.worker_process import free_port

    comfy_dir, python, extra = backend()
    port = free_port()
    for kind in ("input", "temp"):
        (folder.parent / kind).mkdir(exist_ok=True)
    argv = [python, str(comfy_dir / "main.py"), "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
            "--input-directory", str(folder.parent / "input"), "--output-directory", str(folder),
            "--temp-directory", str(folder.parent / "temp"), *extra]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=comfy_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if requests.get(url + "/system_stats", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ComfyUI did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def measure(sizes_mb: list[float], modes: list[str], rounds: int = 1) -> dict[str, Any]:
    """Every case ``rounds`` times, modes alternating; each run and the medians per size and mode."""
    from tests.support.s3_server import moto_server

    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES)}")
    sizes = [int(s * MB) for s in sizes_mb]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="outputs-bench-") as tmp:
        folder = Path(tmp) / "output"
        folder.mkdir()
        with (
            moto_server(buckets=["bench"]) if "s3" in modes else nullcontext() as s3,
            comfyui(folder) if "view" in modes else nullcontext() as comfy_url,
        ):
            endpoints = {"s3": s3.url if s3 else "", "view": comfy_url or ""}
            for size in sizes:
                path = _random_file(folder, size)
                for round_ in range(rounds):
                    for mode in modes:
                        result = _run_case(mode, path, endpoints.get(mode, ""))
                        runs.append({"size": size, "mode": mode, "round": round_, **result})
                path.unlink()
    medians = [
        {
            "size": size,
            "mode": mode,
            "seconds": statistics.median(
                r["seconds"] for r in runs if r["size"] == size and r["mode"] == mode
            ),
            "growth": statistics.median(r["growth"] for r in runs if r["size"] == size and r["mode"] == mode),
        }
        for size in sizes
        for mode in modes
    ]
    return {"rounds": rounds, "runs": runs, "medians": medians}


def report(result: dict[str, Any]) -> None:
    if result["rounds"] > 1:
        print(f"medians of {result['rounds']} rounds, modes alternating")
    print(f"{'size':>8}  {'mode':<13} {'seconds':>8} {'peak RSS +MB':>13} {'RSS/size':>9}")
    for row in result["medians"]:
        size, mode, seconds, growth = row["size"], row["mode"], row["seconds"], row["growth"]
        print(f"{size / MB:>6.0f}MB  {mode:<13} {seconds:>8.3f} {growth / MB:>13.1f} {growth / size:>9.2f}")
    print()
    for row in result["medians"]:
        size, mode, growth = row["size"], row["mode"], row["growth"]
        if mode == "s3" and growth >= 64 * MB:
            print(f"over target: s3 upload of {size / MB:.0f} MB grew RSS by {growth / MB:.1f} MB (< 64 MB)")
        if mode == "inline" and growth > 3 * size:
            print(f"over target: inline {size / MB:.0f} MB grew RSS by {growth / size:.2f}x (<= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50,200", help="output sizes in MB, comma-separated")
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every case; medians are reported")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, name, endpoint = args.child
        path = Path(name)
        warm = path.with_name(f"warm-{os.getpid()}.bin")
        warm.write_bytes(b"w" * 1000)
        print(json.dumps(asyncio.run(_child(mode, path, path.stat().st_size, endpoint, warm))))
        warm.unlink()
        return

    result = measure([float(s) for s in args.sizes.split(",")], args.modes.split(","), args.rounds)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
