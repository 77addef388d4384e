"""Node types that exist only in the editor: PrimitiveNode, Reroute, Note and MarkdownNote.

None of them reaches the prompt. A PrimitiveNode pushes its value into every widget it feeds
(src/extensions/core/widgetInputs.ts); a Reroute node passes links through
(src/extensions/core/rerouteNode.ts); notes carry text for people (src/extensions/core/noteNode.ts).
All as in comfyui-frontend-package 1.35.9.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..object_info import InputSpec
from .model import UNDEFINED, Node, Widget, key
from .text import apply_text_replacements
from .widgets import WIDGET_TYPES, add_value_control_widgets, build_widget, fire_callback

if TYPE_CHECKING:
    from .comfy_nodes import ComfyNode
    from .loader import Loader

_REPLACE_PROPERTY = "Run widget replace on values"


class PrimitiveNode(Node):
    """A value the user typed once and wired into one or more widgets."""

    is_virtual = True
    default_title = "Primitive"

    def __init__(self, title: str | None = None):
        super().__init__("PrimitiveNode", title)
        self.add_output("connect to widget input", "*")
        self.properties[_REPLACE_PROPERTY] = False
        self.config: InputSpec | None = None

    def on_after_graph_configured(self, loader: Loader) -> None:
        links = self.outputs[0].links if self.outputs else None
        if not links or self.widgets:
            return
        self._first_connection(loader)
        values = self.saved.get("widgets_values")
        if self.widgets and isinstance(values, list):
            for index, value in enumerate(values):
                if index < len(self.widgets):
                    self.widgets[index].set(value)
        self._merge_widget_config(loader)

    def _target_config(self, link_id: Any) -> tuple[ComfyNode | Node, Any, InputSpec] | None:
        """The node, input and input spec a link of this primitive feeds."""
        graph = self.graph
        link = graph.get_link(link_id) if graph else None
        if graph is None or link is None:
            return None
        target = graph.get_node(link.target_id)
        if target is None or not 0 <= link.target_slot < len(target.inputs):
            return None
        slot = target.inputs[link.target_slot]
        if slot.widget is None:
            if slot.type not in WIDGET_TYPES:
                return None
            return target, slot, InputSpec(slot.name, str(slot.type), False, {})
        spec = _widget_config(target, str(slot.widget.get("name")))
        if spec is None:
            return None
        return target, slot, spec

    def _first_connection(self, loader: Loader, recreating: bool = False) -> None:
        """``#onFirstConnection``: build the widget from the first input this primitive feeds."""
        links = self.outputs[0].links
        if not links or self.graph is None:
            return
        found = self._target_config(links[0])
        if found is None:
            return
        target, slot, spec = found
        config = self.config or spec
        self.outputs[0].type = config.type
        self.outputs[0].name = config.type
        widget_name = str(slot.widget.get("name")) if slot.widget else slot.name
        self._create_widget(config, target, widget_name)

    def _create_widget(self, spec: InputSpec, target: Node, widget_name: str) -> None:
        """``#createWidget``: the ``value`` widget (and its control companions)."""
        widget = build_widget(self, spec, name="value")
        if widget is None:
            widget = self.add_widget(Widget(name="value", type=spec.type.lower(), value=None))
        theirs = target.widget(widget_name)
        if theirs is not None:
            widget.set(theirs.value)
        if not spec.options.get("control_after_generate") and widget.type in ("number", "combo"):
            values = self.saved.get("widgets_values")
            control_value = values[1] if isinstance(values, list) and len(values) > 1 else None
            add_value_control_widgets(self, widget, control_value or "fixed", spec.options)
            filter_value = values[2] if isinstance(values, list) and len(values) > 2 else None
            if filter_value and self.widgets is not None and len(self.widgets) == 3:
                self.widgets[2].set(filter_value)
        self._primitive_widget = widget

    def _merge_widget_config(self, loader: Loader) -> None:
        """``#mergeWidgetConfig``: a number primitive feeding several widgets takes the intersection of
        their ranges, and its value is clamped to it."""
        links = self.outputs[0].links or []
        first = self._target_config(links[0]) if links else None
        if first is None or first[2].type not in ("INT", "FLOAT"):
            return
        merged = first[2]
        for link_id in links:
            found = self._target_config(link_id)
            if found is None:
                continue
            combined = merge_numeric_specs(merged, found[2])
            if combined is None:
                continue
            merged = combined
            self.config = combined
            self._recreate_widget(loader)
            widget = self.widgets[0] if self.widgets else None
            if widget is not None:
                low = widget.options.get("min")
                high = widget.options.get("max")
                if low is not None and _lt(widget.value, low):
                    widget.set(low)
                if high is not None and _lt(high, widget.value):
                    widget.set(high)
                fire_callback(widget, widget.value)

    def _recreate_widget(self, loader: Loader) -> None:
        values = [w.value for w in self.widgets or ()]
        self.widgets = []
        self._first_connection(loader, recreating=True)
        for index, value in enumerate(values):
            if self.widgets and index < len(self.widgets):
                self.widgets[index].set(value)

    def apply_to_graph(self, loader: Loader) -> None:
        """Copy this primitive's value over every widget it feeds."""
        graph = self.graph
        links = self.outputs[0].links if self.outputs else None
        if not links or graph is None:
            return
        value = self.widgets[0].value if self.widgets else UNDEFINED
        if value and self.properties.get(_REPLACE_PROPERTY):
            value = apply_text_replacements(loader, value, graph)
        for link_id in links:
            link = graph.get_link(link_id)
            if link is None:
                continue
            target = graph.get_node(link.target_id)
            if target is None or not 0 <= link.target_slot < len(target.inputs):
                continue
            slot = target.inputs[link.target_slot]
            if slot.widget is None:
                continue
            widget = target.widget(str(slot.widget.get("name")))
            if widget is None:
                continue
            widget.set(value)
            fire_callback(widget, widget.value)

    def describe(self) -> str:
        return f"primitive node {key(self.id)}"


def _lt(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return False


def _widget_config(target: Node, widget_name: str) -> InputSpec | None:
    """``getConfig``: the spec of a node's widget input from its class definition. A subgraph instance's
    promoted input takes the spec of the inner input it stands for (its widget locator is chained to
    that input's), through nested instances too."""
    from .subgraphs import SubgraphNode

    if isinstance(target, SubgraphNode):
        source = target.promoted_from.get(widget_name)
        return _widget_config(*source) if source is not None else None
    node_def = getattr(target, "node_def", None)
    if node_def is None:
        return None
    spec: InputSpec | None = node_def.input(widget_name)
    return spec


def merge_numeric_specs(first: InputSpec, second: InputSpec) -> InputSpec | None:
    """``mergeInputSpec`` for numbers (src/utils/nodeDefUtil.ts): intersect the ranges; other options
    must agree (default, tooltip and a few others aside)."""
    if first.type != second.type:
        return None
    a, b = dict(first.options), dict(second.options)
    low1, high1 = a.get("min", -math.inf), a.get("max", math.inf)
    low2, high2 = b.get("min", -math.inf), b.get("max", math.inf)
    if low1 is None:
        low1 = -math.inf
    if low2 is None:
        low2 = -math.inf
    if high1 is None:
        high1 = math.inf
    if high2 is None:
        high2 = math.inf
    if low1 > high2 or high1 < low2:
        return None
    merged = {
        "min": max(low1, low2),
        "max": min(high1, high2),
        "step": _lcm(a.get("step", 1), b.get("step", 1)),
    }
    a.update(merged)
    b.update(merged)
    ignored = {
        "default",
        "forceInput",
        "defaultInput",
        "control_after_generate",
        "multiline",
        "tooltip",
        "dynamicPrompts",
    }
    for name in set(a) | set(b):
        if name in ignored:
            continue
        if a.get(name) != b.get(name) and not (a.get(name) is None and b.get(name) is None):
            return None
    return InputSpec(first.name, first.type, first.is_optional, {**a, **b}, first.choices)


def _lcm(a: Any, b: Any) -> Any:
    """``lcm`` of src/utils/mathUtil.ts, which also accepts decimals."""
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a
    if x == 0 or y == 0:
        return 0
    scale = 10 ** max(_decimals(x), _decimals(y))
    ix, iy = round(x * scale), round(y * scale)
    result = abs(ix * iy) // math.gcd(ix, iy) / scale
    return int(result) if result.is_integer() else result


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


class RerouteNode(Node):
    """A legacy Reroute node: one input, one output, both of any type."""

    is_virtual = True
    default_title = "Reroute"

    def __init__(self, title: str | None = None):
        super().__init__("Reroute", title)
        self.add_input("", "*")
        self.add_output("", "*")


class NoteNode(Node):
    """Note and MarkdownNote: text for people, never sent."""

    is_virtual = True

    def __init__(self, type_name: str, title: str | None = None):
        self.default_title = "Note" if type_name == "Note" else "Markdown Note"
        super().__init__(type_name, title)
        self.add_widget(
            Widget(name="text", type="customtext" if type_name == "Note" else "markdown", value="")
        )
