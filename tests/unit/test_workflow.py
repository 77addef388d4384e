"""Workflow preparation: params merge, per-job isolation rewrites, and refusals naming the culprit."""

from __future__ import annotations

import pytest

from comfy_serverless.errors import WorkflowError
from comfy_serverless.jobs.workflow import JOB_MARKER_INPUT, prepare_workflow, strip_job_folder
from tests.support.reference import workflow


def _prepare(wf, params=None, uploaded=None, known=None):
    return prepare_workflow(wf, params or {}, job_folder="job-1", uploaded=uploaded or {}, known_inputs=known)


def test_save_prefix_goes_under_the_job_folder_and_the_callers_workflow_is_untouched() -> None:
    wf = workflow("video")
    prepared = _prepare(wf)
    assert prepared.prompt["5"]["inputs"]["filename_prefix"] == "job-1/video/anchor_video"
    assert prepared.prompt["6"]["inputs"]["filename_prefix"] == "job-1/anchor_webm"
    assert wf["5"]["inputs"]["filename_prefix"] == "video/anchor_video"
    assert prepared.class_types["5"] == "SaveVideo"


def test_output_nodes_without_prefix_get_the_job_marker_and_others_do_not() -> None:
    prepared = _prepare(workflow("audio"))
    marked = {n for n, node in prepared.prompt.items() if JOB_MARKER_INPUT in node["inputs"]}
    preview = {n for n, node in prepared.prompt.items() if node["class_type"] == "PreviewAudio"}
    assert marked == preview and marked


def test_uploaded_names_point_at_the_jobs_input_folder() -> None:
    prepared = _prepare(workflow("load_invert"), uploaded={"anchor_input.png": "job-1/anchor_input.png"})
    assert prepared.prompt["1"]["inputs"]["image"] == "job-1/anchor_input.png"
    annotated = workflow("load_invert")
    annotated["1"]["inputs"]["image"] = "anchor_input.png [input]"
    assert (
        _prepare(annotated, uploaded={"anchor_input.png": "job-1/anchor_input.png"}).prompt["1"]["inputs"][
            "image"
        ]
        == "job-1/anchor_input.png"
    )


def test_params_merge_and_may_name_known_optional_inputs() -> None:
    wf = workflow("tiny_image")
    prepared = _prepare(wf, {"1": {"width": 8}, "2": {"extra_opt": 1}}, known={"SaveImage": {"extra_opt"}})
    assert prepared.prompt["1"]["inputs"]["width"] == 8
    assert prepared.prompt["2"]["inputs"]["extra_opt"] == 1


@pytest.mark.parametrize(
    ("wf", "params", "message"),
    [
        ({"nodes": [], "links": []}, {}, "UI (editor) format"),
        ({"1": []}, {}, "workflow node '1' must be an object"),
        ({"1": {"inputs": {}}}, {}, "workflow node '1' has no class_type"),
        ({"1": {"class_type": "X", "inputs": 3}}, {}, "node '1' (X) has inputs that are not an object"),
        (
            workflow("tiny_image"),
            {"7": {"a": 1}},
            "params['7']: the workflow has no node '7' (its nodes: 1, 2)",
        ),
        (
            workflow("tiny_image"),
            {"1": {"widthh": 1}},
            "params['1']['widthh']: node 1 (EmptyImage) has no input 'widthh'",
        ),
    ],
)
def test_refusals_name_the_culprit(wf, params, message) -> None:
    with pytest.raises(WorkflowError) as caught:
        _prepare(wf, params)
    assert message in caught.value.message


@pytest.mark.parametrize("prefix", ["../x", "/abs/x", "a/../../b", "C:\\\\x", "..\\\\x"])
def test_prefixes_leaving_the_output_folder_are_refused(prefix: str) -> None:
    wf = workflow("tiny_image")
    wf["2"]["inputs"]["filename_prefix"] = prefix
    with pytest.raises(WorkflowError, match="filename_prefix"):
        _prepare(wf)


def test_strip_job_folder() -> None:
    assert strip_job_folder("job-1", "job-1") == ""
    assert strip_job_folder("job-1/video", "job-1") == "video"
    assert strip_job_folder("other", "job-1") == "other"
