"""The ``comfy-serverless`` command: run workflows on an endpoint, and tools around the worker (the
worker itself is ``python -m comfy_serverless``).

    comfy-serverless run my_workflow.json --endpoint ID [--param KSampler.seed=random] [--input photo.png=./photo.png]
    comfy-serverless run sdxl_t2i --param prompt='a lighthouse' --param seed=42 --local http://127.0.0.1:8000
    comfy-serverless status JOB_ID --endpoint ID [--out DIR]
    comfy-serverless cancel JOB_ID --endpoint ID
    comfy-serverless validate my_workflow.json [--comfy-url URL | --object-info FILE]
    comfy-serverless convert ui.json [--comfy-url URL | --object-info FILE] > api.json
    comfy-serverless templates                       # list the templates
    comfy-serverless templates ltx2_t2v              # one template's JSON Schema
    comfy-serverless templates --write-schemas schemas/templates
    comfy-serverless serve [--host H] [--port P]     # the worker as an HTTP service

``run``, ``status``, ``cancel`` and ``validate`` take ``--json``: one JSON object on standard output
(job id, status, outputs with the paths they were saved to, timings; ``error``, ``error_type`` and
``details`` on failure; ``exit_code``); only argparse's own usage errors stay plain text on standard
error. ``--endpoint`` needs ``RUNPOD_API_KEY``.

Exit codes (:class:`~.common.ExitCode`): 0 success; 1 any other error (a file that cannot be read or
written); 2 usage; 3 invalid workflow or input (``validate`` found problems, or the worker refused
the job: invalid_input, invalid_workflow, workflow_validation_failed); 4 the job failed while running,
or its outputs could not be saved; 5 the job timed out, or ``--timeout`` passed first; 6 the job was
cancelled; 7 the endpoint, worker or ComfyUI is unavailable; 130 interrupted (``run`` cancels its job).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import jobs, serve, tools
from .common import EXIT_CODES_TEXT, CommandError, ExitCode, error_fields, fail, write_json
from .tools import schema_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-serverless",
        description="Run ComfyUI workflows on a comfy-serverless endpoint, and tools around the worker.",
        epilog=EXIT_CODES_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the client does on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs.add_parsers(sub)
    tools.add_parsers(sub)
    serve.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return fail("interrupted", ExitCode.INTERRUPTED)
    except CommandError as exc:
        if getattr(args, "json", False):
            write_json({**error_fields(exc), "exit_code": int(exc.code)})
            return int(exc.code)
        return fail(str(exc), exc.code)
    return int(result)


__all__ = ["ExitCode", "build_parser", "main", "schema_text"]
