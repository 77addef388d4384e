"""ComfyUI's recorded 400 bodies (12_validation_errors, 13_partially_invalid) become one sentence that
names every failing node, class_type and input."""

from __future__ import annotations

import pytest

from comfy_serverless.comfy.validation import describe_rejection
from tests.support.reference import http_exchanges


def _rejections() -> dict[str, dict]:
    found = {}
    for exchange in http_exchanges("12_validation_errors"):
        response = exchange["response"]
        if exchange["label"] and response["status"] == 400:
            found[exchange["label"].removeprefix("POST /prompt ")] = {
                "prompt": (exchange["request"].get("json") or {}).get("prompt") or {},
                "body": response["json"],
            }
    return found


REJECTIONS = _rejections()


def _describe(label: str) -> str:
    case = REJECTIONS[label]
    return describe_rejection(case["body"]["error"], case["body"]["node_errors"], case["prompt"]).message


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("broken_unknown_class", ["node 2", "DoesNotExistNode", "does not have"]),
        ("broken_missing_class_type", ["node 1", "class_type"]),
        (
            "broken_missing_required_input",
            [
                "node 2 (ImageInvert) input 'image'",
                "node 3 (SaveImage) input 'filename_prefix'",
                "required input is missing",
            ],
        ),
        (
            "broken_bad_link",
            ["node 2 (ImageInvert) input 'image' links to node 99, which is not in the workflow"],
        ),
        ("broken_bad_link_output_index", ["node 2 (ImageInvert) input 'image' links to output 5 of node 1"]),
        ("broken_type_mismatch", ["node 2 (SaveImage) input 'images'", "LATENT", "IMAGE"]),
        (
            "broken_value_out_of_range",
            ["node 1 (EmptyImage) input 'width'", "16384", "input 'height'", "smaller than min"],
        ),
        ("broken_value_not_in_list", ["node 2 (ImageScale) input 'upscale_method'", "'magic'", "'bilinear'"]),
        ("broken_invalid_input_type", ["node 1 (EmptyImage) input 'width'", "sixty-four"]),
        ("broken_missing_image_file", ["node 1 (LoadImage) input 'image'", "no_such_file.png"]),
        ("broken_no_outputs", ["no output node"]),
        (
            "broken_multiple_errors",
            ["node 1 (EmptyImage) input 'width'", "node 3 (ImageInvert) input 'image'"],
        ),
    ],
)
def test_each_recorded_rejection_names_its_culprits(label: str, expected: list[str]) -> None:
    message = _describe(label)
    assert message.startswith("ComfyUI rejected the workflow: ")
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_model_file_not_in_list_lists_available_files_for_any_loader() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {
            "4": {
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "lora_name: 'missing.safetensors' not in ['a.safetensors', 'b.safetensors']",
                        "extra_info": {
                            "input_name": "lora_name",
                            "input_config": [["a.safetensors", "b.safetensors"], {}],
                            "received_value": "missing.safetensors",
                        },
                    }
                ],
                "dependent_outputs": ["9"],
                "class_type": "LoraLoader",
            }
        },
    }
    error = describe_rejection(
        body["error"], body["node_errors"], {}, model_hint=lambda c, i, v: f"hint for {c}.{i}={v}"
    )
    assert "node 4 (LoraLoader) input 'lora_name'" in error.message
    assert "'missing.safetensors' is not available; available: a.safetensors, b.safetensors" in error.message
    assert "hint for LoraLoader.lora_name=missing.safetensors" in error.message
    assert error.details["node_errors"][0]["available"] == ["a.safetensors", "b.safetensors"]


def test_empty_model_folder_is_said_plainly() -> None:
    node_errors = {
        "1": {
            "class_type": "UNETLoader",
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "extra_info": {
                        "input_name": "unet_name",
                        "input_config": [[], {}],
                        "received_value": "flux.safetensors",
                    },
                }
            ],
        }
    }
    message = describe_rejection({}, node_errors, {}).message
    assert "found no files at all" in message and "node 1 (UNETLoader) input 'unet_name'" in message


def test_partially_invalid_200_body_is_reported_as_partial() -> None:
    exchange = next(
        e
        for e in http_exchanges("13_partially_invalid")
        if e["request"].get("path") == "/prompt" and e["response"]["status"] == 200
    )
    node_errors = exchange["response"]["json"]["node_errors"]
    assert node_errors, "the transcript shows a 200 with node_errors"
    error = describe_rejection({}, node_errors, {}, partial=True)
    assert error.message.startswith("ComfyUI rejected part of the workflow: node ")


# --- newer ComfyUI (autumn 2026, ~0.38 on) -----------------------------------------------------------
# Bodies as execution.py@04e2a91433 validate_prompt / validate_inputs build them (see
# tests/emulator/versions/0.38 and the emulator README for the citations).


def test_missing_node_type_names_node_class_and_title_from_the_structured_fields() -> None:
    error = {
        "type": "missing_node_type",
        "message": "Node 'My Upscaler' not found. The custom node may not be installed.",
        "details": "Node ID '#12'",
        "extra_info": {"node_id": "12", "class_type": "UltimateSDUpscale", "node_title": "My Upscaler"},
    }
    rejection = describe_rejection(error, {}, {"12": {"class_type": "UltimateSDUpscale", "inputs": {}}})
    assert rejection.message == (
        "ComfyUI rejected the workflow: node 12 ('My Upscaler') uses class_type 'UltimateSDUpscale', which "
        "this ComfyUI does not have (a custom node that is not installed?)"
    )
    assert rejection.details["node_errors"] == [
        {
            "node_id": "12",
            "type": "missing_node_type",
            "class_type": "UltimateSDUpscale",
            "message": error["message"],
        }
    ]


def test_the_same_missing_node_reads_the_same_on_0_8_0_and_newer() -> None:
    prompt = {"2": {"class_type": "DoesNotExistNode", "inputs": {}}}
    old = describe_rejection(
        {
            "type": "invalid_prompt",
            "message": "Cannot execute because node DoesNotExistNode does not exist.",
            "details": "Node ID '#2'",
            "extra_info": {},
        },
        {},
        prompt,
    ).message
    new = describe_rejection(
        {
            "type": "missing_node_type",
            "message": "Node 'DoesNotExistNode' not found. The custom node may not be installed.",
            "details": "Node ID '#2'",
            "extra_info": {
                "node_id": "2",
                "class_type": "DoesNotExistNode",
                "node_title": "DoesNotExistNode",
            },
        },
        {},
        prompt,
    ).message
    assert (
        old
        == new
        == (
            "ComfyUI rejected the workflow: node 2 uses class_type 'DoesNotExistNode', which this ComfyUI does "
            "not have (a custom node that is not installed?)"
        )
    )


def test_a_node_without_class_type_on_newer_comfyui() -> None:
    error = {
        "type": "missing_node_type",
        "message": "Node 'ID #5' has no class_type. The workflow may be corrupted or a custom node is missing.",
        "details": "Node ID '#5'",
        "extra_info": {"node_id": "5", "class_type": None, "node_title": None},
    }
    assert describe_rejection(error, {}, {"5": {"inputs": {}}}).message == (
        "ComfyUI rejected the workflow: node 5 has no class_type"
    )


def test_dependency_cycle_lists_the_cycle() -> None:
    node_errors = {
        "3": {
            "errors": [
                {
                    "type": "dependency_cycle",
                    "message": "Dependency cycle detected",
                    "details": "3 (ImageInvert) -> 4 (ImageBlur) -> 3 (ImageInvert)",
                    "extra_info": {"node_id": "3", "cycle_nodes": ["3", "4", "3"]},
                }
            ],
            "dependent_outputs": ["9"],
            "class_type": "ImageInvert",
        }
    }
    error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}
    message = describe_rejection(error, node_errors, {}).message
    assert message == (
        "ComfyUI rejected the workflow: node 3 (ImageInvert) is part of a dependency cycle: "
        "3 (ImageInvert) -> 4 (ImageBlur) -> 3 (ImageInvert)"
    )


def test_loop_errors_keep_their_kind() -> None:
    node_errors = {
        "7": {
            "errors": [
                {
                    "type": "custom_validation_failed",
                    "message": "End Loop has no Start Loop",
                    "details": "End Loop 7 has no available Start Loop",
                    "extra_info": {
                        "input_name": "loop boundary",
                        "loop_error_type": "loop_end_without_start",
                        "node_ids": ["7"],
                        "output_ids": ["9"],
                    },
                }
            ],
            "class_type": "EndLoop",
        }
    }
    error = describe_rejection({}, node_errors, {})
    assert error.message == (
        "ComfyUI rejected the workflow: node 7 (EndLoop): End Loop has no Start Loop "
        "(End Loop 7 has no available Start Loop)"
    )
    assert error.details["node_errors"][0]["loop_error_type"] == "loop_end_without_start"


def test_a_refused_prompt_id_is_reported_as_the_workers_fault() -> None:
    error = {
        "type": "invalid_prompt_id",
        "message": "prompt_id must be a valid UUID",
        "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let "
        "the server generate one",
        "extra_info": {},
    }
    assert describe_rejection(error, {}, {}).message == (
        "ComfyUI rejected the workflow: ComfyUI refused the worker's prompt id: prompt_id must be a valid UUID"
    )
