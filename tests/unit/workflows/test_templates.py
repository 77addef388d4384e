"""Shipped templates and template manifests: every template builds a valid prompt with its defaults and
with its extreme parameters, derived values follow the manifest, schemas stay published, and a broken
manifest is reported by file name without taking the other templates down."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.cli import schema_text
from comfy_serverless.workflows.build import build_prompt
from comfy_serverless.workflows.manifest import ManifestError, load_manifest
from comfy_serverless.workflows.object_info import ObjectInfo
from comfy_serverless.workflows.templates import TemplateCatalog
from tests.support.emulator_validation import problems_besides_missing_models
from tests.support.reference import object_info, workflow

REPO = Path(__file__).resolve().parents[3]
CATALOG = TemplateCatalog.load([REPO / "workflows"])
NAMES = sorted(CATALOG.templates)
SAMPLE = {"string": "a red fox in the snow", "image": "aW1hZ2U=", "video": "dmlkZW8=", "audio": "YXVkaW8="}


def _build(name: str, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    async def info() -> ObjectInfo:
        return object_info()

    async def known(classes: set[str]) -> dict[str, set[str]]:
        return {c: d.input_names for c in classes if (d := object_info().get(c))}

    built = asyncio.run(
        build_prompt(
            workflow=None,
            params={},
            template=name,
            template_values=values,
            templates=CATALOG,
            object_info=info,
            known_inputs=known,
            rng=random.Random(0),
        )
    )
    return built.prompt


def _required(name: str) -> dict[str, Any]:
    parameters = CATALOG.templates[name].manifest.parameters
    return {p: SAMPLE[spec.type] for p, spec in parameters.items() if spec.required}


def _extremes(name: str, end: str) -> dict[str, Any]:
    values = _required(name)
    for p, spec in CATALOG.templates[name].manifest.parameters.items():
        bound = spec.minimum if end == "min" else spec.maximum
        if bound is not None:
            values[p] = int(bound) if spec.type in ("integer", "seed") else bound
        elif spec.type == "boolean":
            values[p] = end == "max"
    return values


def test_the_shipped_templates_are_the_nine_of_the_plan() -> None:
    assert CATALOG.problems == []
    assert NAMES == [
        "flux1_schnell_t2i",
        "ltx2_canny",
        "ltx2_depth",
        "ltx2_i2v",
        "ltx2_t2v",
        "sdxl_t2i",
        "wan22_i2v",
        "wan22_t2v",
        "z_image_turbo_t2i",
    ]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["defaults", "min", "max"])
def test_template_builds_a_prompt_comfyui_accepts(name: str, case: str, tmp_path: Path) -> None:
    values = _required(name) if case == "defaults" else _extremes(name, case)
    prompt = _build(name, values)
    assert problems_besides_missing_models(prompt, tmp_path) == []
    if "prompt" in values:
        texts = [n["inputs"].get("text", n["inputs"].get("value")) for n in prompt.values()]
        assert SAMPLE["string"] in texts


@pytest.mark.parametrize(
    ("name", "node", "step"),
    [("ltx2_t2v", "92:62", 8), ("ltx2_i2v", "92:62", 8), ("ltx2_canny", "168", 8), ("wan22_t2v", "74", 4)],
)
@pytest.mark.parametrize(("duration", "fps"), [(1, 8), (2.5, 24), (5, 25), (20, 60), (10, 30)])
def test_video_frame_counts_are_the_models_multiple_plus_one(
    name: str, node: str, step: int, duration: float, fps: int
) -> None:
    spec = CATALOG.templates[name].manifest.parameters
    if duration > (spec["duration"].maximum or 0) or fps > (spec["fps"].maximum or 0):
        pytest.skip("outside this template's bounds")
    prompt = _build(name, {**_required(name), "duration": duration, "fps": fps})
    frames = prompt[node]["inputs"].get("value", prompt[node]["inputs"].get("length"))
    assert (frames - 1) % step == 0
    assert frames - 1 <= duration * fps < frames - 1 + step


def test_sizes_are_rounded_to_the_models_multiple() -> None:
    prompt = _build("flux1_schnell_t2i", {"prompt": "x", "width": 1000, "height": 600})
    assert (prompt["27"]["inputs"]["width"], prompt["27"]["inputs"]["height"]) == (1008, 608)
    prompt = _build("sdxl_t2i", {"prompt": "x", "steps": 30, "refiner_share": 0.2})
    assert prompt["10"]["inputs"]["end_at_step"] == prompt["11"]["inputs"]["start_at_step"] == 24
    assert prompt["10"]["inputs"]["steps"] == prompt["11"]["inputs"]["steps"] == 30


@pytest.mark.parametrize("name", NAMES)
def test_published_schema_is_the_manifests(name: str) -> None:
    published = REPO / "schemas" / "templates" / f"{name}.schema.json"
    assert published.read_text() == schema_text(CATALOG.templates[name]), (
        "run: comfy-serverless templates --write-schemas schemas/templates"
    )


def test_schema_lists_required_parameters_bounds_and_seed_forms() -> None:
    schema = json.loads(schema_text(CATALOG.templates["ltx2_i2v"]))
    assert schema["required"] == ["template", "image", "prompt"]
    assert schema["properties"]["duration"]["maximum"] == 20
    assert {"const": "random", "type": "string"} in schema["properties"]["seed"]["anyOf"]


def test_media_parameters_are_stored_under_a_name_with_the_right_extension() -> None:
    template = CATALOG.templates["ltx2_canny"]
    call = template.call(
        {
            "prompt": "x",
            "video": "https://example.com/clips/flowers.webm?sig=1",
            "image": "data:image/jpeg;base64,aGVsbG8=",
        }
    )
    assert [(m.parameter, m.name) for m in call.media] == [("video", "video.webm"), ("image", "image.jpg")]
    assert call.params["Load Video"]["file"] == "video.webm"
    plain = CATALOG.templates["wan22_i2v"].call({"prompt": "x", "image": "aGVsbG8="})
    assert plain.media[0].name == "image.png"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "tiny.json").write_text(json.dumps(workflow("tiny_image")))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


GOOD = "title: Tiny\nworkflow: tiny.json\nparameters:\n  width: {type: integer, default: 8, sets: [{node: '1', input: width}]}\n"


def test_a_broken_manifest_is_reported_by_file_and_the_others_still_load(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "good.yaml": GOOD,
            "bad_yaml.yaml": "title: [unclosed\n",
            "bad_type.yaml": "title: T\nworkflow: tiny.json\nparameters:\n  x: {type: colour}\n",
            "no_workflow.yaml": "title: T\nworkflow: missing.json\n",
        },
    )
    catalog = TemplateCatalog.load([folder])
    assert catalog.names() == ["good"]
    problems = "\n".join(catalog.problems)
    assert "bad_yaml.yaml: not valid YAML" in problems
    assert "bad_type.yaml: parameters.x.type: Input should be 'string'" in problems
    assert "no_workflow.yaml: workflow 'missing.json' cannot be read" in problems


def test_a_users_folder_overrides_a_shipped_template_of_the_same_name(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"sdxl_t2i.yaml": GOOD})
    catalog = TemplateCatalog.load([REPO / "workflows", folder])
    assert catalog.templates["sdxl_t2i"].manifest.title == "Tiny"
    assert "ltx2_t2v" in catalog.templates


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "title: T\nworkflow: tiny.json\nparameters:\n  timeout: {type: number}\n",
            "would hide the job field",
        ),
        ("title: T\nworkflow: tiny.json\nparameters:\n  Width: {type: integer}\n", "is not a parameter name"),
        (
            "title: T\nworkflow: tiny.json\nderived:\n  h: {value: 'w * 2'}\n",
            "derived.h.value uses w, which are not parameters or earlier derived values",
        ),
        ("title: T\nworkflow: tiny.json\nderived:\n  h: {value: 'w *'}\n", "derived.h.value: unexpected"),
        (
            "title: T\nworkflow: tiny.json\nparameters:\n  c: {type: choice}\n",
            "type `choice` needs `choices`",
        ),
        (
            "title: T\nworkflow: tiny.json\nparameters:\n  s: {type: integer, default: abc}\n",
            "default 'abc' is not a valid integer",
        ),
    ],
)
def test_manifest_mistakes_are_named(tmp_path: Path, manifest: str, message: str) -> None:
    folder = _folder(tmp_path, {"t.yaml": manifest})
    catalog = TemplateCatalog.load([folder])
    assert catalog.names() == []
    (problem,) = catalog.problems
    assert problem.startswith(f"{folder / 't.yaml'}: ")
    assert message in problem


def test_load_manifest_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("- just a list\n")
    with pytest.raises(ManifestError, match=r"t\.yaml: a manifest is a mapping"):
        load_manifest(tmp_path / "t.yaml")
