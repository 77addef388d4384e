"""A job's workflow, template and params, made into the prompt to queue.

The one step the job runner calls between validating a job and staging its files:

1. a template call becomes its workflow plus values for its nodes (:mod:`.templates`);
2. an editor (UI-format) workflow is converted the way ComfyUI's frontend does (:mod:`.editor`),
   with the running ComfyUI's node definitions;
3. the template's values, then the job's ``params``, are set by node id or title (:mod:`.params`);
4. ``"random"`` seeds are drawn.

It knows nothing of RunPod or of the job's files on disk; isolating the job (per-job output
prefixes and input names) happens after, in :mod:`comfy_serverless.jobs.workflow`.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import WorkflowError
from .editor import editor_to_prompt, is_editor_workflow
from .object_info import ObjectInfo
from .params import apply_params, draw_random_seeds, resolve_node
from .templates import MediaFile, TemplateCatalog

ObjectInfoSource = Callable[[], Awaitable[ObjectInfo]]
KnownInputs = Callable[[set[str]], Awaitable[Mapping[str, set[str]]]]


@dataclass(slots=True)
class JobPrompt:
    """The prompt for a job, before the job's files and outputs are isolated."""

    prompt: dict[str, dict[str, Any]]
    #: Files a template's media parameters bring, to store in the job's input folder.
    media: list[MediaFile] = field(default_factory=list)
    template: str | None = None


def check_api_nodes(prompt: Mapping[str, Any]) -> None:
    """Every node of an API-format prompt has a class_type and an inputs object; names the node."""
    for node_id, node in prompt.items():
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


async def build_prompt(
    *,
    workflow: Mapping[str, Any] | None,
    params: Mapping[str, Mapping[str, Any]],
    template: str | None,
    template_values: Mapping[str, Any],
    templates: TemplateCatalog,
    object_info: ObjectInfoSource,
    known_inputs: KnownInputs,
    rng: random.Random | None = None,
) -> JobPrompt:
    """The prompt for a job's ``workflow`` (or ``template`` with its values) and ``params``."""
    template_params: dict[str, dict[str, Any]] = {}
    media: list[MediaFile] = []
    if template is not None:
        call = templates.get(template).call(template_values, rng)
        source: Mapping[str, Any] = call.workflow
        template_params, media = call.params, call.media
    elif workflow is not None:
        source = workflow
    else:
        raise WorkflowError("the job has neither a workflow nor a template", details={"field": "workflow"})

    if is_editor_workflow(source):
        prompt = editor_to_prompt(source, await object_info(), rng=rng)
    else:
        prompt = copy.deepcopy(dict(source))
        check_api_nodes(prompt)

    known = await known_inputs(_classes_needing_inputs(prompt, [template_params, params]))
    if template_params:
        try:
            apply_params(prompt, template_params, known, field=f"template {template}")
        except WorkflowError as exc:
            raise WorkflowError(
                f"{exc.message} (the template's manifest names it; the template does not fit this ComfyUI "
                "or its workflow was changed)",
                details=exc.details,
            ) from None
    apply_params(prompt, params, known)
    draw_random_seeds(prompt, rng)
    return JobPrompt(prompt, media, template)


def _classes_needing_inputs(
    prompt: Mapping[str, Mapping[str, Any]], all_params: list[Mapping[str, Mapping[str, Any]]]
) -> set[str]:
    """Classes of nodes that params set inputs on that the workflow leaves out (often optional ones)."""
    wanted: set[str] = set()
    for params in all_params:
        for ref, values in params.items():
            try:
                node_id = resolve_node(prompt, ref, "params")
            except WorkflowError:
                continue  # reported when the params are applied
            node = prompt[node_id]
            if set(values) - set(node.get("inputs") or {}):
                wanted.add(str(node.get("class_type")))
    return wanted
