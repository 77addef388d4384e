"""A bounded load test: 200 tiny jobs from 20 concurrent callers through /runsync against the emulator;
every result must be the one its job asked for, none lost. Throughput and latency are printed, not
asserted (the machine is shared)."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import decode_png, rgb, start_service, tiny

JOBS = 200
CALLERS = 20


def test_200_tiny_jobs_from_20_callers_all_come_back_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = start_service("emulator", tmp_path / "data", concurrency=2, http_queue_size=CALLERS * 2)
    try:
        local = threading.local()
        jobs = [(0x010101 * (index % 200) + index, 8 + index % 33) for index in range(JOBS)]

        def call(index: int) -> tuple[int, int, dict[str, Any], float]:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            color, width = jobs[index]
            started = time.perf_counter()
            response = session.post(
                service.url + "/runsync",
                json={"input": {"workflow": tiny(color=color, width=width, prefix=f"load{index}")}},
                timeout=120,
            )
            return index, response.status_code, response.json(), time.perf_counter() - started

        began = time.perf_counter()
        with ThreadPoolExecutor(CALLERS) as pool:
            results = list(pool.map(call, range(JOBS)))
        elapsed = time.perf_counter() - began

        assert [code for _, code, _, _ in results] == [200] * JOBS
        assert [answer["status"] for _, _, answer, _ in results] == ["COMPLETED"] * JOBS
        assert len({answer["id"] for _, _, answer, _ in results}) == JOBS
        for index, _, answer, _ in results:
            color, width = jobs[index]
            [item] = answer["output"]["outputs"]
            assert item["filename"].startswith(f"load{index}_")
            image = decode_png(item)
            assert image.size == (width, 8)
            pixel = image.convert("RGB").getpixel((0, 0))
            assert all(abs(a - b) <= 1 for a, b in zip(pixel, rgb(color), strict=True)), (index, pixel)
        health = service.get("/health").json()["jobs"]
        assert (health["completed"], health["failed"], health["cancelled"]) == (JOBS, 0, 0)
        assert (health["inQueue"], health["inProgress"]) == (0, 0)

        latencies = sorted(latency for *_, latency in results)
        p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
        with capsys.disabled():
            print(  # noqa: T201 - the figures are the point of this test
                f"\nHTTP service load: {JOBS} tiny jobs, {CALLERS} callers, CONCURRENCY=2: "
                f"{JOBS / elapsed:.1f} jobs/s, p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms, {elapsed:.1f} s in all"
            )
    finally:
        service.stop()
