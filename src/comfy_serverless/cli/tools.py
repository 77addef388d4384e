"""The subcommands that need no endpoint: ``convert``, ``validate`` and ``templates``."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import JobError
from ..settings import SHIPPED_TEMPLATES, Settings
from ..workflows.check import check_workflow
from ..workflows.editor import editor_to_prompt, is_editor_workflow
from ..workflows.object_info import ObjectInfo
from ..workflows.templates import Template, TemplateCatalog
from .common import CommandError, ExitCode, exit_code_for, fail, read_json, write, write_json


def object_info(args: argparse.Namespace) -> ObjectInfo:
    """The node definitions from ``--object-info FILE``, else from ``--comfy-url``'s /object_info."""
    if args.object_info:
        raw = read_json(args.object_info, "object info")
    else:
        url = args.comfy_url.rstrip("/") + "/object_info"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                raw = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CommandError(
                f"cannot read {url} ({exc}); start ComfyUI, pass --comfy-url, or --object-info FILE",
                ExitCode.UNAVAILABLE,
            ) from None
    if not isinstance(raw, dict):
        raise CommandError("the object info is not a JSON object of node classes")
    return ObjectInfo(raw)


def _workflow(path: str) -> dict[str, Any]:
    workflow = read_json(path, "workflow")
    if not isinstance(workflow, dict):
        raise CommandError(f"{path} is not a workflow (a JSON object)")
    return workflow


def cmd_convert(args: argparse.Namespace) -> int:
    workflow = _workflow(args.workflow)
    if not is_editor_workflow(workflow):
        sys.stderr.write("comfy-serverless: the workflow is already in API format; printed unchanged\n")
        write(json.dumps(workflow, indent=2, ensure_ascii=False))
        return ExitCode.OK
    try:
        prompt = editor_to_prompt(workflow, object_info(args))
    except JobError as exc:
        return fail(exc.message, exit_code_for(exc))
    write(json.dumps(prompt, indent=2, ensure_ascii=False))
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    workflow = _workflow(args.workflow)
    result = check_workflow(workflow, object_info(args))
    error = result.error
    prompt = result.prompt or {}
    if args.json:
        report: dict[str, Any] = {
            "valid": error is None,
            "format": "editor" if is_editor_workflow(workflow) else "api",
            "nodes": len(prompt),
            "output_nodes": result.output_nodes,
        }
        if error is not None:
            report.update(
                error=error.message,
                error_type=error.error_type,
                problems=error.details.get("node_errors") or error.details.get("missing") or [],
            )
        write_json(report)
    elif error is None:
        outputs = ", ".join(f"{node_id} ({prompt[node_id]['class_type']})" for node_id in result.output_nodes)
        write(f"valid: {len(prompt)} nodes; output nodes: {outputs}")
    else:
        write(error.message)
    return ExitCode.OK if error is None else exit_code_for(error)


def catalog(extra_dirs: list[str] | None = None) -> TemplateCatalog:
    """The templates this machine knows: the shipped ones, TEMPLATES_DIR's, and ``extra_dirs``."""
    settings = Settings()
    folders = [settings.builtin_templates_dir, settings.templates_dir, *(Path(d) for d in extra_dirs or ())]
    return TemplateCatalog.load(folders)


def cmd_templates(args: argparse.Namespace) -> int:
    found = catalog(args.dir)
    for problem in found.problems:
        sys.stderr.write(f"comfy-serverless: {problem}\n")
    if args.write_schemas:
        target = Path(args.write_schemas)
        target.mkdir(parents=True, exist_ok=True)
        for name, template in found.templates.items():
            (target / f"{name}.schema.json").write_text(schema_text(template), encoding="utf-8")
        write(f"wrote {len(found.templates)} schemas to {target}")
        return ExitCode.ERROR if found.problems else ExitCode.OK
    if args.name:
        if args.name not in found.templates:
            return fail(
                f"there is no template {args.name!r} (available: {', '.join(found.names()) or 'none'})"
            )
        write(schema_text(found.templates[args.name]))
        return ExitCode.OK
    for name in found.names():
        template = found.templates[name]
        parameters = ", ".join(
            f"{p}{'' if spec.required else '?'}:{spec.type}"
            for p, spec in template.manifest.parameters.items()
        )
        write(f"{name:<20} {template.manifest.title}\n{'':<20} {parameters}")
    return ExitCode.ERROR if found.problems else ExitCode.OK


def schema_text(template: Template) -> str:
    """A template's JSON Schema as written to ``schemas/templates/<name>.schema.json``."""
    return json.dumps(template.json_schema(), indent=2, ensure_ascii=False) + "\n"


def add_object_info_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--comfy-url", default="http://127.0.0.1:8188", help="a running ComfyUI to read /object_info from"
    )
    source.add_argument("--object-info", metavar="FILE", help="a saved /object_info JSON file instead")


def add_parsers(sub: Any) -> None:
    convert = sub.add_parser(
        "convert",
        help="print the API-format prompt of a workflow saved from the ComfyUI editor",
        description="Convert an editor (UI-format) workflow into the API prompt, exactly as ComfyUI's own "
        "frontend does, using a ComfyUI's node definitions.",
    )
    convert.add_argument("workflow", help="the workflow file saved from the editor (- for standard input)")
    add_object_info_source(convert)
    convert.set_defaults(func=cmd_convert)

    validate = sub.add_parser(
        "validate",
        help="check a workflow against a ComfyUI's node definitions without running it",
        description="Check a workflow (editor or API format) the way the worker and ComfyUI would before "
        "running it: conversion, node classes, output nodes, required inputs, links and their types, "
        "value ranges and choice lists (model files included). Problems are named in the worker's own "
        "words. Not checked: what needs the running ComfyUI (files a job brings, a node's own checks).",
    )
    validate.add_argument("workflow", help="the workflow file (- for standard input)")
    add_object_info_source(validate)
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.set_defaults(func=cmd_validate)

    templates = sub.add_parser(
        "templates",
        help="list the templates, or print one template's JSON Schema",
        description=f"Templates are read from {SHIPPED_TEMPLATES} (BUILTIN_TEMPLATES_DIR), TEMPLATES_DIR "
        "and any --dir.",
    )
    templates.add_argument("name", nargs="?", help="print this template's JSON Schema")
    templates.add_argument("--dir", action="append", help="another folder of templates (repeatable)")
    templates.add_argument("--write-schemas", metavar="DIR", help="write every template's schema into DIR")
    templates.set_defaults(func=cmd_templates)
