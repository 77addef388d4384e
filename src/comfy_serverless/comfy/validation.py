"""ComfyUI's validation answers (HTTP 400 bodies and ``node_errors``) turned into one readable error.

Body shapes: 12_validation_errors (400s) and 13_partially_invalid (200 with node_errors) for 0.8.0 and
earlier. Newer ComfyUI (autumn 2026, ~0.38 on; see tests/emulator/versions/0.38) names a missing node
``missing_node_type`` with ``extra_info`` {node_id, class_type, node_title} instead of 0.8.0's
``invalid_prompt`` wording, and adds ``dependency_cycle``, ``invalid_dynamic_input``,
``invalid_prompt_id`` and loop errors (``custom_validation_failed`` with ``extra_info.loop_error_type``).
Structured fields are read first; the wording of a version is only the fallback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import WorkflowValidationError

# Suffixes of files that live in ComfyUI's model folders; a choice list made of these is a model list.
_MODEL_SUFFIXES = (
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".sft",
    ".onnx",
    ".pkl",
    ".pt2",
)
_MAX_LISTED_CHOICES = 25

ModelHint = Callable[[str, str, Any], str | None]
"""(class_type, input_name, missing value) -> extra advice, e.g. about the network volume layout."""


def _looks_like_model_choice(input_name: str, choices: list[Any], value: Any) -> bool:
    names = [c for c in choices if isinstance(c, str)]
    if isinstance(value, str) and value.lower().endswith(_MODEL_SUFFIXES):
        return True
    if names and sum(n.lower().endswith(_MODEL_SUFFIXES) for n in names) * 2 >= len(names):
        return True
    return input_name.endswith("_name") and not names


def _choices_of(extra_info: Mapping[str, Any]) -> list[Any] | None:
    config = extra_info.get("input_config")
    if isinstance(config, list) and config and isinstance(config[0], list):
        return config[0]
    # Newer COMBO specs put the options in the second element: ["COMBO", {"options": [...]}].
    if isinstance(config, list) and len(config) > 1 and isinstance(config[1], dict):
        options = config[1].get("options")
        if isinstance(options, list):
            return options
    return None


def _bad_link_input(node: Mapping[str, Any], exc_type: str, exc_message: str) -> tuple[str, Any] | None:
    """Which input of a node holds the link ComfyUI choked on. ComfyUI names the downstream input
    instead (12_validation_errors: a bad link in node 2 is reported with SaveImage's `images`)."""
    links = [
        (name, value)
        for name, value in (node.get("inputs") or {}).items()
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
    ]
    if exc_type == "KeyError":
        missing = exc_message.strip("'\"")
        for name, value in links:
            if str(value[0]) == missing:
                return name, value
    if len(links) == 1:
        return links[0]
    return None


def describe_node_error(
    node_id: str,
    class_type: str,
    error: Mapping[str, Any],
    model_hint: ModelHint | None = None,
    node: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """One node error as a sentence, plus the structured facts behind it."""
    kind = str(error.get("type") or "error")
    message = str(error.get("message") or kind)
    details = str(error.get("details") or "")
    extra = error.get("extra_info") if isinstance(error.get("extra_info"), dict) else {}
    assert isinstance(extra, dict)
    input_name = str(extra.get("input_name") or "")
    fact: dict[str, Any] = {"node_id": node_id, "class_type": class_type, "type": kind, "message": message}
    if input_name:
        fact["input"] = input_name
    if details:
        fact["details"] = details
    where = f"node {node_id} ({class_type})" + (f" input {input_name!r}" if input_name else "")

    if kind == "value_not_in_list":
        choices = _choices_of(extra) or []
        value = extra.get("received_value")
        fact["received_value"] = value
        if _looks_like_model_choice(input_name, choices, value):
            fact["available"] = choices
            if choices:
                shown = ", ".join(map(str, choices[:_MAX_LISTED_CHOICES]))
                more = (
                    f" and {len(choices) - _MAX_LISTED_CHOICES} more"
                    if len(choices) > _MAX_LISTED_CHOICES
                    else ""
                )
                text = f"{where}: model file {value!r} is not available; available: {shown}{more}"
            else:
                text = f"{where}: model file {value!r} is not available, and ComfyUI found no files at all for this input"
            hint = model_hint(class_type, input_name, value) if model_hint else None
            if hint:
                fact["hint"] = hint
                text += f". {hint}"
            return text, fact
        shown = ", ".join(repr(c) for c in choices[:_MAX_LISTED_CHOICES])
        return f"{where}: {value!r} is not one of {shown}", fact
    if kind == "required_input_missing":
        return f"{where}: required input is missing", fact
    if kind in ("value_bigger_than_max", "value_smaller_than_min"):
        return f"{where}: {message}", fact
    if kind == "exception_during_inner_validation":
        exc_type = str(extra.get("exception_type") or "error")
        exc_message = str(extra.get("exception_message") or details)
        culprit = _bad_link_input(node or {}, exc_type, exc_message)
        if culprit is not None:
            input_name, link = culprit
            fact["input"] = input_name
            fact["link"] = link
            where = f"node {node_id} ({class_type}) input {input_name!r}"
            if exc_type == "KeyError":
                return f"{where} links to node {link[0]}, which is not in the workflow", fact
            if exc_type == "IndexError":
                return f"{where} links to output {link[1]} of node {link[0]}, which has no such output", fact
        return f"{where}: bad link: {exc_type}: {exc_message}", fact
    if kind == "return_type_mismatch":
        received = extra.get("received_type")
        expected = (extra.get("input_config") or [None])[0]
        return f"{where}: linked output has type {received}, but the input needs {expected}", fact
    if kind == "dependency_cycle":
        cycle = details or " -> ".join(map(str, extra.get("cycle_nodes") or ()))
        fact["cycle"] = extra.get("cycle_nodes") or cycle
        return f"node {node_id} ({class_type}) is part of a dependency cycle: {cycle}", fact
    if kind == "invalid_dynamic_input":
        return f"{where}: invalid dynamic input" + (f": {details}" if details else ""), fact
    if kind == "custom_validation_failed" and extra.get("loop_error_type"):
        fact["loop_error_type"] = extra["loop_error_type"]
        return f"node {node_id} ({class_type}): {message}" + (f" ({details})" if details else ""), fact
    if kind == "custom_validation_failed" and details:
        return f"{where}: {details}", fact
    return f"{where}: {message}" + (f": {details}" if details else ""), fact


def describe_rejection(
    error: Mapping[str, Any],
    node_errors: Mapping[str, Any],
    prompt: Mapping[str, Any],
    *,
    model_hint: ModelHint | None = None,
    partial: bool = False,
) -> WorkflowValidationError:
    """The whole rejection as one error listing every failing node, class_type, input and message."""
    sentences: list[str] = []
    facts: list[dict[str, Any]] = []
    for node_id, node_error in node_errors.items():
        if not isinstance(node_error, dict):
            continue
        node = prompt.get(str(node_id))
        node = node if isinstance(node, Mapping) else {}
        class_type = str(node_error.get("class_type") or node.get("class_type") or "?")
        for item in node_error.get("errors") or ():
            if isinstance(item, dict):
                sentence, fact = describe_node_error(str(node_id), class_type, item, model_hint, node)
                sentences.append(sentence)
                facts.append(fact)
    error_type = str(error.get("type") or "")
    extra = error.get("extra_info") if isinstance(error.get("extra_info"), Mapping) else {}
    assert isinstance(extra, Mapping)
    if not sentences:
        message = str(error.get("message") or "ComfyUI rejected the workflow")
        details = str(error.get("details") or "")
        if error_type == "missing_node_type":
            node_id = str(extra.get("node_id") or details.removeprefix("Node ID '#").rstrip("'"))
            missing = extra.get("class_type")
            if missing is None and node_id in prompt and isinstance(prompt[node_id], Mapping):
                missing = prompt[node_id].get("class_type")
            if missing:
                title = extra.get("node_title")
                named = f" ({title!r})" if title and title != missing else ""
                sentences.append(
                    f"node {node_id}{named} uses class_type {missing!r}, which this ComfyUI does not have "
                    "(a custom node that is not installed?)"
                )
            else:
                sentences.append(f"node {node_id} has no class_type")
            facts.append({"node_id": node_id, "type": error_type, "class_type": missing, "message": message})
        elif error_type == "invalid_prompt_id":
            # The worker makes the prompt ids: this is the worker's fault, not the job's.
            sentences.append(f"ComfyUI refused the worker's prompt id: {message}")
        elif error_type == "invalid_prompt" and details.startswith("Node ID '#"):
            node_id = details.removeprefix("Node ID '#").rstrip("'")
            if "does not exist" in message:
                missing = message.removeprefix("Cannot execute because node ").split(" does not exist")[0]
                sentences.append(
                    f"node {node_id} uses class_type {missing!r}, which this ComfyUI does not have "
                    "(a custom node that is not installed?)"
                )
            else:
                sentences.append(f"node {node_id}: {message}")
            facts.append({"node_id": node_id, "type": error_type, "message": message})
        elif error_type == "prompt_no_outputs":
            sentences.append(
                "the workflow has no output node (such as SaveImage, SaveVideo, SaveAudio or PreviewAny), "
                "so there is nothing to run"
            )
        else:
            sentences.append(message + (f": {details}" if details else ""))
    lead = "ComfyUI rejected part of the workflow" if partial else "ComfyUI rejected the workflow"
    return WorkflowValidationError(
        f"{lead}: " + "; ".join(sentences),
        details={"comfy_error": dict(error), "node_errors": facts},
    )
