"""The whole benchmark suite in one command, one table: the worker against ComfyUI used directly.

Each row is measured side by side in the same run (interleaved or alternating), by the scripts beside
this one, each in its own process (so one's memory or threads never weigh on another):
  overhead.py    - per-job overhead: a tiny job through a lean client of ComfyUI against the same job
                   through the handler in process, and through RunPod's /runsync end to end;
  cold_start.py  - ComfyUI's own boot to its first /system_stats answer and to its first tiny result,
                   against the worker's process start to its first tiny result;
  outputs.py     - output delivery: a client's GET /view of a file from ComfyUI against the worker's
                   inline base64 encoding and its S3 upload (moto's server on loopback) of the same file;
  throughput.py  - short jobs through the worker's production loop (RunPod's SDK against a local stand-in
                   for RunPod's queue) at CONCURRENCY 1 and 2, against the same prompts sent to ComfyUI by
                   a lean client; every output is checked to be its own job's.
Backend: the emulator (tests/emulator) by default; a real ComfyUI when COMFYUI_DIR is set (COMFYUI_PYTHON,
COMFYUI_ARGS as for the worker; COMFYUI_ARGS defaults to --cpu when nvidia-smi finds no GPU).

Usage: python benchmarks/suite.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
MB = 1_000_000


@dataclass(frozen=True)
class Counts:
    overhead_jobs: int
    cold_rounds: int
    output_mb: float
    output_rounds: int
    throughput_jobs: int
    throughput_chunks: int


FULL = Counts(
    overhead_jobs=200, cold_rounds=3, output_mb=50, output_rounds=3, throughput_jobs=100, throughput_chunks=4
)
QUICK = Counts(
    overhead_jobs=20, cold_rounds=1, output_mb=10, output_rounds=1, throughput_jobs=8, throughput_chunks=2
)


@dataclass
class Row:
    key: str
    what: str
    unit: str
    direct: float
    worker: float
    notes: str = ""
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.worker / self.direct if self.direct else float("nan")


# --- the machine ------------------------------------------------------------------------------------


def gpus() -> list[str]:
    """GPUs nvidia-smi reports ("name, memory"), none when it is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in answer.stdout.splitlines() if line.strip()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(found_gpus: list[str]) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": found_gpus,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


# --- running the scripts ----------------------------------------------------------------------------


def run_script(script: str, args: list[str], env: dict[str, str], folder: Path) -> dict[str, Any]:
    """Run benchmarks/<script> with --json; its figures. Its own printout is shown only if it fails."""
    out = folder / f"{Path(script).stem}.json"
    started = time.perf_counter()
    print(f"  {script} {' '.join(args)} ...", end="", file=sys.stderr, flush=True)
    answer = subprocess.run(
        [sys.executable, str(HERE / script), *args, "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    print(f" {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if answer.returncode != 0 or not out.exists():
        print(answer.stdout[-6000:], answer.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{script} failed with exit code {answer.returncode}")
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def measure(counts: Counts, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        folder = Path(tmp)
        return {
            "overhead": run_script("overhead.py", ["--jobs", str(counts.overhead_jobs)], env, folder),
            "cold_start": run_script("cold_start.py", ["--rounds", str(counts.cold_rounds)], env, folder),
            "outputs": run_script(
                "outputs.py",
                [
                    "--sizes",
                    f"{counts.output_mb:g}",
                    "--modes",
                    "view,inline,s3",
                    "--rounds",
                    str(counts.output_rounds),
                ],
                env,
                folder,
            ),
            "throughput": run_script(
                "throughput.py",
                [
                    "--jobs",
                    str(counts.throughput_jobs),
                    "--chunks",
                    str(counts.throughput_chunks),
                    "--concurrency",
                    "1,2",
                ],
                env,
                folder,
            ),
        }


# --- the table --------------------------------------------------------------------------------------


def rows(raw: dict[str, Any], counts: Counts) -> list[Row]:
    found: list[Row] = []

    overhead = raw["overhead"]["paths"]
    rss = (raw["overhead"]["rss_after"] - raw["overhead"]["rss_before"]) / MB
    jobs = counts.overhead_jobs
    for key, path, what in (
        ("overhead_handler", "handler", "per-job overhead: tiny job, handler in process"),
        ("overhead_runsync", "runsync", "per-job overhead: tiny job, `/runsync` end to end"),
    ):
        found.append(
            Row(
                key,
                what,
                "median ms",
                overhead["direct"]["median_ms"],
                overhead[path]["median_ms"],
                f"{jobs} jobs per path, interleaved; p90 {overhead['direct']['p90_ms']:.2f} → "
                f"{overhead[path]['p90_ms']:.2f} ms"
                + (f"; process RSS {rss:+.1f} MB over {3 * jobs} jobs" if path == "runsync" else ""),
            )
        )

    cold = raw["cold_start"]["median_s"]
    rounds = counts.cold_rounds
    worker_cold = cold["worker_first_result"]
    found.append(
        Row(
            "cold_start_system_stats",
            "cold start: ComfyUI's boot to first `/system_stats` → worker's start to first tiny result",
            "median s",
            cold["comfyui_system_stats"],
            worker_cold,
            f"rounds: {rounds}, alternating; the worker adds {worker_cold - cold['comfyui_system_stats']:+.2f} s "
            "(target < 0.5 s)",
        )
    )
    found.append(
        Row(
            "cold_start_first_result",
            "cold start: ComfyUI's start to first tiny result → worker's",
            "median s",
            cold["comfyui_first_result"],
            worker_cold,
            f"rounds: {rounds}, alternating; the worker adds {worker_cold - cold['comfyui_first_result']:+.2f} s",
        )
    )

    medians = {row["mode"]: row for row in raw["outputs"]["medians"]}
    view = medians["view"]
    size = f"{counts.output_mb:g} MB"
    for key, mode, what in (
        ("output_inline", "inline", f"output delivery, {size}: `/view` download → inline base64"),
        ("output_upload", "s3", f"output delivery, {size}: `/view` download → S3 upload (moto, loopback)"),
    ):
        found.append(
            Row(
                key,
                what,
                "median s",
                view["seconds"],
                medians[mode]["seconds"],
                f"rounds: {counts.output_rounds}, each in a fresh process; peak RSS growth "
                f"{view['growth'] / MB:.1f} → {medians[mode]['growth'] / MB:.1f} MB",
            )
        )

    throughput = raw["throughput"]["concurrency"]
    for concurrency, baseline, label in (
        ("1", "direct_one_at_a_time", "one prompt at a time"),
        ("2", "direct_all_queued", "all prompts queued at once"),
    ):
        figures = throughput[concurrency]
        other = "direct_all_queued" if baseline == "direct_one_at_a_time" else "direct_one_at_a_time"
        wrong = figures["worker"]["wrong_outputs"] + figures[baseline]["wrong_outputs"]
        wrong += figures[other]["wrong_outputs"]
        found.append(
            Row(
                f"throughput_c{concurrency}",
                f"throughput, CONCURRENCY={concurrency}: direct ComfyUI, {label} → production loop",
                "jobs/s",
                figures[baseline]["jobs_per_s"],
                figures["worker"]["jobs_per_s"],
                f"{figures['worker']['jobs']} jobs per path; outputs not their job's: {wrong}; "
                f"direct, {other.removeprefix('direct_').replace('_', ' ')}: "
                f"{figures[other]['jobs_per_s']:.1f} jobs/s",
            )
        )
    return found


def backend_line(raw: dict[str, Any], env: dict[str, str]) -> str:
    stats = raw["overhead"].get("system_stats") or {}
    system = stats.get("system", {})
    version = system.get("comfyui_version", "?")
    devices = stats.get("devices") or [{}]
    device = devices[0].get("name", "?")
    if env.get("COMFYUI_DIR"):
        torch = system.get("pytorch_version", "?")
        args = env.get("COMFYUI_ARGS", "")
        return f"real ComfyUI {version} (PyTorch {torch}, device {device}, COMFYUI_ARGS={args!r})"
    return f"the emulator (tests/emulator, ComfyUI {version} protocol)"


def machine_line(found: dict[str, Any]) -> str:
    gpu = "; ".join(found["gpus"]) if found["gpus"] else "no GPU"
    return f"{found['cpu']}, {found['cores']} cores, {found['ram_gib']} GiB RAM, {gpu}, {found['os']}"


def figure(value: float) -> str:
    """Three significant digits, trailing zeros kept (1.00, 0.177, 107)."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def table(found: list[Row]) -> str:
    lines = [
        "| measure | unit | direct ComfyUI | worker | worker / direct | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in found:
        lines.append(
            f"| {row.what} | {row.unit} | {figure(row.direct)} | {figure(row.worker)} | {figure(row.ratio)} "
            f"| {row.notes} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke check of about a minute)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure to FILE")
    args = parser.parse_args()
    counts = QUICK if args.quick else FULL

    found_gpus = gpus()
    env = dict(os.environ)
    if env.get("COMFYUI_DIR") and "COMFYUI_ARGS" not in env:
        env["COMFYUI_ARGS"] = "" if found_gpus else "--cpu"
    started = time.perf_counter()
    print(f"benchmark suite ({'quick' if args.quick else 'full'}):", file=sys.stderr)
    raw = measure(counts, env)
    seconds = time.perf_counter() - started
    found = rows(raw, counts)
    about = machine(found_gpus)
    header = (
        f"Machine: {machine_line(about)}. ComfyUI: {backend_line(raw, env)}. "
        f"Suite {'--quick ' if args.quick else ''}ran in {seconds:.0f} s."
    )
    print(f"\n{header}\n\n{table(found)}")
    mismatched = sum(
        paths[name]["wrong_outputs"] for paths in raw["throughput"]["concurrency"].values() for name in paths
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": about,
                    "backend": backend_line(raw, env),
                    "quick": args.quick,
                    "counts": asdict(counts),
                    "seconds": seconds,
                    "mismatched_outputs": mismatched,
                    "rows": [asdict(row) for row in found],
                    "raw": raw,
                },
                indent=2,
            )
        )
    if mismatched:
        raise SystemExit(f"{mismatched} outputs were not their own job's")


if __name__ == "__main__":
    main()
