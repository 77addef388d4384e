"""Templates: workflows called by name with typed parameters (``{"template": "ltx2_t2v", "prompt": ...}``).

Templates are found at start-up in the shipped ``workflows/`` folder and in ``TEMPLATES_DIR``; a file
there overrides a shipped template of the same name. A broken manifest is reported with its file
name and leaves the other templates working. Each template gets a pydantic model built from its
manifest, which validates a job's parameters and gives the template's JSON Schema.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from ..errors import InvalidInputError
from .manifest import MEDIA_TYPES, CompiledDerived, Manifest, ManifestError, Parameter, load_manifest
from .params import RANDOM, SEED_RANGE

log = logging.getLogger(__name__)

_DEFAULT_EXTENSIONS = {"image": ".png", "video": ".mp4", "audio": ".wav", "file": ".bin"}


@dataclass(slots=True)
class MediaFile:
    """A file a media parameter brings, to store in the job's input folder as ``name``."""

    parameter: str
    name: str
    source: str


@dataclass(slots=True)
class TemplateCall:
    """What a template makes of one job's parameters."""

    template: str
    workflow: dict[str, Any]
    #: ``{node id or title: {input: value}}``: parameters first, then derived values.
    params: dict[str, dict[str, Any]]
    media: list[MediaFile]
    values: dict[str, Any] = field(default_factory=dict)


def _field_for(name: str, parameter: Parameter) -> tuple[Any, Any]:
    bounds: dict[str, Any] = {}
    whole = parameter.type in ("integer", "seed")
    if parameter.minimum is not None:
        bounds["ge"] = int(parameter.minimum) if whole else parameter.minimum
    if parameter.maximum is not None:
        bounds["le"] = int(parameter.maximum) if whole else parameter.maximum
    description = parameter.description or None
    annotation: Any
    if parameter.type == "string":
        annotation = str
    elif parameter.type == "integer":
        annotation = Annotated[int, Field(strict=False, **bounds)]
    elif parameter.type == "number":
        annotation = Annotated[float, Field(**bounds)]
    elif parameter.type == "boolean":
        annotation = bool
    elif parameter.type == "choice":
        annotation = Literal[tuple(parameter.choices or ())]
    elif parameter.type == "seed":
        seed_bounds = {"ge": 0, **bounds}
        annotation = Annotated[int, Field(**seed_bounds)] | Literal["random"]
        description = (description or "Seed") + ' (a number, or "random" for a fresh one each job)'
    else:
        annotation = Annotated[str, Field(min_length=1)]
        given_as = "base64, a data: URI, an http(s) URL or s3://bucket/key"
        description = f"{description} ({given_as})" if description else f"{parameter.type}: {given_as}"
    if parameter.required:
        return annotation, Field(..., description=description)
    if parameter.default is not None:
        return annotation, Field(parameter.default, description=description)
    # No default: leaving it out (or null) keeps the workflow's own value.
    return annotation | None, Field(None, description=description)


def _media_name(parameter: str, kind: str, source: str) -> str:
    """A file name for a media parameter, with the extension its data or URL suggests."""
    extension = ""
    if source.startswith("data:"):
        mime = source[5:].split(";", 1)[0].split(",", 1)[0].strip().lower()
        extension = mimetypes.guess_extension(mime) or ""
    elif source.startswith(("http://", "https://", "s3://")):
        suffix = PurePosixPath(urlparse(source).path).suffix.lower()
        if 1 < len(suffix) <= 6 and suffix[1:].isalnum():
            extension = suffix
    return parameter + (extension or _DEFAULT_EXTENSIONS[kind])


class Template:
    """One template: manifest, workflow and parameter model."""

    def __init__(self, name: str, manifest_path: Path, manifest: Manifest, derived: list[CompiledDerived]):
        self.name = name
        self.manifest_path = manifest_path
        self.manifest = manifest
        self.derived = derived
        workflow_path = (manifest_path.parent / manifest.workflow).resolve()
        if manifest_path.parent.resolve() not in workflow_path.parents:
            raise ManifestError(
                f"{manifest_path}: workflow {manifest.workflow!r} is outside the template's folder"
            )
        try:
            workflow = json.loads(workflow_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ManifestError(
                f"{manifest_path}: workflow {manifest.workflow!r} cannot be read: {exc}"
            ) from None
        if not isinstance(workflow, dict) or not workflow:
            raise ManifestError(f"{manifest_path}: workflow {manifest.workflow!r} is not a workflow object")
        self.workflow: dict[str, Any] = workflow
        for entry in derived:
            for used in entry.names:
                parameter = manifest.parameters.get(used)
                if parameter is not None and not parameter.required and parameter.default is None:
                    raise ManifestError(
                        f"{manifest_path}: derived.{entry.name} uses {used!r}, which has no default and is "
                        "not required; give it a default"
                    )
        fields = {pname: _field_for(pname, p) for pname, p in manifest.parameters.items()}
        for pname, (annotation, _) in fields.items():
            default = manifest.parameters[pname].default
            if default is None:
                continue
            try:
                TypeAdapter(annotation).validate_python(default)
            except ValidationError:
                kind = manifest.parameters[pname].type
                raise ManifestError(
                    f"{manifest_path}: parameters.{pname}: default {default!r} is not a valid {kind} "
                    "(or is out of its bounds)"
                ) from None
        self.model: type[BaseModel] = create_model(  # type: ignore[call-overload]
            f"Template_{name}",
            __config__=ConfigDict(extra="forbid", title=manifest.title),
            **fields,
        )

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of a job's input calling this template (its parameters plus ``template``)."""
        schema = self.model.model_json_schema()
        properties = {
            "template": {"const": self.name, "description": "The template's name."},
            **schema.get("properties", {}),
        }
        result: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"comfy-serverless template {self.name}: {self.manifest.title}",
            "description": self.manifest.description,
            "type": "object",
            "properties": properties,
            "required": ["template", *schema.get("required", [])],
            "additionalProperties": True,
        }
        if "$defs" in schema:
            result["$defs"] = schema["$defs"]
        return result

    def call(self, raw: Mapping[str, Any], rng: random.Random | None = None) -> TemplateCall:
        """Validate a job's parameters and turn them into values on the workflow's nodes."""
        try:
            validated = self.model.model_validate(dict(raw))
        except ValidationError as exc:
            raise self._invalid(exc) from None
        values = validated.model_dump()
        draw = rng or random.SystemRandom()
        params: dict[str, dict[str, Any]] = {}
        media: list[MediaFile] = []
        for pname, parameter in self.manifest.parameters.items():
            value = values.get(pname)
            if value is None:
                continue
            if parameter.type == "seed" and value == RANDOM:
                value = values[pname] = draw.randrange(SEED_RANGE)
            if parameter.type in MEDIA_TYPES:
                file = MediaFile(pname, _media_name(pname, parameter.type, str(value)), str(value))
                media.append(file)
                value = file.name
            for target in parameter.sets:
                params.setdefault(target.node, {})[target.input] = value
        scope = dict(values)
        for entry in self.derived:
            try:
                result = entry.evaluate(scope)
            except Exception as exc:  # an expression that fails on these values: say which and why
                raise InvalidInputError(
                    f"template {self.name}: derived value {entry.name!r} ({entry.spec.value}) could not be "
                    f"computed from these parameters: {type(exc).__name__}: {exc}",
                    details={"template": self.name, "derived": entry.name},
                ) from None
            scope[entry.name] = result
            for target in entry.spec.sets:
                params.setdefault(target.node, {})[target.input] = result
        return TemplateCall(self.name, json.loads(json.dumps(self.workflow)), params, media, values)

    def _invalid(self, exc: ValidationError) -> InvalidInputError:
        problems: list[dict[str, str]] = []
        parameters = ", ".join(self.manifest.parameters) or "none"
        for error in exc.errors(include_input=False, include_url=False):
            location = ".".join(str(part) for part in error["loc"] if part not in ("int", "float", "str"))
            name = str(error["loc"][0]) if error["loc"] else "input"
            if error["type"] == "extra_forbidden":
                message = f"not a parameter of template {self.name} (its parameters: {parameters})"
            elif error["type"] == "missing":
                message = "required"
            else:
                message = str(error["msg"]).removeprefix("Value error, ")
                parameter = self.manifest.parameters.get(name)
                if parameter is not None and parameter.type == "choice":
                    message = f"must be one of {', '.join(repr(c) for c in parameter.choices or ())}"
            problems.append({"field": location or name, "message": message})
        merged: dict[str, str] = {}
        for problem in problems:  # a seed that is neither a number nor "random" fails both arms
            merged.setdefault(problem["field"].split(".")[0], problem["message"])
        summary = "; ".join(f"{field_name}: {message}" for field_name, message in merged.items())
        return InvalidInputError(
            f"Invalid parameters for template {self.name}: {summary}",
            details={
                "template": self.name,
                "problems": [{"field": k, "message": v} for k, v in merged.items()],
            },
        )


@dataclass
class TemplateCatalog:
    """Every template the worker offers, by name, and the manifests that could not be used."""

    templates: dict[str, Template] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, folders: Iterable[Path | None]) -> TemplateCatalog:
        catalog = cls()
        for folder in folders:
            if folder is None or not folder.is_dir():
                continue
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                name = path.stem
                try:
                    manifest, derived = load_manifest(path)
                    template = Template(name, path, manifest, derived)
                except ManifestError as exc:
                    catalog.problems.append(str(exc))
                    log.error("Template %s is not available: %s", name, exc)
                    continue
                if name in catalog.templates:
                    log.info(
                        "Template %s from %s replaces the one from %s",
                        name,
                        path,
                        catalog.templates[name].manifest_path,
                    )
                catalog.templates[name] = template
        return catalog

    def names(self) -> list[str]:
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        template = self.templates.get(name)
        if template is None:
            available = ", ".join(self.names()) or "none"
            raise InvalidInputError(
                f"template: there is no template {name!r} (available: {available})",
                details={"field": "template", "available": self.names()},
            )
        return template


def describe(template: Template) -> dict[str, Any]:
    """A short, JSON-friendly summary for listings."""
    return {
        "name": template.name,
        "title": template.manifest.title,
        "description": template.manifest.description,
        "parameters": {
            name: {
                "type": p.type,
                "required": p.required,
                **({"default": p.default} if p.default is not None else {}),
            }
            for name, p in template.manifest.parameters.items()
        },
        "models": [m.model_dump(exclude_none=True) for m in template.manifest.models],
    }


def templates_table(catalog: TemplateCatalog) -> str:
    """Markdown table of the templates and their parameters (the README embeds the shipped ones)."""
    rows = ["| Template | What it makes | Parameters (required in bold) |", "| --- | --- | --- |"]
    for name in catalog.names():
        manifest = catalog.templates[name].manifest
        parameters = ", ".join(
            f"**`{p}`**" if spec.required else f"`{p}`" for p, spec in manifest.parameters.items()
        )
        rows.append(f"| `{name}` | {manifest.title} | {parameters} |")
    return "\n".join(rows)
