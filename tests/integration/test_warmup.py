"""WARMUP: a job run once after ComfyUI's first boot, reported in the start-up summary, its outputs
removed unsent; a warm-up that fails is logged and the worker still takes jobs."""

from __future__ import annotations

import json
import re
import time

from .helpers import assert_completed, tiny


def _summary(worker) -> str:
    """The start-up summary block, once the worker has logged it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"===== comfy-serverless start-up =====\n(.*?)\n=====", worker.log_text(), re.S)
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no start-up summary in the log:\n{worker.log_text()[-3000:]}")


def test_a_warmup_workflow_file_runs_before_the_summary_and_leaves_nothing_behind(
    make_worker, emulator_only, tmp_path
) -> None:
    path = tmp_path / "warm.json"
    path.write_text(json.dumps(tiny("warm")))
    worker = make_worker(warmup=str(path))
    summary = _summary(worker)
    assert re.search(
        rf"^Warm-up: file {re.escape(str(path))} ran in \d+\.\d s \(1 output\(s\), discarded\)$",
        summary,
        re.M,
    ), summary
    assert [p for p in (worker.data_dir / "output").rglob("*") if p.is_file()] == []
    output = assert_completed(worker.runsync({"workflow": tiny("real")}))
    assert [item["filename"].split("_")[0] for item in output["outputs"]] == ["real"]


def test_a_failed_warmup_is_reported_and_the_worker_takes_jobs(make_worker, emulator_only) -> None:
    worker = make_worker(warmup='{"template": "flux1_schnell_t2i", "prompt": "warm", "steps": 0}')
    summary = _summary(worker)
    assert re.search(
        r"^Warm-up FAILED after \d+\.\d s \(inline job\): invalid_input: Invalid parameters for template "
        r"flux1_schnell_t2i: steps: ",
        summary,
        re.M,
    ), summary
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_warmup_naming_nothing_says_what_it_accepts(make_worker, emulator_only) -> None:
    worker = make_worker(warmup="no_such_template")
    summary = _summary(worker)
    assert (
        "Warm-up FAILED after 0.0 s (no_such_template): WARMUP: 'no_such_template' is neither a template "
        "this worker has (flux1_schnell_t2i, " in summary
    ), summary
    assert "), nor a JSON file, nor inline JSON" in summary, summary
    assert_completed(worker.runsync({"workflow": tiny()}))
