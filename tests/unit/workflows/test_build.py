"""Turning a job's workflow, template values and params into the prompt: by node id or title, seeds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.errors import InvalidInputError, WorkflowError
from comfy_serverless.workflows.build import build_prompt
from comfy_serverless.workflows.object_info import ObjectInfo
from comfy_serverless.workflows.params import SEED_RANGE, seeds_used
from comfy_serverless.workflows.templates import TemplateCatalog
from tests.support.reference import object_info, workflow

SAMPLER = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {
        "class_type": "KSampler",
        "_meta": {"title": "Base sampler"},
        "inputs": {"seed": 5, "steps": 20, "cfg": 8.0, "latent_image": ["1", 0]},
    },
    "4": {"class_type": "KSampler", "_meta": {"title": "Twin"}, "inputs": {"seed": 6}},
    "5": {"class_type": "KSampler", "_meta": {"title": "Twin"}, "inputs": {"seed": 7}},
}


async def _build(
    wf: dict[str, Any] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    template: str | None = None,
    values: dict[str, Any] | None = None,
    templates: TemplateCatalog | None = None,
    rng: random.Random | None = None,
) -> dict[str, dict[str, Any]]:
    asked: list[set[str]] = []

    async def info() -> ObjectInfo:
        return object_info()

    async def known(classes: set[str]) -> dict[str, set[str]]:
        asked.append(classes)
        return {c: d.input_names for c in classes if (d := object_info().get(c))}

    built = await build_prompt(
        workflow=wf,
        params=params or {},
        template=template,
        template_values=values or {},
        templates=templates or TemplateCatalog(),
        object_info=info,
        known_inputs=known,
        rng=rng,
    )
    return built.prompt


async def test_params_name_nodes_by_id_or_unique_title_and_leave_the_callers_workflow_alone() -> None:
    prompt = await _build(SAMPLER, {"Base sampler": {"steps": 4}, "1": {"width": 128}})
    assert prompt["3"]["inputs"]["steps"] == 4
    assert prompt["1"]["inputs"]["width"] == 128
    assert SAMPLER["3"]["inputs"]["steps"] == 20


async def test_params_may_set_optional_inputs_the_workflow_left_out() -> None:
    prompt = await _build(SAMPLER, {"3": {"denoise": 0.5}})
    assert prompt["3"]["inputs"]["denoise"] == 0.5


@pytest.mark.parametrize(
    ("wf", "params", "message"),
    [
        ({"1": []}, {}, "workflow node '1' must be an object"),
        ({"1": {"inputs": {}}}, {}, "workflow node '1' has no class_type"),
        ({"1": {"class_type": "X", "inputs": 3}}, {}, "node '1' (X) has inputs that are not an object"),
        (
            SAMPLER,
            {"Twin": {"seed": 1}},
            "params['Twin']: 2 nodes are titled 'Twin' (ids 4, 5); use a node id",
        ),
        (
            SAMPLER,
            {"7": {"a": 1}},
            "params['7']: the workflow has no node with id or title '7' (ids: 1, 3, 4, 5;",
        ),
        (
            SAMPLER,
            {"1": {"widthh": 1}},
            "params['1']['widthh']: node 1 (EmptyLatentImage) has no input 'widthh'",
        ),
    ],
)
async def test_refusals_name_the_culprit(wf: dict[str, Any], params: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        await _build(wf, params)
    assert message in caught.value.message


async def test_random_seeds_are_drawn_in_params_and_in_the_workflow_and_reported() -> None:
    wf = {**SAMPLER, "4": {"class_type": "KSampler", "inputs": {"seed": "random"}}}
    prompt = await _build(wf, {"3": {"seed": "random"}}, rng=random.Random(1))
    seeds = seeds_used(prompt)
    assert set(seeds) == {"3", "4", "5"} and seeds["5"] == 7
    assert all(0 <= seeds[n] < SEED_RANGE for n in ("3", "4"))
    assert seeds["3"] != seeds["4"]
    again = await _build(wf, {"3": {"seed": "random"}}, rng=random.Random(1))
    assert seeds_used(again) == seeds  # the same generator state draws the same seeds


async def test_editor_workflows_are_converted_and_params_may_use_editor_titles() -> None:
    editor = {
        "version": 0.4,
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "title": "Canvas",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "properties": {},
                "widgets_values": [64, 32, 1, 0],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "properties": {},
                "widgets_values": ["x"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    prompt = await _build(editor, {"Canvas": {"height": 48}})
    assert prompt["1"]["inputs"] == {"width": 64, "height": 48, "batch_size": 1, "color": 0}
    assert prompt["2"]["inputs"] == {"filename_prefix": "x", "images": ["1", 0]}


def _template_dir(tmp_path: Path, manifest: str, wf: dict[str, Any] | None = None) -> TemplateCatalog:
    import json

    (tmp_path / "tiny.json").write_text(json.dumps(wf or workflow("tiny_image")))
    (tmp_path / "tiny.yaml").write_text(manifest)
    return TemplateCatalog.load([tmp_path])


TINY = """
title: Tiny image
workflow: tiny.json
parameters:
  size: {type: integer, default: 64, minimum: 8, maximum: 512, sets: [{node: "1", input: width}]}
  name: {type: string, required: true, sets: [{node: "2", input: filename_prefix}]}
derived:
  double: {value: "size * 2", sets: [{node: "1", input: height}]}
"""


async def test_a_template_sets_its_parameters_and_derived_values_then_params_apply_on_top(
    tmp_path: Path,
) -> None:
    catalog = _template_dir(tmp_path, TINY)
    prompt = await _build(
        template="tiny", values={"size": 100, "name": "out"}, templates=catalog, params={"1": {"color": 3}}
    )
    assert prompt["1"]["inputs"] == {"width": 100, "height": 200, "batch_size": 1, "color": 3}
    assert prompt["2"]["inputs"]["filename_prefix"] == "out"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "x", "size": 4}, "size: Input should be greater than or equal to 8"),
        ({"size": 64}, "name: required"),
        ({"name": "x", "sise": 64}, "sise: not a parameter of template tiny (its parameters: size, name)"),
    ],
)
async def test_template_parameter_errors_name_the_parameter(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    catalog = _template_dir(tmp_path, TINY)
    with pytest.raises(InvalidInputError) as caught:
        await _build(template="tiny", values=values, templates=catalog)
    assert caught.value.message.startswith("Invalid parameters for template tiny: ")
    assert message in caught.value.message


async def test_an_unknown_template_lists_the_available_ones(tmp_path: Path) -> None:
    catalog = _template_dir(tmp_path, TINY)
    with pytest.raises(InvalidInputError, match=r"there is no template 'huge' \(available: tiny\)"):
        await _build(template="huge", templates=catalog)
