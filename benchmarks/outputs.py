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

Usage: python benchmarks/outputs.py [--sizes 1,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

MB = 1_000_000
MODES = ("inline", "inline (old)", "s3")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50,200", help="output sizes in MB, comma-separated")
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

    from tests.support.s3_server import moto_server

    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    rows: list[tuple[int, str, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="outputs-bench-") as folder, moto_server(buckets=["bench"]) as s3:
        for size in sizes:
            path = _random_file(Path(folder), size)
            for mode in MODES:
                result = _run_case(mode, path, s3.url)
                rows.append((size, mode, result["seconds"], result["growth"]))
            path.unlink()

    print(f"{'size':>8}  {'mode':<13} {'seconds':>8} {'peak RSS +MB':>13} {'RSS/size':>9}")
    for size, mode, seconds, growth in rows:
        print(f"{size / MB:>6.0f}MB  {mode:<13} {seconds:>8.3f} {growth / MB:>13.1f} {growth / size:>9.2f}")
    print()
    for size, mode, _, growth in rows:
        if mode == "s3" and growth >= 64 * MB:
            print(f"over target: s3 upload of {size / MB:.0f} MB grew RSS by {growth / MB:.1f} MB (< 64 MB)")
        if mode == "inline" and growth > 3 * size:
            print(f"over target: inline {size / MB:.0f} MB grew RSS by {growth / size:.2f}x (<= 3x)")


if __name__ == "__main__":
    main()
