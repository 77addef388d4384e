"""The job input, validated with pydantic v2. Its JSON Schema is published as
``schemas/job_input.schema.json``.

The shape is worker-comfyui's (``workflow``, ``images[{name, image}]``, the Comfy.org key), so its
clients work unchanged; the other fields are additions.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..errors import InvalidInputError

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class InputImage(BaseModel):
    """A file handed to the workflow. Loader nodes refer to it by ``name``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=255,
            description="File name the workflow's loader nodes use, e.g. `input.png`. A plain name: "
            "no folders, no `..`.",
        ),
    ]
    image: Annotated[
        str,
        Field(
            min_length=1,
            description="The file: base64, a `data:` URI, or an http(s) URL the worker downloads.",
        ),
    ]

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if _UNSAFE_NAME.search(value) or value in {".", ".."} or value.strip() != value:
            raise ValueError(
                "must be a plain file name without folders, control characters or surrounding spaces"
            )
        return value


_WORKFLOW_HELP = (
    "ComfyUI workflow, as an object or a JSON string: the API format ({node_id: {class_type, inputs}}; "
    "Workflow > Export (API)) or the file the editor saves (with `nodes` and `links`), which is converted "
    "exactly as ComfyUI's own frontend converts it."
)


def _plain_name(value: str) -> str:
    if _UNSAFE_NAME.search(value) or value in {".", ".."} or value.strip() != value:
        raise ValueError(
            "must be a plain file name without folders, control characters or surrounding spaces"
        )
    return value


class InputFile(BaseModel):
    """Any file a loader node reads from ComfyUI's input folder: image, mask, video, audio, 3D, text."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=255,
            description="File name the loader node uses, e.g. `clip.mp4`; its extension must fit the content.",
        ),
    ]
    data: Annotated[str | None, Field(min_length=1, description="The file as base64 or a `data:` URI.")] = (
        None
    )
    url: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Where to fetch it: an http(s) URL (public addresses only unless allowed) or "
            "`s3://bucket/key`, read with the job's or the worker's storage credentials.",
        ),
    ] = None
    subfolder: Annotated[
        str,
        Field(
            max_length=255,
            description="A folder below the job's input folder, e.g. `masks` (the loader then names "
            "`masks/<name>`).",
        ),
    ] = ""

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        return _plain_name(value)

    @field_validator("subfolder")
    @classmethod
    def _relative_folder(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/") if value else []
        if any(not part or _UNSAFE_NAME.search(part) or part in {".", ".."} for part in parts):
            raise ValueError(
                "must be a relative folder such as `masks` or `a/b`, without `..` or empty parts"
            )
        return "/".join(parts)

    @model_validator(mode="after")
    def _one_source(self) -> InputFile:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of `data` (base64 or a data: URI) and `url`")
        return self

    @property
    def stored_name(self) -> str:
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


class ImageFormat(BaseModel):
    """Still images converted before delivery."""

    model_config = ConfigDict(extra="forbid")

    format: Annotated[
        Literal["webp", "jpeg", "png"], Field(description="The format outputs are converted to.")
    ]
    quality: Annotated[
        int, Field(ge=1, le=100, description="Encoder quality for WEBP and JPEG (PNG is lossless).")
    ] = 90


class JobInput(BaseModel):
    """What a job asks the worker to do."""

    # Extra keys are kept: they are a template's parameters. Without a template they are ignored, as
    # worker-comfyui ignores them.
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, json_schema_extra={"additionalProperties": True}
    )

    workflow: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(
            {
                "anyOf": [{"type": "object"}, {"type": "string"}],
                "title": "Workflow",
                "description": _WORKFLOW_HELP,
            }
        ),
        Field(description=_WORKFLOW_HELP),
    ] = None
    template: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Name of a template to run instead of a workflow; its parameters go at the top "
            "level of the input, next to this field (`comfy-serverless templates` lists them).",
        ),
    ] = None
    params: Annotated[
        dict[str, dict[str, Any]],
        Field(
            description="Values set on the workflow's nodes: {node id or unique node title: {input name: "
            'value}}. A `seed` or `noise_seed` of "random" draws a fresh seed.'
        ),
    ] = {}
    images: Annotated[
        list[InputImage],
        Field(description="Files uploaded to ComfyUI's input folder before the workflow is queued."),
    ] = []
    inputs: Annotated[
        list[InputFile],
        Field(
            description="Any files loader nodes read (images, masks, video, audio, 3D, text), from "
            "base64, a data: URI, an http(s) URL or s3://; stored in the job's input folder."
        ),
    ] = []
    delivery: Annotated[
        Literal["inline", "s3", "auto"] | None,
        Field(description="How this job's outputs come back; overrides the DELIVERY setting."),
    ] = None
    output_format: Annotated[
        ImageFormat | None,
        Field(description="Convert still image outputs to WEBP, JPEG or PNG before delivery."),
    ] = None
    timeout: Annotated[
        float | None,
        Field(gt=0, description="Seconds for the whole job. Default and maximum are worker settings."),
    ] = None
    comfy_org_api_key: Annotated[
        SecretStr | None,
        Field(
            validation_alias=AliasChoices("comfy_org_api_key", "api_key_comfy_org"),
            description="Comfy.org API key for API nodes (also accepted as `api_key_comfy_org`).",
        ),
    ] = None
    include_temp_outputs: Annotated[
        bool, Field(description="Also return temp previews (PreviewImage, PreviewAudio).")
    ] = False
    allow_partial: Annotated[
        bool,
        Field(
            description="Run the valid output branches when ComfyUI rejects others, and report the "
            "rejected ones as warnings, instead of failing the job.",
        ),
    ] = False

    @field_validator("workflow", mode="before")
    @classmethod
    def _workflow_from_json_string(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"is a string but not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON object mapping node ids to nodes, not {_json_type(value)}")
        if not value:
            raise ValueError("is empty; it needs at least one node")
        return value

    @model_validator(mode="after")
    def _workflow_or_template(self) -> JobInput:
        if self.workflow is None and self.template is None:
            raise ValueError("send a `workflow` (API or editor format) or the name of a `template`")
        if self.workflow is not None and self.template is not None:
            raise ValueError("send either a `workflow` or a `template`, not both")
        return self

    def template_values(self) -> dict[str, Any]:
        """The top-level keys that are not job fields: a template's parameters."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _unique_image_names(self) -> JobInput:
        seen: dict[str, str] = {}
        stored = [(f"images[{i}].name", image.name) for i, image in enumerate(self.images)]
        stored += [(f"inputs[{i}].name", item.stored_name) for i, item in enumerate(self.inputs)]
        for where, name in stored:
            if name in seen:
                raise ValueError(f"{where} {name!r} repeats {seen[name]}")
            seen[name] = where
        return self


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "input"


def parse_job_input(raw: Any) -> JobInput:
    """Validate a job's ``input``; raises InvalidInputError naming every field at fault.

    Values are never echoed back, so a secret in a wrong place cannot leak into the error."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidInputError(
                'input is a string but not a JSON object; send {"workflow": {...}}',
                details={"field": "input"},
            ) from None
    if not isinstance(raw, dict):
        raise InvalidInputError(
            f"input must be a JSON object with a `workflow` field, not {_json_type(raw)}",
            details={"field": "input"},
        )
    try:
        return JobInput.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append({"field": _location(tuple(error["loc"])), "message": message})
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInputError(f"Invalid job input: {summary}", details={"problems": problems}) from None


def job_input_json_schema() -> dict[str, Any]:
    """The JSON Schema of a job's ``input``, as published in schemas/job_input.schema.json."""
    schema = JobInput.model_json_schema(by_alias=False)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "comfy-serverless job input"
    return schema


if __name__ == "__main__":
    import sys

    sys.stdout.write(json.dumps(job_input_json_schema(), indent=2) + "\n")
