"""Turn a job's workflow into the prompt sent to ComfyUI.

- refuse UI-format (editor) workflows with an explanation of what is expected;
- check every node has a class_type and inputs, naming the node at fault;
- merge ``params`` over the workflow, refusing unknown nodes and inputs by name;
- isolate the job: its save nodes write under a per-job subfolder (``filename_prefix``), and values that
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


def _shown_ids(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def reject_ui_format(workflow: Mapping[str, Any]) -> None:
    """UI-format workflows carry ``nodes`` and ``links`` lists; the API needs ``{id: {class_type, inputs}}``."""
    nodes, links = workflow.get("nodes"), workflow.get("links")
    if isinstance(nodes, list) or isinstance(links, list):
        node_count = len(nodes) if isinstance(nodes, list) else 0
        link_count = len(links) if isinstance(links, list) else 0
        raise WorkflowError(
            f"workflow is in ComfyUI's UI (editor) format, with {node_count} nodes and {link_count} links "
            "in `nodes`/`links` lists; this worker needs the API format, an object mapping node ids to "
            '{"class_type": ..., "inputs": {...}}. In ComfyUI use Workflow > Export (API) and send that file',
            details={"field": "workflow", "format": "ui", "nodes": node_count, "links": link_count},
        )


def _check_nodes(workflow: Mapping[str, Any]) -> dict[str, str]:
    class_types: dict[str, str] = {}
    for node_id, node in workflow.items():
        where = f"workflow node {node_id!r}"
        if not isinstance(node, dict):
            raise WorkflowError(
                f"{where} must be an object with class_type and inputs, not {type(node).__name__}",
                details={"field": f"workflow.{node_id}"},
            )
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise WorkflowError(
                f"{where} has no class_type (the node type, such as SaveImage)",
                details={"field": f"workflow.{node_id}.class_type", "node_id": node_id},
            )
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise WorkflowError(
                f"{where} ({class_type}) has inputs that are not an object",
                details={"field": f"workflow.{node_id}.inputs", "node_id": node_id},
            )
        node.setdefault("inputs", inputs)
        class_types[str(node_id)] = class_type
    return class_types


def _merge_params(
    prompt: dict[str, dict[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    class_types: Mapping[str, str],
    known_inputs: Mapping[str, set[str]],
) -> None:
    for node_id, values in params.items():
        node = prompt.get(node_id)
        if node is None:
            raise WorkflowError(
                f"params[{node_id!r}]: the workflow has no node {node_id!r} (its nodes: {_shown_ids(list(prompt))})",
                details={"field": f"params.{node_id}", "node_id": node_id},
            )
        inputs = node["inputs"]
        class_type = class_types[node_id]
        allowed = set(inputs) | known_inputs.get(class_type, set())
        for name, value in values.items():
            if name not in allowed:
                raise WorkflowError(
                    f"params[{node_id!r}][{name!r}]: node {node_id} ({class_type}) has no input {name!r} "
                    f"(its inputs: {_shown_ids(sorted(allowed))})",
                    details={"field": f"params.{node_id}.{name}", "node_id": node_id, "input": name},
                )
            inputs[name] = value


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
    workflow: Mapping[str, Any],
    params: Mapping[str, Mapping[str, Any]],
    *,
    job_folder: str,
    uploaded: Mapping[str, str],
    known_inputs: Mapping[str, set[str]] | None = None,
) -> PreparedWorkflow:
    """Build the prompt for ComfyUI. ``uploaded`` maps a job's file names to their stored paths;
    ``known_inputs`` lists, per class_type, the inputs ComfyUI knows (optional ones included)."""
    reject_ui_format(workflow)
    prompt: dict[str, dict[str, Any]] = copy.deepcopy(dict(workflow))
    class_types = _check_nodes(prompt)
    _merge_params(prompt, params, class_types, known_inputs or {})
    prepared = PreparedWorkflow(prompt=prompt, class_types=class_types)
    linked = {
        str(value[0])
        for node in prompt.values()
        for value in node["inputs"].values()
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
    }
    for node_id, node in prompt.items():
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
    return prepared


def strip_job_folder(subfolder: str, job_folder: str) -> str:
    """The subfolder a user asked for, without the job's private folder in front."""
    if subfolder == job_folder:
        return ""
    return subfolder.removeprefix(job_folder + "/")
