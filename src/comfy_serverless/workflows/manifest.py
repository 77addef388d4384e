"""Template manifests: the YAML file that turns a workflow into an API with named, typed parameters.

A template is two files side by side, ``<name>.yaml`` (this manifest) and the workflow it names
(API or editor format)::

    title: LTX-2 text to video
    description: A video with sound from a text prompt.
    workflow: ltx2_t2v.json
    parameters:
      prompt:
        type: string
        required: true
        description: What happens in the video.
        sets: [{node: "92:3", input: text}]          # a node id, or a node title that is unique
      duration: {type: number, default: 5, minimum: 1, maximum: 20}
      seed: {type: seed, sets: [{node: RandomNoise, input: noise_seed}]}
    derived:                                          # values computed from the parameters
      frames:
        value: "(duration * fps) // 8 * 8 + 1"        # LTX-2 wants 8k+1 frames
        sets: [{node: "92:62", input: value}]
    models:
      - {name: ltx-2-19b-dev-fp8.safetensors, folder: checkpoints, url: https://..., sha256: ...}

Parameter types: ``string``, ``integer``, ``number``, ``boolean``, ``choice`` (one of ``choices``),
``seed`` (an integer or ``"random"``), and the media types ``image``, ``video``, ``audio`` and
``file``, which take the forms of job inputs (base64, a data URI, an http(s) URL): the worker stores
the file in the job's input folder and sets the loader's input to its name.

Derived values are expressions over the parameters (and earlier derived values) in Jinja's
expression syntax, evaluated in a sandbox, with ``round``, ``floor``, ``ceil``, ``min``, ``max``,
``int``, ``float`` and ``abs``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ParameterType = Literal[
    "string", "integer", "number", "boolean", "choice", "seed", "image", "video", "audio", "file"
]
MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Job fields a parameter cannot be called, so the two never collide at the top level of an input.
RESERVED_NAMES = frozenset(
    {
        "workflow",
        "template",
        "params",
        "images",
        "inputs",
        "timeout",
        "comfy_org_api_key",
        "api_key_comfy_org",
        "include_temp_outputs",
        "allow_partial",
        "webhook",
        "output",
        "outputs",
        "storage",
    }
)


class ManifestError(ValueError):
    """A template that cannot be used; the message names the file and the field."""


def _round(value: float, digits: int = 0) -> float | int:
    """Half away from zero, as people round (Python's ``round`` rounds halves to even)."""
    quantum = Decimal(1).scaleb(-digits)
    result = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    return int(result) if digits <= 0 else float(result)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "abs": abs,
}


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment()
    env.globals.clear()
    env.globals.update(_FUNCTIONS)
    return env


class Target(BaseModel):
    """A node input a parameter sets."""

    model_config = ConfigDict(extra="forbid")

    node: Annotated[str, Field(min_length=1, description="A node id, or a node title that is unique.")]
    input: Annotated[str, Field(min_length=1, description="The input's name.")]

    @field_validator("node", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Parameter(BaseModel):
    """One named, typed value a job may pass."""

    model_config = ConfigDict(extra="forbid")

    type: ParameterType
    description: str = ""
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str | int | float] | None = None
    sets: list[Target] = []

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default")
        if self.type == "choice" and not self.choices:
            raise ValueError("type `choice` needs `choices`")
        if self.type != "choice" and self.choices is not None:
            raise ValueError("`choices` belongs to type `choice`")
        if (self.minimum is not None or self.maximum is not None) and self.type not in (
            "integer",
            "number",
            "seed",
        ):
            raise ValueError("`minimum` and `maximum` belong to numbers")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("`minimum` is larger than `maximum`")
        if self.type in MEDIA_TYPES and self.default is not None:
            raise ValueError("a media parameter has no default; the loader's own file is used when omitted")
        return self


class Derived(BaseModel):
    """A value computed from parameters, set on node inputs."""

    model_config = ConfigDict(extra="forbid")

    value: Annotated[str, Field(min_length=1, description="An expression over the parameters.")]
    sets: list[Target] = []


class ModelFile(BaseModel):
    """A model file the template needs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    folder: str
    url: str | None = None
    sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = None


class Manifest(BaseModel):
    """A template manifest, as written in YAML."""

    model_config = ConfigDict(extra="forbid")

    title: str
    description: str = ""
    workflow: str
    source: str = ""
    outputs: list[Literal["image", "video", "audio", "text", "3d", "file"]] = []
    parameters: dict[str, Parameter] = {}
    derived: dict[str, Derived] = {}
    models: list[ModelFile] = []

    @model_validator(mode="after")
    def _names(self) -> Manifest:
        for name in [*self.parameters, *self.derived]:
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a parameter name (lower case letters, digits, _)")
            if name in RESERVED_NAMES:
                raise ValueError(f"parameter {name!r} would hide the job field of that name; rename it")
        clash = set(self.parameters) & set(self.derived)
        if clash:
            raise ValueError(f"{sorted(clash)} are both parameters and derived values")
        return self


class CompiledDerived:
    """A derived value with its expression compiled once."""

    def __init__(self, name: str, spec: Derived, known: set[str], env: SandboxedEnvironment):
        self.name = name
        self.spec = spec
        try:
            names = meta.find_undeclared_variables(env.parse("{{ " + spec.value + " }}"))
            self._expression = env.compile_expression(spec.value)
        except TemplateSyntaxError as exc:
            raise ManifestError(f"derived.{name}.value: {exc.message}") from None
        self.names: set[str] = set(names) - set(_FUNCTIONS)
        unknown = sorted(self.names - known)
        if unknown:
            raise ManifestError(
                f"derived.{name}.value uses {', '.join(unknown)}, which are not parameters or earlier derived values"
            )

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        result = self._expression(**values)
        if isinstance(result, float) and result.is_integer():
            return int(result)
        return result


def load_manifest(path: Path) -> tuple[Manifest, list[CompiledDerived]]:
    """Read and check one manifest; :class:`ManifestError` names the file and what is wrong."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: a manifest is a mapping with title, workflow and parameters")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'manifest'}: {str(error['msg']).removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ManifestError(f"{path}: {problems}") from None
    env = _environment()
    known = set(manifest.parameters)
    compiled: list[CompiledDerived] = []
    for name, spec in manifest.derived.items():
        try:
            compiled.append(CompiledDerived(name, spec, known, env))
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from None
        known.add(name)
    return manifest, compiled
