"""The warm-up job: what the WARMUP setting names, run once after ComfyUI's first boot so that the first
real job finds its models loaded (loading a large checkpoint can take longer than the job itself)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JobError

log = logging.getLogger(__name__)

#: Keys that make a JSON object a job input rather than a workflow.
_JOB_KEYS = ("workflow", "template")


class WarmupSpecError(ValueError):
    """WARMUP names nothing the worker can run."""


@dataclass(frozen=True, slots=True)
class Warmup:
    """The warm-up job's input and where it came from, for the logs."""

    source: str
    job_input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WarmupReport:
    source: str
    seconds: float
    error: str | None = None
    outputs: int = 0

    def summary_line(self) -> str:
        if self.error is not None:
            return f"Warm-up FAILED after {self.seconds:.1f} s ({self.source}): {self.error}"
        return f"Warm-up: {self.source} ran in {self.seconds:.1f} s ({self.outputs} output(s), discarded)"


def _as_job_input(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WarmupSpecError(f"WARMUP: {where} holds a JSON {type(data).__name__}, not an object")
    if isinstance(data.get("input"), dict):  # a whole RunPod request, as test_input.json has it
        data = data["input"]
        assert isinstance(data, dict)
    if any(key in data for key in _JOB_KEYS):
        return dict(data)
    return {"workflow": data}  # a workflow file, in API or editor format


def resolve_warmup(spec: str, template_names: list[str]) -> Warmup:
    """Read WARMUP: inline JSON, a JSON file, or a template name (run with its defaults)."""
    text = spec.strip()
    if text.startswith("{"):
        try:
            return Warmup("inline job", _as_job_input(json.loads(text), "the inline JSON"))
        except json.JSONDecodeError as exc:
            raise WarmupSpecError(f"WARMUP: the inline JSON does not parse: {exc}") from exc
    if text in template_names:
        return Warmup(f"template {text}", {"template": text})
    path = Path(text).expanduser()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WarmupSpecError(f"WARMUP: cannot read {path} as JSON: {exc}") from exc
        return Warmup(f"file {path}", _as_job_input(data, str(path)))
    raise WarmupSpecError(
        f"WARMUP: {text!r} is neither a template this worker has ("
        + (", ".join(template_names) or "none")
        + "), nor a JSON file, nor inline JSON"
    )


async def run_warmup(
    spec: str,
    template_names: list[str],
    run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> WarmupReport:
    """Run the warm-up; never raises: a failed warm-up is reported, and the worker takes jobs anyway."""
    started = time.monotonic()
    try:
        warmup = resolve_warmup(spec, template_names)
    except WarmupSpecError as exc:
        log.error("%s", exc)
        return WarmupReport(spec, 0.0, error=str(exc))
    log.info("Warm-up: running %s", warmup.source)
    try:
        result = await run(warmup.job_input)
    except JobError as exc:
        report = WarmupReport(
            warmup.source, time.monotonic() - started, error=f"{exc.error_type}: {exc.message}"
        )
        log.error("%s", report.summary_line())
        return report
    report = WarmupReport(warmup.source, time.monotonic() - started, outputs=int(result.get("outputs", 0)))
    log.info("%s", report.summary_line())
    return report
