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
