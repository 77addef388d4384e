"""Per-job isolation of a prompt: output prefixes, job markers and uploaded names."""

from __future__ import annotations

import pytest

from comfy_serverless.errors import WorkflowError
from comfy_serverless.jobs.workflow import JOB_MARKER_INPUT, prepare_workflow, strip_job_folder
from tests.support.reference import workflow


def _prepare(wf, uploaded=None):
    return prepare_workflow(wf, job_folder="job-1", uploaded=uploaded or {})


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
