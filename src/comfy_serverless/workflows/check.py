"""Check a workflow against a ComfyUI's node definitions without running it.

:func:`check_workflow` takes the steps the worker takes before it runs a job, with the worker's own
code: an editor workflow is converted (:func:`~.editor.editor_to_prompt`), an API-format one has its
nodes checked (:func:`~.build.check_api_nodes`), ``"random"`` seeds are drawn and save nodes' prefixes
checked (:func:`~comfy_serverless.jobs.workflow.prepare_workflow`). What ComfyUI would check when the
prompt is queued is then done here, statically, from ``/object_info`` (:func:`comfy_rejection`, after
``validate_prompt`` and ``validate_inputs`` in ComfyUI 0.8.0's ``execution.py``): node classes this
ComfyUI lacks, output nodes, required inputs, links to missing nodes or outputs, linked output types,
values that do not convert to their type, values out of range and values not in a choice list (model
files included). Its findings are shaped as ComfyUI's answer and described by the worker's
:func:`~comfy_serverless.comfy.validation.describe_rejection`, so the sentences are the worker's.

What needs the running ComfyUI is not checked: a node's own validation (LoadImage's file), files a job
brings (inputs named by upload widgets are not checked against the list), and the V3 dynamic inputs
(autogrow, dynamic combos, match types), whose links are followed but whose types are not compared.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..comfy.validation import describe_rejection
from ..errors import JobError, WorkflowValidationError
from ..jobs.workflow import prepare_workflow
from .build import check_api_nodes
from .editor import editor_to_prompt, is_editor_workflow
from .object_info import ObjectInfo
from .params import draw_random_seeds

#: The lead of describe_rejection's sentence.
_LEAD = "ComfyUI rejected the workflow"
#: What the worker adds when ComfyUI accepts some output branches only (jobs/runner.py).
_PARTIAL_SUFFIX = "; nothing was returned (send allow_partial: true to keep the valid branches)"
#: Widget options that make a choice list a file picker for files a job uploads.
_UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "file_upload")


@dataclass(frozen=True)
class Rejection:
    """What ComfyUI would answer when the prompt is queued: its ``error`` and ``node_errors``, in
    ComfyUI's shapes. ``partial`` when some output nodes are valid (ComfyUI then queues those)."""

    error: dict[str, Any]
    node_errors: dict[str, Any]
    partial: bool = False


@dataclass(frozen=True)
class CheckResult:
    """The prompt that would be queued (None when the workflow could not become one) and the worker's
    error for it, None when it is valid."""

    prompt: dict[str, dict[str, Any]] | None
    error: JobError | None
    output_nodes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _spec_options(spec: Any) -> dict[str, Any]:
    return spec[1] if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def _is_dynamic(input_type: Any) -> bool:
    """The V3 templated inputs (COMFY_AUTOGROW_V3, COMFY_DYNAMICCOMBO_V3, COMFY_MATCHTYPE_V3): what they
    accept is only known once ComfyUI expands them."""
    return isinstance(input_type, str) and input_type.startswith("COMFY_") and input_type.endswith("_V3")


def _types_match(received: Any, wanted: Any) -> bool:
    """``validate_node_input``: equal types, ``*`` on either side, or comma-separated unions that share
    a type; the V3 templated types are not compared."""
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    if _is_dynamic(received) or _is_dynamic(wanted):
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _class_inputs(definition: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, spec, "required" | "optional") in the definition's order."""
    sections = definition.get("input") if isinstance(definition.get("input"), Mapping) else {}
    assert isinstance(sections, Mapping)
    order = definition.get("input_order") if isinstance(definition.get("input_order"), Mapping) else {}
    assert isinstance(order, Mapping)
    found: list[tuple[str, Any, str]] = []
    for category in ("required", "optional"):
        section = sections.get(category)
        if not isinstance(section, Mapping):
            continue
        names = [n for n in order.get(category) or () if n in section]
        names += [n for n in section if n not in names]
        found.extend((name, section[name], category) for name in names)
    return found


def _is_link(value: Any) -> bool:
    return isinstance(value, list)


@dataclass(frozen=True)
class _Via:
    """The link a node was reached by: the linking node's input, the link, that input's spec."""

    input_name: str
    link: list[Any]
    input_config: list[Any]


class _BadLink(Exception):
    """A link to a node or output that does not exist: ComfyUI's lookup raised ``exc``."""

    def __init__(self, exc: Exception):
        super().__init__(str(exc))
        self.exc = exc


def _link_exception(exc: Exception, via: _Via | None) -> dict[str, Any]:
    """ComfyUI's error for a link it could not follow: ``exception_during_inner_validation`` (with the
    linking node's input) when the node was reached by a link, else ``exception_during_validation``."""
    if via is None:
        return {
            "type": "exception_during_validation",
            "message": "Exception when validating node",
            "details": str(exc),
            "extra_info": {"exception_type": type(exc).__name__, "traceback": []},
        }
    return {
        "type": "exception_during_inner_validation",
        "message": "Exception when validating inner node",
        "details": str(exc),
        "extra_info": {
            "input_name": via.input_name,
            "input_config": via.input_config,
            "exception_message": str(exc),
            "exception_type": type(exc).__name__,
            "linked_node": via.link,
        },
    }


class _Validator:
    """ComfyUI's ``validate_inputs``, node by node from each output, with its results per node."""

    def __init__(self, prompt: Mapping[str, Any], object_info: Mapping[str, Any]):
        self.prompt = prompt
        self.object_info = object_info
        #: node id -> (valid, errors), in the order ComfyUI finishes them (inputs before their users).
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        self._visiting: list[str] = []

    def node(self, node_id: str, via: _Via | None = None) -> tuple[bool, list[dict[str, Any]]]:
        """The node's result, validating it (and what it draws from) the first time. ``via`` is the
        link it was reached by; None for an output node validated for itself."""
        if node_id in self.validated:
            return self.validated[node_id]
        if node_id in self._visiting:
            cycle = [*self._visiting[self._visiting.index(node_id) :], node_id]
            error = {
                "type": "dependency_cycle",
                "message": "Dependency cycle detected",
                "details": " -> ".join(cycle),
                "extra_info": {"cycle_nodes": cycle},
            }
            self.validated[node_id] = (False, [error])
            return self.validated[node_id]
        self._visiting.append(node_id)
        try:
            result = self._check(node_id)
        except _BadLink as bad:
            # A link ComfyUI cannot follow raises inside the node's validation, which ends there: the
            # caller records it, with the caller's own input when the node was reached by a link.
            result = (False, [_link_exception(bad.exc, via)])
        finally:
            self._visiting.pop()
        self.validated.setdefault(node_id, result)
        return self.validated[node_id]

    def _check(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        node = self.prompt[node_id]
        inputs = node["inputs"]
        definition = self.object_info[node["class_type"]]
        errors: list[dict[str, Any]] = []
        valid = True
        declared = _class_inputs(definition)
        for name, spec, category in declared:
            input_type = spec[0] if isinstance(spec, list) and spec else None
            options = _spec_options(spec)
            info = [input_type, options]
            if _is_dynamic(input_type):
                # The inputs a V3 template expands into are named "<name>" or "<name>.<sub>".
                for key, value in inputs.items():
                    if (key == name or key.startswith(name + ".")) and _is_link(value):
                        valid = self._link(key, value, None, info, errors) and valid
                continue
            if name not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
                continue
            value = inputs[name]
            if _is_link(value):
                valid = self._link(name, value, input_type, info, errors) and valid
            else:
                self._value(name, value, input_type, options, spec, errors)
        return (not errors and valid), errors

    def _link(
        self, name: str, link: list[Any], wanted: Any, info: list[Any], errors: list[dict[str, Any]]
    ) -> bool:
        """Check one link, then the node it comes from; False when that node is invalid (its errors are
        its own). Raises _BadLink for a node or output that does not exist, as ComfyUI's lookup does."""
        if len(link) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": info, "received_value": link},
                }
            )
            return True
        source_id, slot = link
        try:
            source = self.prompt[source_id]
            returns = tuple(self.object_info[source["class_type"]].get("output") or ())
            received = returns[slot]
        except (KeyError, IndexError, TypeError) as exc:
            raise _BadLink(exc) from None
        if wanted is not None and not _types_match(received, wanted):
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({received}) mismatch input_type({wanted})",
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_type": received,
                        "linked_node": link,
                    },
                }
            )
            return True
        source_valid, _ = self.node(str(source_id), _Via(name, link, info))
        return source_valid

    def _value(
        self,
        name: str,
        value: Any,
        input_type: Any,
        options: Mapping[str, Any],
        spec: Any,
        errors: list[dict[str, Any]],
    ) -> None:
        info = [input_type, dict(options)]
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
        converters: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
        convert = converters.get(input_type) if isinstance(input_type, str) else None
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError, OverflowError) as exc:
                errors.append(
                    {
                        "type": "invalid_input_type",
                        "message": f"Failed to convert an input value to a {input_type} value",
                        "details": f"{name}, {value}, {exc}",
                        "extra_info": {
                            "input_name": name,
                            "input_config": info,
                            "received_value": value,
                            "exception_message": str(exc),
                        },
                    }
                )
                return
        try:
            if "min" in options and value < options["min"]:
                errors.append(self._range("value_smaller_than_min", "smaller than min", name, value, info))
                return
            if "max" in options and value > options["max"]:
                errors.append(self._range("value_bigger_than_max", "bigger than max", name, value, info))
                return
        except TypeError:
            pass  # ComfyUI would raise here too; a value its type does not order is left to it
        if isinstance(input_type, list) or input_type == "COMBO":
            if any(options.get(flag) for flag in _UPLOAD_OPTIONS):
                return  # a file the job uploads, or one ComfyUI's own validation checks
            choices = input_type if isinstance(input_type, list) else list(options.get("options") or [])
            chosen = value if options.get("multiselect") and isinstance(value, list) else [value]
            if any(item not in choices for item in chosen):
                errors.append(
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": f"{name}: '{value}' not in {choices}",
                        "extra_info": {"input_name": name, "input_config": spec, "received_value": value},
                    }
                )

    @staticmethod
    def _range(kind: str, words: str, name: str, value: Any, info: list[Any]) -> dict[str, Any]:
        limit = info[1]["min" if kind == "value_smaller_than_min" else "max"]
        return {
            "type": kind,
            "message": f"Value {value} {words} of {limit}",
            "details": name,
            "extra_info": {"input_name": name, "input_config": info, "received_value": value},
        }


def _missing_class(node_id: str, class_type: str) -> dict[str, Any]:
    """ComfyUI 0.8.0's answer for a node class it does not have (12_validation_errors)."""
    return {
        "type": "invalid_prompt",
        "message": f"Cannot execute because node {class_type} does not exist.",
        "details": f"Node ID '#{node_id}'",
        "extra_info": {},
    }


def output_nodes(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[str]:
    """The prompt's output nodes (the nodes ComfyUI runs the prompt for), in the prompt's order."""
    found: list[str] = []
    for node_id, node in prompt.items():
        definition = object_info.get(node.get("class_type"))
        if isinstance(definition, Mapping) and definition.get("output_node") is True:
            found.append(str(node_id))
    return found


def comfy_rejections(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[Rejection]:
    """What ComfyUI would refuse of an API prompt (its nodes already have class_type and inputs), as
    its answers: one per node class it lacks (ComfyUI names only the first; every one is listed here),
    else one for the output branches whose nodes fail validation. Empty when ComfyUI would run it."""
    missing = [
        Rejection(_missing_class(str(node_id), node["class_type"]), {})
        for node_id, node in prompt.items()
        if not isinstance(object_info.get(node["class_type"]), Mapping)
    ]
    if missing:
        return missing
    outputs = output_nodes(prompt, object_info)
    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return [Rejection(error, {})]
    validator = _Validator(prompt, object_info)
    node_errors: dict[str, Any] = {}
    good: list[str] = []
    for output in outputs:
        valid, _ = validator.node(output)
        if valid:
            good.append(output)
            continue
        for node_id, (_, reasons) in validator.validated.items():
            if not reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]},
            )
            entry["dependent_outputs"].append(output)
    if not node_errors:
        return []
    error = {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }
    return [Rejection({} if good else error, node_errors, partial=bool(good))]


def describe(rejections: list[Rejection], prompt: Mapping[str, Any]) -> WorkflowValidationError:
    """The worker's error for ComfyUI's answers: :func:`describe_rejection`'s sentence, the answers'
    sentences joined when there are several, and the worker's advice when only some branches fail."""
    described = [describe_rejection(r.error, r.node_errors, prompt, partial=r.partial) for r in rejections]
    if len(described) == 1:
        only = described[0]
        if rejections[0].partial:
            return WorkflowValidationError(only.message + _PARTIAL_SUFFIX, details=only.details)
        return only
    sentences = [error.message.removeprefix(f"{_LEAD}: ") for error in described]
    facts = [fact for error in described for fact in error.details.get("node_errors", [])]
    return WorkflowValidationError(
        f"{_LEAD}: " + "; ".join(sentences),
        details={"comfy_error": [r.error for r in rejections], "node_errors": facts},
    )


def check_prompt(prompt: Mapping[str, Any], object_info: ObjectInfo) -> WorkflowValidationError | None:
    """The worker's error for an API prompt ComfyUI would refuse (see :func:`comfy_rejections`)."""
    rejections = comfy_rejections(prompt, object_info.raw)
    return describe(rejections, prompt) if rejections else None


def check_workflow(
    workflow: Mapping[str, Any], object_info: ObjectInfo, *, rng: random.Random | None = None
) -> CheckResult:
    """Check a workflow (editor or API format) as the worker would take it, up to and including
    ComfyUI's validation, without running it."""
    try:
        if is_editor_workflow(workflow):
            prompt = editor_to_prompt(workflow, object_info, rng=rng)
        else:
            prompt = copy.deepcopy(dict(workflow))
            check_api_nodes(prompt)
        draw_random_seeds(prompt, rng)
        prepare_workflow(prompt, job_folder="check", uploaded={})
    except JobError as exc:
        return CheckResult(None, exc)
    error = check_prompt(prompt, object_info)
    return CheckResult(prompt, error, output_nodes(prompt, object_info.raw))


__all__ = [
    "CheckResult",
    "Rejection",
    "check_prompt",
    "check_workflow",
    "comfy_rejections",
    "describe",
    "output_nodes",
]
