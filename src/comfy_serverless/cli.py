"""The ``comfy-serverless`` command: tools around the worker (the worker itself is
``python -m comfy_serverless``).

    comfy-serverless convert ui.json [--comfy-url URL | --object-info FILE] > api.json
    comfy-serverless templates                       # list the templates
    comfy-serverless templates ltx2_t2v              # one template's JSON Schema
    comfy-serverless templates --write-schemas schemas/templates
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import JobError
from .settings import SHIPPED_TEMPLATES, Settings
from .workflows.editor import editor_to_prompt, is_editor_workflow
from .workflows.object_info import ObjectInfo
from .workflows.templates import Template, TemplateCatalog


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


class CommandError(Exception):
    """A failure the command reports in one line and exits 1 for."""


def _fail(message: str) -> int:
    sys.stderr.write(f"comfy-serverless: {message}\n")
    return 1


def _read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what} {path} is not JSON: {exc}") from None


def _object_info(args: argparse.Namespace) -> ObjectInfo:
    if args.object_info:
        raw = _read_json(args.object_info, "object info")
    else:
        url = args.comfy_url.rstrip("/") + "/object_info"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                raw = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CommandError(
                f"cannot read {url} ({exc}); start ComfyUI, pass --comfy-url, or --object-info FILE"
            ) from None
    if not isinstance(raw, dict):
        raise CommandError("the object info is not a JSON object of node classes")
    return ObjectInfo(raw)


def _cmd_convert(args: argparse.Namespace) -> int:
    workflow = _read_json(args.workflow, "workflow")
    if not isinstance(workflow, dict):
        return _fail(f"{args.workflow} is not a workflow (a JSON object)")
    if not is_editor_workflow(workflow):
        sys.stderr.write("comfy-serverless: the workflow is already in API format; printed unchanged\n")
        _write(json.dumps(workflow, indent=2, ensure_ascii=False))
        return 0
    try:
        prompt = editor_to_prompt(workflow, _object_info(args))
    except JobError as exc:
        return _fail(exc.message)
    _write(json.dumps(prompt, indent=2, ensure_ascii=False))
    return 0


def _catalog(args: argparse.Namespace) -> TemplateCatalog:
    settings = Settings()
    folders = [settings.builtin_templates_dir, settings.templates_dir, *(Path(d) for d in args.dir or ())]
    return TemplateCatalog.load(folders)


def _cmd_templates(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    for problem in catalog.problems:
        sys.stderr.write(f"comfy-serverless: {problem}\n")
    if args.write_schemas:
        target = Path(args.write_schemas)
        target.mkdir(parents=True, exist_ok=True)
        for name, template in catalog.templates.items():
            (target / f"{name}.schema.json").write_text(schema_text(template), encoding="utf-8")
        _write(f"wrote {len(catalog.templates)} schemas to {target}")
        return 1 if catalog.problems else 0
    if args.name:
        if args.name not in catalog.templates:
            return _fail(
                f"there is no template {args.name!r} (available: {', '.join(catalog.names()) or 'none'})"
            )
        _write(schema_text(catalog.templates[args.name]))
        return 0
    for name in catalog.names():
        template = catalog.templates[name]
        parameters = ", ".join(
            f"{p}{'' if spec.required else '?'}:{spec.type}"
            for p, spec in template.manifest.parameters.items()
        )
        _write(f"{name:<20} {template.manifest.title}\n{'':<20} {parameters}")
    return 1 if catalog.problems else 0


def schema_text(template: Template) -> str:
    """A template's JSON Schema as written to ``schemas/templates/<name>.schema.json``."""
    return json.dumps(template.json_schema(), indent=2, ensure_ascii=False) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfy-serverless", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser(
        "convert",
        help="print the API-format prompt of a workflow saved from the ComfyUI editor",
        description="Convert an editor (UI-format) workflow into the API prompt, exactly as ComfyUI's own "
        "frontend does, using a ComfyUI's node definitions.",
    )
    convert.add_argument("workflow", help="the workflow file saved from the editor (- for standard input)")
    source = convert.add_mutually_exclusive_group()
    source.add_argument(
        "--comfy-url", default="http://127.0.0.1:8188", help="a running ComfyUI to read /object_info from"
    )
    source.add_argument("--object-info", help="a saved /object_info JSON file instead")
    convert.set_defaults(func=_cmd_convert)

    templates = sub.add_parser(
        "templates",
        help="list the templates, or print one template's JSON Schema",
        description=f"Templates are read from {SHIPPED_TEMPLATES} (BUILTIN_TEMPLATES_DIR), TEMPLATES_DIR "
        "and any --dir.",
    )
    templates.add_argument("name", nargs="?", help="print this template's JSON Schema")
    templates.add_argument("--dir", action="append", help="another folder of templates (repeatable)")
    templates.add_argument("--write-schemas", metavar="DIR", help="write every template's schema into DIR")
    templates.set_defaults(func=_cmd_templates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CommandError as exc:
        return _fail(str(exc))
    return result


if __name__ == "__main__":
    sys.exit(main())
