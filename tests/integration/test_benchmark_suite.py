"""benchmarks/suite.py --quick runs end to end against the emulator and reports every row.

A smoke check of the suite's plumbing, not of speed: no figure is compared with a target here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.worker_process import REPO

ROWS = {
    "overhead_handler",
    "overhead_runsync",
    "cold_start_system_stats",
    "cold_start_first_result",
    "output_inline",
    "output_upload",
    "throughput_c1",
    "throughput_c2",
}


def test_the_quick_suite_reports_every_row_with_no_mixed_outputs(
    backend, emulator_only, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_")}  # the emulator
    out = tmp_path / "suite.json"
    answer = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "suite.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    result = json.loads(out.read_text())

    assert {row["key"] for row in result["rows"]} == ROWS
    for row in result["rows"]:
        assert row["direct"] > 0 and row["worker"] > 0 and row["ratio"] > 0, row
    assert result["mismatched_outputs"] == 0
    throughput = result["raw"]["throughput"]["concurrency"]
    for concurrency in ("1", "2"):
        for path in throughput[concurrency].values():
            assert path["jobs"] == result["counts"]["throughput_jobs"]
            assert path["wrong_outputs"] == 0
    assert "emulator" in result["backend"]
    # One table, with the machine named above it.
    assert "Machine: " in answer.stdout
    assert answer.stdout.count("| measure |") == 1
