"""Inputs that change shape with the node's values or links (ComfyUI's V3 "dynamic" inputs).

Mirrors src/core/graph/widgets/dynamicWidgets.ts of comfyui-frontend-package 1.35.9:

- ``COMFY_DYNAMICCOMBO_V3``: a combo whose choice adds its own sub-inputs right after it, named
  ``"<combo>.<input>"`` (ResizeImageMaskNode's ``resize_type.width``); changing the choice swaps them
  and carries links over by name. Loading sets the combo first, so the saved values that follow it
  land on the sub-widgets it just created;
- ``COMFY_AUTOGROW_V3``: a group of numbered inputs (``images.image0``, ``images.image1``, ...) that
  grows as they are connected; after loading, a gap left by an unconnected input is closed by moving
  the later links down, and unused trailing inputs are removed;
- ``COMFY_MATCHTYPE_V3``: a socket typed with the template's allowed types (built in
  :mod:`.comfy_nodes`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..object_info import InputSpec, input_spec_from_json
from .model import UNDEFINED, InputSlot, Widget
from .widgets import build_widget

if TYPE_CHECKING:
    from .comfy_nodes import ComfyNode

_ORDINAL = re.compile(r"\d+$")


def dynamic_combo_widget(node: ComfyNode, spec: InputSpec) -> Widget:
    options: dict[str, Any] = {}
    for option in spec.options.get("options") or ():
        if isinstance(option, dict) and "key" in option:
            options[str(option["key"])] = option.get("inputs") or {}
    choices = InputSpec(spec.name, "COMBO", spec.is_optional, {}, tuple(options))
    widget = build_widget(node, choices)
    assert widget is not None
    state = {"value": widget.value}

    def update(value: Any) -> None:
        prefix = widget.name + "."
        removed = [slot for slot in node.inputs if slot.name.startswith(prefix)]
        node.inputs = [slot for slot in node.inputs if not slot.name.startswith(prefix)]
        node.widgets = [w for w in node.widgets or () if not w.name.startswith(prefix)]
        new_spec = options.get(value) if isinstance(value, str) and value else None
        if not new_spec:
            return
        insertion = next((i for i, w in enumerate(node.widgets) if w is widget), -1) + 1
        start_widgets = len(node.widgets)
        start_inputs = len(node.inputs)
        for index, section in enumerate((new_spec.get("required"), new_spec.get("optional"))):
            for key, raw in (section or {}).items():
                added = input_spec_from_json(f"{widget.name}.{key}", raw, optional=index != 0)
                if added is not None:
                    node.add_node_input(replace(added, options={**added.options, "display_name": key}))
        input_insertion = next((i for i, s in enumerate(node.inputs) if s.name == widget.name), -1) + 1
        added_widgets = node.widgets[start_widgets:]
        del node.widgets[start_widgets:]
        node.widgets[insertion:insertion] = added_widgets
        if input_insertion == 0:
            return
        added_inputs = splice_inputs(node, start_inputs)
        mapped: list[InputSlot] = []
        for slot in added_inputs:
            existing = next((i for i, s in enumerate(node.inputs) if s.name == slot.name), -1)
            mapped.append(slot if existing == -1 else splice_inputs(node, existing, 1)[0])
        splice_inputs(node, input_insertion, 0, mapped)
        for old in removed:
            index = next((i for i, s in enumerate(node.inputs) if s.name == old.name), -1)
            if index == -1:
                node.inputs.append(old)
                node.remove_input(len(node.inputs) - 1)
                continue
            node.inputs[index].link = old.link
            if not old.link or node.graph is None:
                continue
            link = node.graph.get_link(old.link)
            if link is not None:
                link.target_slot = index

    def setter(value: Any) -> None:
        state["value"] = value
        widget.value = value
        update(value)

    widget.setter = setter
    setter(state["value"])
    return widget


def splice_inputs(
    node: ComfyNode, start: int, delete: int = -1, add: list[InputSlot] | None = None
) -> list[InputSlot]:
    """``spliceInputs``: splice the input list and re-point the moved links' target slots."""
    if delete < 0:
        removed = node.inputs[start:]
        del node.inputs[start:]
        return removed
    removed = node.inputs[start : start + delete]
    node.inputs[start : start + delete] = list(add or ())
    if node.graph is not None:
        for offset, slot in enumerate(node.inputs[start:]):
            link = node.graph.get_link(slot.link) if slot.link else None
            if link is not None:
                link.target_slot = start + offset
    return removed


# --- autogrow ----------------------------------------------------------------------------------------


def apply_autogrow(node: ComfyNode, spec: InputSpec) -> None:
    template = spec.options.get("template") or {}
    sections = template.get("input") or {}
    specs: list[InputSpec] = []
    for index, section in enumerate((sections.get("required"), sections.get("optional"))):
        for name, raw in (section or {}).items():
            parsed = input_spec_from_json(name, raw, optional=index == 1)
            if parsed is not None:
                specs.append(parsed)
    names = template.get("names")
    minimum = template.get("min", 1)
    node.autogrow[spec.name] = {
        "names": names,
        "min": minimum,
        "max": len(names) if names else template.get("max", 100),
        "prefix": template.get("prefix") or "",
        "specs": specs,
    }
    for ordinal in range(minimum):
        add_autogrow_group(node, ordinal, spec.name)


def _ordinal_name(node: ComfyNode, ordinal: int, key: str, group: str) -> str:
    info = node.autogrow[group]
    names = info["names"]
    if names:
        base = names[ordinal] if ordinal < len(names) else "undefined"
    else:
        base = (info["prefix"] if len(info["specs"]) == 1 else key) + str(ordinal)
    return f"{group}.{base}"


def add_autogrow_group(node: ComfyNode, ordinal: int, group: str) -> None:
    info = node.autogrow[group]
    if ordinal >= info["max"]:
        return
    new_inputs: list[InputSlot] = []
    for spec in info["specs"]:
        name = _ordinal_name(node, ordinal, spec.name, group)
        if any(slot.name == name for slot in node.inputs):
            continue
        named = replace(spec, name=name, is_optional=ordinal >= info["min"] or spec.is_optional)
        node.add_node_input(named)
        slot = splice_inputs(node, len(node.inputs) - 1, 1)[0]
        if len(info["specs"]) != 1:
            _ensure_widget_for_input(node, slot)
        new_inputs.append(slot)
    last = max((i for i, s in enumerate(node.inputs) if s.name.startswith(group)), default=-1)
    insertion = len(node.inputs) if last == -1 else last + 1
    splice_inputs(node, insertion, 0, new_inputs)


def _ensure_widget_for_input(node: ComfyNode, slot: InputSlot) -> None:
    if node.widgets is None:
        node.widgets = []
    if slot.widget is not None and any(w.name == slot.widget.get("name") for w in node.widgets):
        return
    node.widgets.append(Widget(name=slot.name, type="shim", value=UNDEFINED, has_value_slot=False))
    slot.widget = {"name": slot.name}


def _group_of(name: str) -> str:
    return name[: name.rfind(".")] if "." in name else ""


def _ordinal(node: ComfyNode, name: str, group: str) -> int | None:
    rest = name[len(group) + 1 :]
    names = node.autogrow[group]["names"]
    if names:
        return names.index(rest) if rest in names else None
    match = _ORDINAL.search(rest)
    return int(match.group(0)) if match else None


def autogrow_connections(node: ComfyNode) -> list[int]:
    """The autogrow connection handler as ``configure`` reports each loaded input: a connected last input
    grows its group at once; unconnected ones are handled on the next animation frame (returned)."""
    later: list[int] = []
    if not node.autogrow:
        return later
    index = 0
    while index < len(node.inputs):
        slot = node.inputs[index]
        group = _group_of(slot.name)
        if group in node.autogrow:
            if slot.link is not None:
                ordinal = _ordinal(node, slot.name, group)
                last = next((s for s in reversed(node.inputs) if s.name.startswith(group)), None)
                if last is not None and ordinal is not None and ordinal == _ordinal(node, last.name, group):
                    add_autogrow_group(node, ordinal + 1, group)
            else:
                later.append(index)
        index += 1
    return later


def autogrow_after_frame(node: ComfyNode, pending: list[int]) -> None:
    """The deferred handlers for inputs that loaded unconnected: close gaps, drop unused trailing inputs."""
    for index in pending:
        _autogrow_disconnected(node, index)


def _autogrow_disconnected(node: ComfyNode, index: int) -> None:
    if index >= len(node.inputs):
        return
    slot = node.inputs[index]
    group = _group_of(slot.name)
    if group not in node.autogrow:
        return
    info = node.autogrow[group]
    minimum = info["min"] if info["min"] is not None else 1
    ordinal = _ordinal(node, slot.name, group)
    if ordinal is None or ordinal + 1 < minimum:
        return
    members = [s for s in node.inputs if s.name.startswith(group + ".") and s.name.rfind(".") == len(group)]
    stride = len(info["specs"])
    if stride == 0 or len(members) % stride != 0:
        return
    for column in range(stride):
        bubble = ordinal * stride + column
        while bubble + stride < len(members):
            current = members[bubble]
            current.link = members[bubble + stride].link
            if current.link and node.graph is not None:
                link = node.graph.get_link(current.link)
                if link is not None:
                    link.target_slot = node.inputs.index(current)
            bubble += stride
        if len(members) >= stride - column:
            members[column - stride].link = None
    checks = members[(minimum - 1) * stride :]
    position = len(checks) - stride
    while position >= 0:
        if any(s.link for s in checks[position : position + stride]):
            break
        position -= stride
    doomed = checks[position + stride * 2 :]
    node.inputs = [s for s in node.inputs if not any(s is d for d in doomed)]
    for slot in doomed:
        if slot.widget is not None:
            node.widgets = [w for w in node.widgets or () if w.name != slot.widget.get("name")]
