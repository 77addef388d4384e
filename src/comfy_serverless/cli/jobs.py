"""The subcommands that talk to an endpoint: ``run``, ``status`` and ``cancel``, through
:class:`~comfy_serverless.client.EndpointClient`."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..client import (
    EndpointClient,
    EndpointClientError,
    JobFailed,
    JobInput,
    JobNotFound,
    JobResult,
    WaitTimeout,
)
from ..client.errors import job_failure
from ..client.inputs import LocalFile
from ..client.models import COMPLETED, JobStatus
from ..client.outputs import OutputInfo, parse_outputs
from ..errors import bytes_text
from .common import CommandError, ExitCode, complain, error_fields, exit_code_for, write, write_json
from .progress import describe, make_display
from .tools import catalog

log = logging.getLogger(__name__)

#: A job id no server has: asking its status tells RunPod's local development server (which answers
#: /status only to POST, and runs the job inside that request) from an endpoint that reports progress.
_PROBE_JOB = "comfy-serverless-probe"


# --- building the job ------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON when it parses (``42``, ``7.5``, ``true``, ``"a cat"``, ``[1, 2]``),
    else the text itself (``a cat``, ``random``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def split_assignment(text: str, option: str, form: str) -> tuple[str, str]:
    """``key=value`` split at the first ``=``; a usage error naming ``option`` and its ``form``."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise CommandError(f"{option} {text!r}: expected {form}", ExitCode.USAGE)
    return key.strip(), value


def node_param(key: str, text: str) -> tuple[str, str]:
    """``NODE.INPUT`` split at the last dot (node titles may hold dots; input names do not)."""
    node, dot, name = key.rpartition(".")
    if not dot or not node or not name:
        raise CommandError(
            f"--param {text!r}: a workflow's parameters are NODE.INPUT=VALUE, NODE a node id or title "
            "(e.g. --param KSampler.seed=random)",
            ExitCode.USAGE,
        )
    return node, name


@dataclass
class JobSpec:
    """What ``run`` was asked: a workflow file or a template, its values and local files."""

    workflow: Path | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    parameter_files: dict[str, Path] = field(default_factory=dict)
    timeout: float | None = None

    def job_input(self) -> JobInput:
        """The client's job input; CommandError when a file cannot be read."""
        extra: dict[str, Any] = {}
        if self.timeout is not None:
            extra["timeout"] = int(self.timeout) if self.timeout == int(self.timeout) else self.timeout
        try:
            if self.workflow is not None:
                return JobInput.from_workflow(
                    self.workflow, params=self.params or None, files=self.files or None, **extra
                )
            assert self.template is not None
            job = JobInput.from_template(self.template, params=self.params or None, files=self.files or None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        job.fields.update(self.parameters)
        job.fields.update(extra)
        for name, path in self.parameter_files.items():
            job.parameter_files[name] = LocalFile(path, path.name)
        return job


def job_spec(
    target: str,
    params: Sequence[str],
    inputs: Sequence[str],
    *,
    timeout: float | None = None,
    templates: Sequence[str] = (),
) -> tuple[JobSpec, str | None]:
    """Read ``run``'s arguments: ``target`` is a workflow file when one exists there, else a template
    name. Returns the spec and a note for a template name not among ``templates`` (known here; an
    endpoint may have its own, so it is sent anyway)."""
    spec = JobSpec(timeout=timeout)
    note = None
    path = Path(target)
    if path.is_file():
        spec.workflow = path
    elif path.suffix.lower() == ".json" or "/" in target or os.sep in target:
        raise CommandError(f"there is no workflow file {target}")
    else:
        spec.template = target
        if templates and target not in templates:
            note = (
                f"{target!r} is not a template known here ({', '.join(templates)}); sent as a template name "
                "all the same, since the endpoint may have its own"
            )
    for text in params:
        key, raw = split_assignment(text, "--param", "NAME=VALUE" if spec.template else "NODE.INPUT=VALUE")
        value = parse_value(raw)
        if spec.template is not None and "." not in key:
            spec.parameters[key] = value
        else:
            node, name = node_param(key, text)
            spec.params.setdefault(node, {})[name] = value
    for text in inputs:
        name, raw = split_assignment(text, "--input", "NAME=FILE")
        file = Path(raw).expanduser()
        if not file.is_file():
            raise CommandError(f"--input {text!r}: {file} is not a file")
        if spec.template is not None and "." not in name.rpartition("/")[2]:
            spec.parameter_files[name] = file  # a media parameter of the template, such as image
        else:
            spec.files[name] = file
    return spec, note


# --- the endpoint ----------------------------------------------------------------------------------


def make_client(args: argparse.Namespace) -> EndpointClient:
    if args.local:
        try:
            return EndpointClient(base_url=args.local)
        except ValueError as exc:
            raise CommandError(f"--local: {exc}", ExitCode.USAGE) from None
    if not (args.endpoint or os.environ.get("RUNPOD_ENDPOINT_ID")):
        raise CommandError(
            "name the endpoint: --endpoint ID (or RUNPOD_ENDPOINT_ID), or --local URL for a server on this "
            "machine",
            ExitCode.USAGE,
        )
    if not os.environ.get("RUNPOD_API_KEY"):
        raise CommandError("RunPod's API needs your API key: set RUNPOD_API_KEY", ExitCode.USAGE)
    return EndpointClient(args.endpoint)


def progress_unavailable(client: EndpointClient) -> bool:
    """True for RunPod's local development server (``--rp_serve_api``): it has no progress and runs
    the job inside its status request. Asks the status of a job that does not exist."""
    with contextlib.suppress(JobNotFound):
        client.status(_PROBE_JOB)
    return client.endpoint.blocking_status


# --- reporting -------------------------------------------------------------------------------------


def output_record(output: OutputInfo, path: Path | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "node_id": output.node_id,
        "type": output.type,
        "filename": output.filename,
        "mime": output.mime,
        "size_bytes": output.size_bytes,
        "sha256": output.sha256,
    }
    if path is not None:
        record["path"] = str(path)
    if output.url is not None:
        record["url"] = output.url
    if output.text is not None:
        record["text"] = output.text
    return record


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "?"


def _report_result(args: argparse.Namespace, result: JobResult, paths: list[Path]) -> None:
    if args.json:
        write_json(
            {
                "job_id": result.job_id,
                "status": COMPLETED,
                "out_dir": str(args.out),
                "outputs": [output_record(o, p) for o, p in zip(result.outputs, paths, strict=True)],
                "seeds": result.seeds,
                "warnings": result.warnings,
                "timings": result.timings,
                "delay_ms": result.delay_ms,
                "execution_ms": result.execution_ms,
                "queue_s": result.observed_queue_s,
                "elapsed_s": result.observed_s,
                "exit_code": int(ExitCode.OK),
            }
        )
        return
    for warning in result.warnings:
        complain(f"warning: {warning}")
    timing = ""
    if result.observed_s is not None:
        timing = f" in {_seconds(result.observed_s)}"
        if result.observed_queue_s is not None:
            timing += f" ({_seconds(result.observed_queue_s)} in the queue)"
    write(f"job {result.job_id} completed{timing}")
    if not paths:
        write("the job returned no outputs")
    else:
        write(f"saved {len(paths)} output{'s' if len(paths) != 1 else ''} to {args.out}:")
        for output, path in zip(result.outputs, paths, strict=True):
            size = bytes_text(path.stat().st_size)
            what = output.type + (f': "{output.text[:60]}"' if output.text is not None else "")
            write(f"  {path}  ({what}, {size})")
    if result.seeds:
        write("seeds: " + ", ".join(f"node {node} = {seed}" for node, seed in result.seeds.items()))


def _report_failure(args: argparse.Namespace, exc: BaseException, job_id: str | None) -> int:
    code = exit_code_for(exc)
    job_id = job_id or getattr(exc, "job_id", None)
    if args.json:
        status = exc.status if isinstance(exc, JobFailed) else None
        if isinstance(exc, WaitTimeout):
            status = exc.last_status
        write_json({"job_id": job_id, "status": status, **error_fields(exc), "exit_code": int(code)})
        return code
    message = str(exc)
    if isinstance(exc, WaitTimeout):
        message += (
            f"; the job goes on: see it with `comfy-serverless status {job_id}`, or stop it with "
            f"`comfy-serverless cancel {job_id}`"
        )
    complain(message)
    return code


# --- commands --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    known: list[str] = []
    if not Path(args.target).is_file():
        try:
            known = catalog().names()
        except ValidationError as exc:  # settings this machine cannot read: the worker's, not ours
            log.info("The templates known here could not be listed: %s", exc)
    spec, note = job_spec(
        args.target, args.param or (), args.input or (), timeout=args.timeout, templates=known
    )
    job_input = spec.job_input()
    display = make_display(args.json)
    if note:
        complain(note)
    with make_client(args) as client:
        blocking = False
        try:
            if args.local:
                blocking = progress_unavailable(client)
            handle = client.submit(job_input)
        except EndpointClientError as exc:
            return _report_failure(args, exc, None)
        if blocking:
            display.notice(
                f"progress is unavailable: {args.local} is RunPod's local development server, which runs "
                "the job inside its status request; waiting for the result"
            )
            display.blocking()
        display.submitted(handle.id)
        try:
            result = client.wait(handle, on_progress=display.update)
        except KeyboardInterrupt:
            display.finish("interrupted")
            return _interrupted(args, client, handle.id)
        except EndpointClientError as exc:
            display.finish(getattr(exc, "status", None) or "stopped")
            return _report_failure(args, exc, handle.id)
        display.finish(None)
        try:
            paths = result.save_all(args.out)
        except EndpointClientError as exc:
            return _report_failure(args, exc, handle.id)
        except OSError as exc:
            return _report_failure(
                args, CommandError(f"cannot save the outputs in {args.out}: {exc.strerror or exc}"), handle.id
            )
    if blocking:
        # The job ran inside the one status request: the client could not see it leave the queue.
        result = dataclasses.replace(result, observed_queue_s=None)
    _report_result(args, result, paths)
    return ExitCode.OK


def _interrupted(args: argparse.Namespace, client: EndpointClient, job_id: str) -> int:
    complain(f"interrupted; cancelling job {job_id}")
    try:
        status = client.cancel(job_id)
        state: str | None = status.status
    except EndpointClientError as exc:
        complain(f"could not cancel job {job_id}: {exc}")
        state = None
    if args.json:
        write_json(
            {
                "job_id": job_id,
                "status": state,
                "error": "interrupted",
                "exit_code": int(ExitCode.INTERRUPTED),
            }
        )
    return ExitCode.INTERRUPTED


def _status_code(status: JobStatus) -> ExitCode:
    if not status.done or status.status == COMPLETED:
        return ExitCode.OK
    return exit_code_for(job_failure(status.raw or {"id": status.job_id, "status": status.status}))


def cmd_status(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        try:
            status = client.status(args.job_id)
            paths: list[Path] = []
            if status.status == COMPLETED and args.out:
                paths = client.wait(args.job_id).save_all(args.out)
        except EndpointClientError as exc:
            return _report_failure(args, exc, args.job_id)
    code = _status_code(status)
    outputs = parse_outputs(status.output) if status.status == COMPLETED else []
    if args.json:
        record: dict[str, Any] = {
            "job_id": status.job_id,
            "status": status.status,
            "progress": status.progress.raw if status.progress is not None else None,
            "delay_ms": status.delay_ms,
            "execution_ms": status.execution_ms,
            "worker_id": status.worker_id,
        }
        if status.status == COMPLETED:
            record["outputs"] = [output_record(o, paths[i] if paths else None) for i, o in enumerate(outputs)]
        elif status.done:
            record.update(error_fields(job_failure(status.raw or {"status": status.status})))
        record["exit_code"] = int(code)
        write_json(record)
        return code
    if status.status == COMPLETED:
        names = ", ".join(o.save_name for o in outputs) or "none"
        write(f"job {status.job_id}: COMPLETED; outputs: {names}")
        for path in paths:
            write(f"  saved {path}")
    elif status.done:
        write(f"job {status.job_id}: {status.status}: {job_failure(status.raw).error}")
    elif status.progress is not None or status.status != "IN_QUEUE":
        write(f"job {status.job_id}: {status.status}: {describe(status)}")
    else:
        write(f"job {status.job_id}: {status.status}")
    return code


def cmd_cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        try:
            status = client.cancel(args.job_id)
        except EndpointClientError as exc:
            return _report_failure(args, exc, args.job_id)
    if args.json:
        write_json({"job_id": status.job_id, "status": status.status, "exit_code": int(ExitCode.OK)})
    else:
        write(f"job {status.job_id}: {status.status or 'cancel requested'}")
    return ExitCode.OK


# --- parsers ---------------------------------------------------------------------------------------


def _add_endpoint(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint",
        metavar="ID",
        help="the RunPod endpoint id (default RUNPOD_ENDPOINT_ID; key: RUNPOD_API_KEY)",
    )
    where.add_argument(
        "--local",
        metavar="URL",
        help="a server on this machine instead: the worker's `--rp_serve_api` (http://127.0.0.1:8000), a proxy",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on standard output")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def add_parsers(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a workflow or a template on an endpoint, showing progress, and save its outputs",
        description="Submit a workflow file (editor or API format) or a template by name, follow its "
        "progress, and save every output into --out as NODE_FILENAME.",
    )
    run.add_argument(
        "target", metavar="WORKFLOW_OR_TEMPLATE", help="a workflow JSON file, or a template name"
    )
    run.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="a template's parameter (prompt='a cat', seed=42), or a workflow node's input as "
        "NODE.INPUT=VALUE with NODE an id or title (KSampler.seed=random); VALUE is JSON when it parses, "
        "else text (repeatable)",
    )
    run.add_argument(
        "--input",
        action="append",
        metavar="NAME=FILE",
        help="send a local file that loader nodes read as NAME (photo.png, masks/m.png); with a template, "
        "a NAME without extension sets that media parameter (image=photo.png) (repeatable)",
    )
    _add_endpoint(run)
    run.add_argument(
        "--out",
        type=Path,
        default=Path("outputs"),
        metavar="DIR",
        help="where outputs are saved (default ./outputs)",
    )
    run.add_argument(
        "--timeout",
        type=_positive,
        metavar="S",
        help="the job's timeout in seconds (the worker stops it then); the command waits that long plus "
        "150 s for a cold start",
    )
    run.set_defaults(func=cmd_run)

    status = sub.add_parser(
        "status",
        help="print a job's status (exit code: the job's, once it ended)",
        description="Print a job's state and progress; for a completed job its outputs (saved into --out "
        "when given), for a failed one the worker's error. Exits 0 while the job is queued or running.",
    )
    status.add_argument("job_id", metavar="JOB_ID")
    _add_endpoint(status)
    status.add_argument(
        "--out", type=Path, metavar="DIR", help="save a completed job's outputs into this folder"
    )
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job", description="Cancel a job.")
    cancel.add_argument("job_id", metavar="JOB_ID")
    _add_endpoint(cancel)
    cancel.set_defaults(func=cmd_cancel)
