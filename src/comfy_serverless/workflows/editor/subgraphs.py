"""Subgraph instances: a node that stands for a whole subgraph definition.

Mirrors ``SubgraphNode`` (src/lib/litegraph/src/subgraph/SubgraphNode.ts) and the promoted-widget
("proxyWidgets") handling of src/core/graph/subgraph/proxyWidget.ts in comfyui-frontend-package 1.35.9:

- the instance's inputs are the definition's inputs; an input wired inside to a widget shows a
  *promoted* copy of that widget on the instance, and the instance's ``widgets_values`` fill those;
- ``properties.proxyWidgets`` orders the instance's widgets; entries ``["-1", name]`` are promoted
  widgets whose saved values are taken by their position in that list, other entries only show an
  inner widget (its value is the inner node's own);
- all instances share the definition's nodes, so values that differ per instance travel only through
  promoted widgets;
- when the graph is flattened, the definition's nodes appear once per instance under the execution
  id ``"<instance id>:<inner id>"``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .model import (
    InputSlot,
    Link,
    Node,
    OutputSlot,
    Subgraph,
    SubgraphSlot,
    Widget,
    json_clone,
    key,
    merge_with_definition,
)

if TYPE_CHECKING:
    from .execution import Executable
    from .loader import Loader


class SubgraphNode(Node):
    """An instance of a subgraph definition."""

    is_virtual = True

    def __init__(self, subgraph: Subgraph, loader: Loader, title: str | None = None):
        self.default_title = subgraph.name
        super().__init__(subgraph.id, title)
        self.subgraph = subgraph
        self.loader = loader
        self.widgets = []
        #: For each promoted input, the inner node and the name of the widget input it stands for.
        self.promoted_from: dict[str, tuple[Node, str]] = {}
        subgraph.listeners.append(self._on_input_added)
        # The constructor configures the new node with an empty instance.
        self.configure(
            {"id": -1, "type": subgraph.id, "inputs": [], "outputs": [], "flags": {}, "order": 0, "mode": 0},
            loader,
        )

    # --- loading -----------------------------------------------------------------------------------

    def configure(self, info: dict[str, Any], loader: Loader) -> None:
        data = merge_with_definition(self, info)
        # SubgraphNode.configure: the slots are the definition's, then the saved ones are laid over them.
        self.inputs = [InputSlot(name=s.name, type=s.type, label=s.label) for s in self.subgraph.inputs]
        self.outputs = [OutputSlot(name=s.name, type=s.type) for s in self.subgraph.outputs]
        super().configure(data, loader)

    def after_slots_configured(self, loader: Loader) -> None:
        """``_internalConfigureAfterSlots``: promote, for each input, the first inner widget it feeds."""
        self.widgets = []
        for slot in self.inputs:
            subgraph_input = self.subgraph.input_slot(slot.name)
            if subgraph_input is None:
                continue
            for link_id in subgraph_input.link_ids:
                link = self.subgraph.get_link(link_id)
                if link is None:
                    continue
                inner = self.subgraph.get_node(link.target_id)
                if inner is None:
                    continue
                target = next((i for i in inner.inputs if _same_id(i.link, link_id)), None)
                if target is None:
                    continue
                widget = inner.get_widget_from_slot(target)
                if widget is None:
                    continue
                self._promote(subgraph_input, slot, widget, inner, target.widget)
                break

    def _promote(
        self,
        subgraph_input: SubgraphSlot,
        slot: InputSlot,
        widget: Widget,
        inner: Node,
        inner_locator: dict[str, Any] | None,
    ) -> None:
        """``#setWidget``: a copy of the inner widget, named after the subgraph input."""
        promoted = Widget(
            name=subgraph_input.name,
            type=widget.type,
            value=json_clone(widget.value),
            in_prompt=widget.in_prompt,
            has_value_slot=widget.has_value_slot,
            options=dict(widget.options),
            callback_kind=widget.callback_kind,
        )
        assert self.widgets is not None
        count = sum(1 for s in self.inputs if s.widget is not None)
        self.widgets.insert(min(count, len(self.widgets)), promoted)
        if slot.widget is None:
            slot.widget = {"name": subgraph_input.name}
        slot.widget["name"] = subgraph_input.name
        if inner_locator is not None:
            self.promoted_from[subgraph_input.name] = (inner, str(inner_locator.get("name")))

    def _on_input_added(self, subgraph_input: SubgraphSlot) -> None:
        """The definition (re)created one of its inputs while this instance already existed."""
        existing = next((s for s in self.inputs if s.name == subgraph_input.name), None)
        if existing is None:
            self.add_input(subgraph_input.name, subgraph_input.type)
            return
        if not subgraph_input.link_ids:
            return
        link = self.subgraph.get_link(subgraph_input.link_ids[0])
        if link is None:
            return
        inner = self.subgraph.get_node(link.target_id)
        widget = inner.widget(subgraph_input.name) if inner is not None else None
        if inner is not None and widget is not None:
            target = inner.inputs[link.target_slot] if 0 <= link.target_slot < len(inner.inputs) else None
            self._promote(subgraph_input, existing, widget, inner, target.widget if target else None)

    def on_configure(self, info: dict[str, Any], loader: Loader) -> None:
        """``proxyWidgets``: order the widgets, and take the promoted ones' values by list position."""
        self.properties.setdefault("proxyWidgets", [])
        saved_properties = info.get("properties")
        raw = saved_properties.get("proxyWidgets") if isinstance(saved_properties, dict) else None
        if not raw:
            return
        parsed = _parse_proxy_widgets(raw)
        if parsed is None:
            return
        widgets = self.widgets or []
        shown: list[Widget] = []
        for node_id, name in parsed:
            if node_id == "-1":
                found = next((w for w in widgets if w.name == name), None)
                if found is not None:
                    shown.append(found)
            else:
                shown.append(
                    Widget(
                        name=f"{node_id}: {name}",
                        type="proxy",
                        value=None,
                        in_prompt=False,
                        has_value_slot=False,
                    )
                )
        names = {name for _, name in parsed}
        self.widgets = [w for w in widgets if w.type != "proxy" and w.name not in names] + shown
        values = info.get("widgets_values")
        if isinstance(values, list):
            for index, value in enumerate(values):
                if index >= len(parsed) or parsed[index][0] != "-1":
                    continue
                found = next((w for w in self.widgets if w.name == parsed[index][1]), None)
                if value is not None and found is not None:
                    found.set(value)

    def on_serialize(self, loader: Loader) -> None:
        """Each promoted value is written into the inner widgets its input feeds."""
        for widget in self.widgets or ():
            slot = next((s for s in self.inputs if s.name == widget.name), None)
            if slot is None:
                continue
            subgraph_input = self.subgraph.input_slot(slot.name)
            if subgraph_input is None:
                continue
            for inner_widget in self._connected_widgets(subgraph_input):
                inner_widget.set(widget.value)

    def _connected_widgets(self, subgraph_input: SubgraphSlot) -> list[Widget]:
        found: list[Widget] = []
        for link_id in subgraph_input.link_ids:
            link = self.subgraph.get_link(link_id)
            if link is None:
                continue
            inner = self.subgraph.get_node(link.target_id)
            if inner is None or inner.widgets is None or not 0 <= link.target_slot < len(inner.inputs):
                continue
            target = inner.inputs[link.target_slot]
            if target.widget is None or not target.widget.get("name"):
                continue
            widget = inner.widget(str(target.widget["name"]))
            if widget is not None:
                found.append(widget)
        return found

    # --- flattening --------------------------------------------------------------------------------

    def subgraph_output_link(self, slot: int) -> Link | None:
        """The link inside the definition that feeds output ``slot``."""
        if not 0 <= slot < len(self.subgraph.outputs):
            return None
        for link_id in self.subgraph.outputs[slot].link_ids:
            link = self.subgraph.get_link(link_id)
            if link is not None:
                return link
        return None

    def inner_executables(
        self,
        table: dict[str, Executable],
        path: tuple[str, ...],
        collected: list[Executable] | None = None,
        visited: frozenset[int] = frozenset(),
    ) -> list[Executable]:
        """``getInnerNodes``: this instance's nodes, recursively, as executables under its path."""
        from .errors import ConversionError
        from .execution import Executable

        if id(self) in visited:
            raise ConversionError(
                f"subgraph {self.subgraph.name!r} contains itself (instance {':'.join([*path, key(self.id)])})",
                node_id=":".join([*path, key(self.id)]),
            )
        visited = visited | {id(self)}
        collected = [] if collected is None else collected
        instance_path = (*path, key(self.id))
        parent = _instance_at(self.loader.root, path)
        dto = Executable(self, path, table, parent)
        table[dto.id] = dto
        for node in self.subgraph.nodes:
            expand = getattr(node, "inner_executables", None)
            if expand is not None:
                # Nested subgraph instances (and group nodes, which refuse to be inside one).
                expand(table, instance_path, collected, visited)
            else:
                inner = Executable(node, instance_path, table, self)
                table[inner.id] = inner
                collected.append(inner)
        return collected

    def nodes_for_apply(self, loader: Loader) -> list[Node]:
        """The definition's nodes, nested instances entered, for graphToPrompt's first pass."""
        nodes: list[Node] = []
        seen: set[int] = set()

        def walk(instance: SubgraphNode) -> None:
            if id(instance) in seen:
                return
            seen.add(id(instance))
            for node in instance.subgraph.nodes:
                if isinstance(node, SubgraphNode):
                    walk(node)
                else:
                    nodes.append(node)

        walk(self)
        return nodes


def _same_id(a: Any, b: Any) -> bool:
    """``===`` between two link ids as JSON gave them."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _instance_at(root: Any, path: tuple[str, ...]) -> SubgraphNode | None:
    """``resolveSubgraphIdPath(path).at(-1)``."""
    graph = root
    found: SubgraphNode | None = None
    for node_id in path:
        node = graph.get_node(node_id)
        if not isinstance(node, SubgraphNode):
            return None
        found = node
        graph = node.subgraph
    return found


def _parse_proxy_widgets(raw: Any) -> list[tuple[str, str]] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, list):
        return None
    parsed: list[tuple[str, str]] = []
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            return None
        parsed.append((entry[0], entry[1]))
    return parsed
