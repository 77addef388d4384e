"""How the WARMUP setting is read into a job input, and how its outcome is reported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.errors import InvalidInputError
from comfy_serverless.jobs.warmup import WarmupSpecError, resolve_warmup, run_warmup

API = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
EDITOR = {"nodes": [], "links": [], "version": 0.4}


def test_inline_job_input_is_taken_as_is() -> None:
    warmup = resolve_warmup(' {"template": "sdxl_t2i", "prompt": "warm"} ', ["sdxl_t2i"])
    assert (warmup.source, warmup.job_input) == ("inline job", {"template": "sdxl_t2i", "prompt": "warm"})


def test_a_template_name_runs_the_template_with_its_defaults() -> None:
    warmup = resolve_warmup("flux1_schnell_t2i", ["flux1_schnell_t2i", "ltx2_t2v"])
    assert (warmup.source, warmup.job_input) == (
        "template flux1_schnell_t2i",
        {"template": "flux1_schnell_t2i"},
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (API, {"workflow": API}),  # an API-format workflow file
        (EDITOR, {"workflow": EDITOR}),  # the editor's saved file
        ({"workflow": API, "timeout": 60}, {"workflow": API, "timeout": 60}),  # a job input
        ({"input": {"template": "x", "seed": 1}}, {"template": "x", "seed": 1}),  # a test_input.json request
    ],
)
def test_a_json_file_may_hold_a_workflow_a_job_input_or_a_whole_request(
    tmp_path: Path, content: dict[str, Any], expected: dict[str, Any]
) -> None:
    path = tmp_path / "warm.json"
    path.write_text(json.dumps(content))
    warmup = resolve_warmup(str(path), [])
    assert (warmup.source, warmup.job_input) == (f"file {path}", expected)


def test_unreadable_specs_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(WarmupSpecError, match=r"^WARMUP: the inline JSON does not parse: Expecting"):
        resolve_warmup("{not json", [])
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(WarmupSpecError, match=rf"^WARMUP: {listed} holds a JSON list, not an object$"):
        resolve_warmup(str(listed), [])
    with pytest.raises(
        WarmupSpecError,
        match=r"^WARMUP: 'missing' is neither a template this worker has \(a, b\), nor a JSON file, nor inline JSON$",
    ):
        resolve_warmup("missing", ["a", "b"])


def test_run_warmup_reports_success_and_failure_without_raising() -> None:
    async def succeed(job_input: dict[str, Any]) -> dict[str, Any]:
        assert job_input == {"template": "t"}
        return {"outputs": 2, "warnings": []}

    async def fail(job_input: dict[str, Any]) -> dict[str, Any]:
        raise InvalidInputError("prompt: Field required")

    good = asyncio.run(run_warmup("t", ["t"], succeed))
    assert (good.source, good.error, good.outputs) == ("template t", None, 2)
    assert good.summary_line().startswith("Warm-up: template t ran in 0.0 s (2 output(s), discarded)")
    bad = asyncio.run(run_warmup("t", ["t"], fail))
    assert (
        bad.summary_line() == "Warm-up FAILED after 0.0 s (template t): invalid_input: prompt: Field required"
    )
