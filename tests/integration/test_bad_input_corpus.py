"""A corpus of malformed jobs. Each one fails with an error that names its culprit (field, node, input
or file) in the `error` string itself (RunPod's local server drops every other key of a failed job),
and the next job on the same worker succeeds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.reference import workflow

from .helpers import assert_completed, assert_failed, png_b64, tiny

SECRET = "sk-do-not-echo-4242"


def _wf(name: str) -> dict[str, Any]:
    return workflow(name)


def _with(base: dict[str, Any], node: str, **inputs: Any) -> dict[str, Any]:
    changed = copy.deepcopy(base)
    changed[node]["inputs"].update(inputs)
    return changed


UI_WITH_CUSTOM_NODE = {
    "last_node_id": 2,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "widgets_values": [64, 64, 1, 0],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
        },
        {"id": 2, "type": "FancyUpscaler+", "inputs": [{"name": "image", "type": "IMAGE", "link": 1}]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "version": 0.4,
}

CORPUS: list[tuple[str, Any, list[str]]] = [
    (
        "workflow-missing",
        {"prompt": tiny()},
        ["send a `workflow` (API or editor format) or the name of a `template`"],
    ),
    (
        "workflow-and-template",
        {"workflow": tiny(), "template": "sdxl_t2i"},
        ["either a `workflow` or a `template`, not both"],
    ),
    (
        "template-unknown",
        {"template": "no_such_template"},
        ["there is no template 'no_such_template' (available:", "sdxl_t2i"],
    ),
    (
        "template-parameter-out-of-range",
        {"template": "sdxl_t2i", "prompt": "a cat", "width": 99999},
        ["Invalid parameters for template sdxl_t2i: width: Input should be less than or equal to 2048"],
    ),
    (
        "template-parameter-unknown",
        {"template": "sdxl_t2i", "prompt": "a cat", "widht": 512},
        ["widht: not a parameter of template sdxl_t2i (its parameters: prompt, negative_prompt, width"],
    ),
    (
        "template-parameter-missing",
        {"template": "sdxl_t2i"},
        ["Invalid parameters for template sdxl_t2i: prompt: required"],
    ),
    (
        "template-seed-not-a-number",
        {"template": "sdxl_t2i", "prompt": "a cat", "seed": "lucky"},
        ["Invalid parameters for template sdxl_t2i: seed:"],
    ),
    (
        "workflow-invalid-json-string",
        {"workflow": '{"1": {"class_type": '},
        ["workflow: is a string but not valid JSON"],
    ),
    ("workflow-is-an-array", {"workflow": [tiny()]}, ["workflow: must be a JSON object", "not an array"]),
    ("workflow-is-empty", {"workflow": {}}, ["workflow: is empty"]),
    (
        "ui-workflow-with-a-custom-node",
        {"workflow": UI_WITH_CUSTOM_NODE},
        ["node 2 ('FancyUpscaler+')", "probably custom nodes that are not installed"],
    ),
    (
        "node-is-not-an-object",
        {"workflow": {"1": 5, **{k: v for k, v in tiny().items() if k != "1"}}},
        ["workflow node '1' must be an object"],
    ),
    (
        "node-without-class-type",
        {"workflow": {"1": {"inputs": {}}, "2": tiny()["2"]}},
        ["workflow node '1' has no class_type"],
    ),
    (
        "node-inputs-not-an-object",
        {"workflow": _with(tiny(), "1") | {"1": {"class_type": "EmptyImage", "inputs": [64]}}},
        ["workflow node '1' (EmptyImage) has inputs that are not an object"],
    ),
    ("unknown-node-class", {"workflow": _wf("broken_unknown_class")}, ["node 2", "DoesNotExistNode"]),
    (
        "missing-required-input",
        {"workflow": _wf("broken_missing_required_input")},
        ["node 2 (ImageInvert) input 'image'", "required input is missing"],
    ),
    (
        "link-to-missing-node",
        {"workflow": _wf("broken_bad_link")},
        ["node 2 (ImageInvert) input 'image' links to node 99"],
    ),
    (
        "link-to-missing-output",
        {"workflow": _wf("broken_bad_link_output_index")},
        ["node 2 (ImageInvert) input 'image' links to output 5 of node 1"],
    ),
    (
        "linked-type-mismatch",
        {"workflow": _wf("broken_type_mismatch")},
        ["node 2 (SaveImage) input 'images'", "LATENT"],
    ),
    (
        "value-out-of-range",
        {"workflow": _wf("broken_value_out_of_range")},
        ["node 1 (EmptyImage) input 'width'", "node 1 (EmptyImage) input 'height'"],
    ),
    (
        "value-not-in-list",
        {"workflow": _wf("broken_value_not_in_list")},
        ["node 2 (ImageScale) input 'upscale_method'", "'magic'"],
    ),
    (
        "value-of-wrong-type",
        {"workflow": _wf("broken_invalid_input_type")},
        ["node 1 (EmptyImage) input 'width'", "sixty-four"],
    ),
    (
        "missing-input-image-file",
        {"workflow": _wf("broken_missing_image_file")},
        ["node 1 (LoadImage) input 'image'", "no_such_file.png"],
    ),
    ("no-output-node", {"workflow": _wf("broken_no_outputs")}, ["no output node"]),
    (
        "missing-model-file",
        {"workflow": _with(_wf("progress_upscale"), "2", model_name="nope.safetensors")},
        # 0.8.0 refuses the value up front and lists the files; 0.3.75 fails when the node runs. Either
        # way the error names node, file and folder, and says where the worker looked.
        ["UpscaleModelLoader", "nope.safetensors", "upscale_models", "tiny_2x.safetensors"],
    ),
    (
        "params-unknown-node",
        {"workflow": tiny(), "params": {"99": {"width": 1}}},
        ["params['99']", "the workflow has no node with id or title '99' (ids: 1, 2)"],
    ),
    (
        "params-unknown-input",
        {"workflow": tiny(), "params": {"1": {"widht": 32}}},
        ["params['1']['widht']", "node 1 (EmptyImage) has no input 'widht'"],
    ),
    ("params-not-an-object", {"workflow": tiny(), "params": [1]}, ["params: "]),
    (
        "params-value-out-of-range",
        {"workflow": tiny(), "params": {"1": {"width": -5}}},
        ["node 1 (EmptyImage) input 'width'"],
    ),
    ("images-not-a-list", {"workflow": tiny(), "images": "abc"}, ["images: "]),
    (
        "image-without-name",
        {"workflow": tiny(), "images": [{"image": png_b64()}]},
        ["images[0].name: Field required"],
    ),
    (
        "image-not-base64",
        {"workflow": tiny(), "images": [{"name": "a.png", "image": "not*base64!"}]},
        ["images[0].image is not valid base64"],
    ),
    ("image-empty", {"workflow": tiny(), "images": [{"name": "a.png", "image": ""}]}, ["images[0].image"]),
    (
        "image-name-escapes-input-folder",
        {"workflow": tiny(), "images": [{"name": "../../evil.png", "image": png_b64()}]},
        ["images[0].name: must be a plain file name"],
    ),
    (
        "image-name-absolute",
        {"workflow": tiny(), "images": [{"name": "/etc/passwd", "image": png_b64()}]},
        ["images[0].name"],
    ),
    (
        "image-names-repeat",
        {
            "workflow": tiny(),
            "images": [{"name": "a.png", "image": png_b64()}, {"name": "a.png", "image": png_b64()}],
        },
        ["images[1].name 'a.png' repeats images[0].name"],
    ),
    (
        "image-data-uri-without-comma",
        {"workflow": tiny(), "images": [{"name": "a.png", "image": "data:image/png;base64"}]},
        ["images[0].image is a data: URI without a comma"],
    ),
    (
        "image-url-to-loopback",
        {"workflow": tiny(), "images": [{"name": "a.png", "image": "http://127.0.0.1:9/x.png"}]},
        ["images[0].image: refusing to fetch http://127.0.0.1:9/x.png", "not a public address"],
    ),
    (
        "image-url-to-cloud-metadata",
        {
            "workflow": tiny(),
            "images": [{"name": "a.png", "image": "http://169.254.169.254/latest/meta-data/"}],
        },
        ["images[0].image: refusing to fetch"],
    ),
    (
        "image-url-unsupported-scheme",
        {"workflow": tiny(), "images": [{"name": "a.png", "image": "file:///etc/passwd"}]},
        ["images[0].image: file:// URLs are not supported"],
    ),
    ("timeout-negative", {"workflow": tiny(), "timeout": -1}, ["timeout: Input should be greater than 0"]),
    ("timeout-not-a-number", {"workflow": tiny(), "timeout": "soon"}, ["timeout: "]),
    (
        "timeout-above-maximum",
        {"workflow": tiny(), "timeout": 10**7},
        ["timeout: 10000000 s is more than", "JOB_TIMEOUT_MAX"],
    ),
    (
        "filename-prefix-escapes-output-folder",
        {"workflow": _with(tiny(), "2", filename_prefix="../../etc/x")},
        ["node 2 (SaveImage) input 'filename_prefix'", "leaves the output folder"],
    ),
    (
        "api-key-of-wrong-type",
        {"workflow": tiny(), "comfy_org_api_key": {"key": SECRET}},
        ["comfy_org_api_key"],
    ),
    ("runtime-error-in-a-node", {"workflow": _wf("runtime_error")}, ["ImageToMask", "failed"]),
]


@pytest.mark.parametrize(
    ("job_input", "fragments"), [(c[1], c[2]) for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_bad_job_names_its_culprit_and_the_next_job_succeeds(
    worker, backend, job_input: Any, fragments: list[str]
) -> None:
    error = assert_failed(worker.runsync(job_input), *fragments)
    assert SECRET not in error
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) + len(NOT_AN_OBJECT) >= 25


# RunPod's local API server refuses an `input` that is not an object (HTTP 422) before the handler runs;
# RunPod's queue delivers whatever was sent, so these go through the production loop.
NOT_AN_OBJECT: list[tuple[str, Any, list[str]]] = [
    ("input-is-a-plain-string", "make me a cat", ["input is a string but not a JSON object"]),
    ("input-is-a-json-string-of-an-array", "[1]", ["input must be a JSON object", "not an array"]),
    ("input-is-a-number", 42, ["input must be a JSON object", "not a number"]),
    ("input-is-an-array", [1, 2], ["input must be a JSON object", "not an array"]),
    ("input-is-null", None, ["input must be a JSON object", "not null"]),
]


def test_inputs_that_are_not_objects_through_runpods_queue(backend, fake_runpod, tmp_path) -> None:
    from tests.support.worker_process import WorkerProcess

    queue = fake_runpod
    worker = WorkerProcess(backend.env(tmp_path / "data") | queue.env(), [])
    try:
        for name, job_input, fragments in NOT_AN_OBJECT:
            queue.submit(name, job_input)
            result = queue.result(name, timeout=240)
            for fragment in fragments:
                assert fragment in result["error"], (name, result)
            queue.submit(name + "-next", {"workflow": tiny()})
            assert queue.result(name + "-next", timeout=60)["output"]["status"] == "success"
    finally:
        worker.stop()


def test_failed_job_result_carries_type_and_details_for_runpod(worker) -> None:
    """RunPod's local server keeps only `error`; the handler's full failure is in the worker log and, on
    RunPod, in the job's output. Checked end to end in test_production_loop; here the message shape."""
    error = assert_failed(worker.runsync({"workflow": _wf("broken_value_not_in_list")}))
    assert error.startswith("ComfyUI rejected the workflow: ")


def test_partially_invalid_workflow_fails_unless_partial_is_allowed(worker) -> None:
    """13_partially_invalid: ComfyUI answers 200 with node_errors and runs only the valid branch."""
    wf = _wf("partially_invalid")
    assert_failed(worker.runsync({"workflow": wf}), "ComfyUI rejected part of the workflow", "allow_partial")
    output = assert_completed(worker.runsync({"workflow": wf, "allow_partial": True}))
    assert output["outputs"], "the valid branch's output comes back"
    assert output["warnings"][0].startswith("ComfyUI rejected part of the workflow: node ")
