"""Isolate a job's prompt before it is queued (the prompt itself comes from
:func:`comfy_serverless.workflows.build.build_prompt`):

- its save nodes write under a per-job subfolder (``filename_prefix``), and values that
  name an uploaded file point at the job's own input subfolder. A per-job prefix also makes an
  identical job re-run its save node, so its outputs exist again (04_cached_rerun: a changed
  filename_prefix re-runs only the save node, everything upstream stays cached). Output nodes without
  a prefix get a job marker input for the same reason.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..errors import WorkflowError

_PREFIX_INPUT = "filename_prefix"
# An input no node declares: ComfyUI passes only declared inputs to a node, but its cache key covers
# every input in the prompt (comfy_execution/caching.py, get_immediate_node_signature). Set on output
# nodes that have no filename_prefix (PreviewImage, PreviewAudio, custom savers), it makes them run
# again for each job, so their files exist for the job instead of being a cached report of files an
# earlier job already removed.
JOB_MARKER_INPUT = "comfy_serverless_job"
_ANNOTATION_SUFFIX = " [input]"


@dataclass(slots=True)
class PreparedWorkflow:
    """The prompt to queue, and what the runner needs to know about it."""

    prompt: dict[str, dict[str, Any]]
    class_types: dict[str, str]


def _job_prefix(prefix: str, job_folder: str, node_id: str, class_type: str) -> str:
    path = PurePosixPath(prefix.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (len(prefix) > 1 and prefix[1] == ":"):
        raise WorkflowError(
            f"node {node_id} ({class_type}) input 'filename_prefix' {prefix!r} leaves the output folder; "
            "use a relative name such as 'ComfyUI' or 'videos/clip'",
            details={
                "node_id": node_id,
                "input": _PREFIX_INPUT,
                "field": f"workflow.{node_id}.inputs.{_PREFIX_INPUT}",
            },
        )
    return f"{job_folder}/{prefix}"


def prepare_workflow(
    prompt: Mapping[str, Any],
    *,
    job_folder: str,
    uploaded: Mapping[str, str],
) -> PreparedWorkflow:
    """The prompt to queue for one job. ``uploaded`` maps a job's file names to their stored paths."""
    isolated: dict[str, dict[str, Any]] = copy.deepcopy(dict(prompt))
    class_types = {str(node_id): str(node.get("class_type")) for node_id, node in isolated.items()}
    linked = {
        str(value[0])
        for node in isolated.values()
        for value in node["inputs"].values()
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
    }
    for node_id, node in isolated.items():
        inputs = node["inputs"]
        if node_id not in linked and not isinstance(inputs.get(_PREFIX_INPUT), str):
            # Nothing consumes this node: it is an output node (or never runs at all).
            inputs[JOB_MARKER_INPUT] = job_folder
        for name, value in inputs.items():
            if not isinstance(value, str):
                continue
            if name == _PREFIX_INPUT:
                inputs[name] = _job_prefix(value, job_folder, node_id, class_types[node_id])
                continue
            bare = value.removesuffix(_ANNOTATION_SUFFIX)
            if bare in uploaded:
                inputs[name] = uploaded[bare]
    return PreparedWorkflow(prompt=isolated, class_types=class_types)


def strip_job_folder(subfolder: str, job_folder: str) -> str:
    """The subfolder a user asked for, without the job's private folder in front."""
    if subfolder == job_folder:
        return ""
    return subfolder.removeprefix(job_folder + "/")
