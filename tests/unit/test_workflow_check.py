"""The static workflow check (comfy_serverless.workflows.check): what real ComfyUI 0.8.0 refused, found
without it, in the worker's words."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.comfy.validation import describe_rejection
from comfy_serverless.settings import SHIPPED_TEMPLATES
from comfy_serverless.workflows.check import check_workflow
from comfy_serverless.workflows.editor import ConversionError, editor_to_prompt
from comfy_serverless.workflows.manifest import load_manifest
from comfy_serverless.workflows.object_info import ObjectInfo
from tests.support.editor_graphs import graph
from tests.support.reference import http_exchanges, object_info, object_info_raw

TINY: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def _recorded_rejections() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """{workflow name: (prompt, ComfyUI's 400 answer)} from 12_validation_errors."""
    found = {}
    for exchange in http_exchanges("12_validation_errors"):
        label = exchange.get("label") or ""
        if label.startswith("POST /prompt broken_"):
            found[label.split()[-1]] = (exchange["request"]["json"]["prompt"], exchange["response"]["json"])
    return found


RECORDED = _recorded_rejections()


def with_models(names: list[str]) -> ObjectInfo:
    """ComfyUI 0.8.0's definitions on a machine that has these model files in every model folder (the
    reference machine had none: its model lists are empty, or hold only built-in choices)."""
    raw = copy.deepcopy(object_info_raw())
    for definition in raw.values():
        for section in (definition.get("input") or {}).values():
            if not isinstance(section, dict):
                continue
            for input_name, spec in section.items():
                options = (
                    spec[1] if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) else {}
                )
                if any(
                    options.get(k) for k in ("image_upload", "video_upload", "audio_upload", "file_upload")
                ):
                    continue
                if isinstance(spec, list) and spec and isinstance(spec[0], list):
                    if input_name.endswith("_name") or not spec[0]:
                        spec[0] = [*spec[0], *names]
                elif isinstance(spec, list) and spec and spec[0] == "COMBO" and not options.get("options"):
                    options["options"] = list(names)
    return ObjectInfo(raw)


@pytest.mark.parametrize(
    "name",
    sorted(set(RECORDED) - {"broken_missing_class_type", "broken_missing_image_file"}),
)
def test_finds_what_comfyui_refused_in_the_worker_words(name: str) -> None:
    prompt, answer = RECORDED[name]
    worker_says = describe_rejection(answer["error"], answer["node_errors"], prompt).message

    result = check_workflow(prompt, object_info())

    assert result.error is not None
    assert result.error.message == worker_says
    assert result.error.error_type == "workflow_validation_failed"


def test_the_recorded_messages_name_the_node_and_input() -> None:
    """The sentences the check reproduces are the specific ones, not a generic fallback."""
    messages = {name: check_workflow(RECORDED[name][0], object_info()).error for name in RECORDED}
    assert str(messages["broken_bad_link"]) == (
        "ComfyUI rejected the workflow: node 2 (ImageInvert) input 'image' links to node 99, which is not "
        "in the workflow"
    )
    assert str(messages["broken_unknown_class"]) == (
        "ComfyUI rejected the workflow: node 2 uses class_type 'DoesNotExistNode', which this ComfyUI does "
        "not have (a custom node that is not installed?)"
    )
    assert str(messages["broken_value_not_in_list"]) == (
        "ComfyUI rejected the workflow: node 2 (ImageScale) input 'upscale_method': 'magic' is not one of "
        "'nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'"
    )


def test_a_node_without_class_type_gets_the_worker_own_sentence() -> None:
    prompt, _ = RECORDED["broken_missing_class_type"]
    result = check_workflow(prompt, object_info())
    assert result.prompt is None
    assert str(result.error) == "workflow node '1' has no class_type (the node type, such as SaveImage)"
    assert result.error is not None and result.error.error_type == "invalid_workflow"


def test_files_a_job_brings_are_not_checked_against_comfyui_list() -> None:
    """LoadImage's choices are the files in ComfyUI's input folder; a job uploads its own, and ComfyUI
    itself checks them with the node's own validation (12: broken_missing_image_file)."""
    prompt, _ = RECORDED["broken_missing_image_file"]
    assert check_workflow(prompt, object_info()).ok


def test_some_branches_valid_is_the_worker_partial_refusal() -> None:
    exchange = next(e for e in http_exchanges("13_partially_invalid") if e["request"]["path"] == "/prompt")
    prompt = exchange["request"]["json"]["prompt"]
    node_errors = exchange["response"]["json"]["node_errors"]
    worker_says = (
        describe_rejection({}, node_errors, prompt, partial=True).message
        + "; nothing was returned (send allow_partial: true to keep the valid branches)"
    )

    result = check_workflow(prompt, object_info())

    assert result.error is not None and result.error.message == worker_says
    assert worker_says.startswith("ComfyUI rejected part of the workflow: node 3 (ImageInvert) input 'image'")


def test_every_missing_node_class_is_named() -> None:
    prompt = copy.deepcopy(TINY)
    prompt["3"] = {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0]}}
    prompt["4"] = {"class_type": "ReActorFaceSwap", "inputs": {}}
    result = check_workflow(prompt, object_info())
    assert str(result.error) == (
        "ComfyUI rejected the workflow: node 3 uses class_type 'VHS_VideoCombine', which this ComfyUI does "
        "not have (a custom node that is not installed?); node 4 uses class_type 'ReActorFaceSwap', which "
        "this ComfyUI does not have (a custom node that is not installed?)"
    )


def test_a_valid_api_workflow_passes_and_names_its_output_nodes() -> None:
    result = check_workflow(TINY, object_info())
    assert result.ok and result.error is None
    assert result.output_nodes == ["2"]


def test_random_seeds_are_drawn_as_the_worker_draws_them() -> None:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": "random",
                "steps": 4,
                "cfg": 7.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["3", 0],
                "negative": ["3", 0],
                "latent_image": ["2", 0],
                "denoise": 1.0,
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "k"}},
    }
    result = check_workflow(prompt, with_models(["m.safetensors"]))
    assert result.ok, result.error
    assert result.prompt is not None
    assert isinstance(result.prompt["4"]["inputs"]["seed"], int)


def test_missing_model_files_are_named_with_the_files_comfyui_has() -> None:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "m"}},
    }
    result = check_workflow(prompt, with_models(["a.safetensors", "b.safetensors"]))
    assert str(result.error) == (
        "ComfyUI rejected the workflow: node 1 (CheckpointLoaderSimple) input 'ckpt_name': model file "
        "'sdxl.safetensors' is not available; available: a.safetensors, b.safetensors"
    )
    assert check_workflow(prompt, object_info()).error is not None
    assert "ComfyUI found no files at all for this input" in str(check_workflow(prompt, object_info()).error)


def test_a_save_prefix_leaving_the_output_folder_is_the_worker_refusal() -> None:
    prompt = copy.deepcopy(TINY)
    prompt["2"]["inputs"]["filename_prefix"] = "../../etc/x"
    result = check_workflow(prompt, object_info())
    assert str(result.error) == (
        "node 2 (SaveImage) input 'filename_prefix' '../../etc/x' leaves the output folder; use a relative "
        "name such as 'ComfyUI' or 'videos/clip'"
    )


def test_a_dependency_cycle_is_named() -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "c"}},
    }
    result = check_workflow(prompt, object_info())
    assert str(result.error) == (
        "ComfyUI rejected the workflow: node 2 (ImageInvert) is part of a dependency cycle: 2 -> 1 -> 2"
    )


def test_links_of_autogrow_inputs_are_followed() -> None:
    prompt = copy.deepcopy(TINY)
    prompt["3"] = {
        "class_type": "BatchImagesNode",
        "inputs": {"images.image0": ["1", 0], "images.image1": ["9", 0]},
    }
    prompt["2"]["inputs"]["images"] = ["3", 0]
    result = check_workflow(prompt, object_info())
    assert str(result.error) == (
        "ComfyUI rejected the workflow: node 3 (BatchImagesNode) input 'images.image1' links to node 9, "
        "which is not in the workflow"
    )
    prompt["3"]["inputs"]["images.image1"] = ["1", 0]
    assert check_workflow(prompt, object_info()).ok


# --- editor workflows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stem",
    [
        "filename_prefix",
        "group_bypassed",
        "group_example_legacy_invert_save",
        "group_load_image_defaults",
        "group_output_two_consumers",
        "matchtype_switch",
        "mode_bypass_passthrough",
        "subgraph_instance_bypassed",
        "subgraph_output_bypassed_inner",
    ],
)
def test_editor_graphs_that_run_are_valid(stem: str) -> None:
    result = check_workflow(graph(stem), object_info())
    assert result.ok, result.error
    assert result.output_nodes


@pytest.mark.parametrize("path", sorted(SHIPPED_TEMPLATES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_workflows_are_valid_where_their_models_are(path: Path) -> None:
    manifest, _ = load_manifest(path)
    workflow = json.loads((path.parent / manifest.workflow).read_text())
    models = [model.name for model in manifest.models]

    assert check_workflow(workflow, with_models(models)).ok

    without = check_workflow(workflow, object_info())
    assert without.error is not None
    for model in models:
        assert f"model file {model!r} is not available" in without.error.message


def test_an_editor_workflow_refused_by_the_converter_gets_its_sentence() -> None:
    with pytest.raises(ConversionError) as raised:
        editor_to_prompt(graph("error_unknown_class"), object_info())
    result = check_workflow(graph("error_unknown_class"), object_info())
    assert result.prompt is None
    assert result.error is not None and result.error.message == raised.value.message
    assert result.error.message.startswith(
        "the workflow uses node types this ComfyUI does not have: node 7 ('NotARealNode')"
    )


def test_an_editor_workflow_is_checked_after_conversion() -> None:
    """The editor's group-node index drift sends a FLOAT into KSampler's seed: ComfyUI would refuse it."""
    result = check_workflow(graph("group_index_drift_converted_order"), with_models(["sd15.safetensors"]))
    assert str(result.error) == (
        "ComfyUI rejected the workflow: node 5:2 (KSampler) input 'seed': linked output has type FLOAT, but "
        "the input needs INT"
    )


def test_a_bad_link_on_an_output_node_is_refused_as_comfyui_refuses_it() -> None:
    """ComfyUI follows an output node's links outside the guard it puts around inner nodes, so the
    lookup's exception is reported for the node as a whole (and the worker repeats it)."""
    prompt = copy.deepcopy(TINY)
    prompt["2"]["inputs"]["images"] = ["1", 3]
    assert str(check_workflow(prompt, object_info()).error) == (
        "ComfyUI rejected the workflow: node 2 (SaveImage): Exception when validating node: tuple index out of range"
    )
