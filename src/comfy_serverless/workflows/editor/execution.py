"""From the loaded editor graph to the API prompt: the frontend's ``graphToPrompt``.

Mirrors ``src/utils/executionUtil.ts`` and ``ExecutableNodeDTO`` (``src/lib/litegraph/src/subgraph/``)
of comfyui-frontend-package 1.35.9:

1. every virtual node (PrimitiveNode, ...) pushes its value into the widgets it feeds;
2. the graph is flattened: each subgraph instance is replaced by its definition's nodes, whose
   execution ids are the instance path joined by ``:`` (``"12:5"``, ``"12:7:3"``);
3. each node that is neither virtual, muted (mode 2) nor bypassed (mode 4) becomes a prompt entry:
   its widget values first, then each connected input resolved through reroutes, bypassed nodes
   (first input of a matching type) and subgraph boundaries to the real node that produces it;
4. inputs that point at a node that did not make it into the prompt are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConversionError
from .model import MODE_BYPASS, MODE_NEVER, UNDEFINED, Graph, Node, key
from .text import js_key, js_string

if TYPE_CHECKING:
    from .loader import Loader
    from .subgraphs import SubgraphNode


def is_valid_connection(type_a: Any, type_b: Any) -> bool:
    """``LiteGraph.isValidConnection``: do two slot types fit ("*", "" and comma lists included)."""
    if type_a == "" or type_a == "*":
        type_a = 0
    if type_b == "" or type_b == "*":
        type_b = 0
    if not type_a or not type_b or type_a == type_b:
        return True
    a = js_string(type_a).lower()
    b = js_string(type_b).lower()
    if "," not in a and "," not in b:
        return a == b
    return any(is_valid_connection(x, y) for x in a.split(",") for y in b.split(","))


@dataclass(slots=True)
class Resolved:
    """Where an input's value comes from: a node's output, or a widget value of a subgraph instance."""

    origin_id: str
    origin_slot: int
    widget_value: Any = None
    is_widget: bool = False


class Executable:
    """One node of the flattened graph (``ExecutableNodeDTO``)."""

    def __init__(
        self,
        node: Node,
        path: tuple[str, ...],
        table: dict[str, Executable],
        subgraph_node: SubgraphNode | None = None,
    ):
        if node.graph is None:
            raise ConversionError(f"{node.describe()} belongs to no graph")
        self.node = node
        self.path = path
        self.table = table
        self.subgraph_node = subgraph_node
        self.graph: Graph = node.graph
        self.id = ":".join([*path, key(node.id)])
        self.inputs = [(slot.link, slot.name, slot.type) for slot in node.inputs]

    @property
    def mode(self) -> int:
        return self.node.mode

    @property
    def is_virtual(self) -> bool:
        """``isVirtualNode``: never emitted (a group node's stand-in is virtual, its node is not)."""
        return self.node.is_virtual

    def inner(self) -> list[Executable]:
        from .subgraphs import SubgraphNode

        if isinstance(self.node, SubgraphNode):
            return self.node.inner_executables(self.table, self.path)
        return [self]

    def _where(self) -> str:
        title = f" ({self.node.title})" if self.node.title else ""
        return f"node {self.id}{title}"

    def resolve_input(self, slot: int, visited: set[str], type_: Any = None) -> Resolved | None:
        unique = (
            f"{self.subgraph_node.subgraph.id if self.subgraph_node else None}:{key(self.node.id)}[I]{slot}"
        )
        if unique in visited:
            raise ConversionError(
                f"{self._where()}: its input {slot} is part of a loop of links (a circular reference)",
                node_id=self.id,
            )
        visited.add(unique)
        if slot >= len(self.inputs) or slot < -len(self.inputs):
            raise ConversionError(f"{self._where()} has no input slot {slot}", node_id=self.id)
        link_id, name, input_type = self.inputs[slot]
        if link_id is None:
            return None
        link = self.graph.get_link(link_id)
        if link is None:
            raise ConversionError(
                f"{self._where()} input {name!r} refers to link {key(link_id)}, which the workflow does not "
                "contain (a damaged file: re-save it from the editor)",
                node_id=self.id,
                input=name,
            )
        subgraph_node = self.subgraph_node
        if subgraph_node is not None and link.origin_is_io_node:
            # The link comes from the subgraph's input: continue on the instance, outside.
            if not -len(subgraph_node.inputs) <= link.origin_slot < len(subgraph_node.inputs):
                raise ConversionError(
                    f"{self._where()} input {name!r} comes from subgraph input {link.origin_slot}, which "
                    f"the subgraph instance {':'.join(self.path)} does not have",
                    node_id=self.id,
                    input=name,
                )
            outer_input = subgraph_node.inputs[link.origin_slot]
            if outer_input.link is None:
                widget = subgraph_node.get_widget_from_slot(outer_input)
                if widget is None:
                    return None
                return Resolved(self.id, -1, widget.value, is_widget=True)
            outer_link = subgraph_node.graph.get_link(outer_input.link) if subgraph_node.graph else None
            if outer_link is None:
                raise ConversionError(
                    f"subgraph instance {':'.join(self.path)} input {outer_input.name!r} refers to link "
                    f"{key(outer_input.link)}, which the workflow does not contain",
                    node_id=":".join(self.path),
                    input=outer_input.name,
                )
            outer = self.table.get(":".join(self.path))
            if outer is None:
                raise ConversionError(f"subgraph instance {':'.join(self.path)} is missing from the graph")
            return outer.resolve_input(outer_link.target_slot, visited)
        origin = self.graph.get_node(link.origin_id)
        if origin is None:
            raise ConversionError(
                f"{self._where()} input {name!r} is linked to node {key(link.origin_id)}, which the workflow "
                "does not contain",
                node_id=self.id,
                input=name,
            )
        origin_id = ":".join([*self.path, key(origin.id)])
        origin_dto = self.table.get(origin_id)
        if origin_dto is None:
            raise ConversionError(
                f"{self._where()} input {name!r}: node {origin_id} is missing from the graph"
            )
        return origin_dto.resolve_output(
            link.origin_slot, type_ if type_ is not None else input_type, visited
        )

    def resolve_output(self, slot: int, type_: Any, visited: set[str]) -> Resolved | None:
        unique = (
            f"{self.subgraph_node.subgraph.id if self.subgraph_node else None}:{key(self.node.id)}[O]{slot}"
        )
        if unique in visited:
            raise ConversionError(
                f"{self._where()}: its output {slot} is part of a loop of links (a circular reference)",
                node_id=self.id,
            )
        visited.add(unique)
        if self.mode == MODE_BYPASS:
            index = self._bypass_slot(slot, type_)
            if index == -1:
                return None
            return self.resolve_input(index, visited)
        from .subgraphs import SubgraphNode

        node = self.node
        if isinstance(node, SubgraphNode):
            return self._resolve_subgraph_output(node, slot, type_, visited)
        if node.is_virtual:
            link = node.input_link(slot)
            if link is not None:
                target = self.graph.get_node(link.target_id)
                if target is None:
                    raise ConversionError(
                        f"{self._where()}: a link through it leads nowhere", node_id=self.id
                    )
                target_dto = self.table.get(":".join([*self.path, key(target.id)]))
                if target_dto is None:
                    raise ConversionError(f"{self._where()}: node {key(target.id)} is missing from the graph")
                return target_dto.resolve_input(link.target_slot, visited, type_)
            return None
        return Resolved(self.id, slot)

    def _bypass_slot(self, slot: int, type_: Any) -> int:
        """``#getBypassSlotIndex``: the input a bypassed node passes through for output ``slot``."""
        inputs = self.inputs
        if slot >= len(self.node.outputs):
            raise ConversionError(f"{self._where()} has no output slot {slot}", node_id=self.id)
        output_type = self.node.outputs[slot].type
        if type_ == "*" or type_ == "":
            return slot if len(inputs) > slot else 0
        if (
            slot < len(inputs)
            and is_valid_connection(inputs[slot][2], output_type)
            and is_valid_connection(inputs[slot][2], type_)
        ):
            return slot
        for index, (_, _, input_type) in enumerate(inputs):
            if input_type == type_:
                return index
        for index, (_, _, input_type) in enumerate(inputs):
            if is_valid_connection(input_type, output_type) and is_valid_connection(input_type, type_):
                return index
        return -1

    def _resolve_subgraph_output(
        self, node: SubgraphNode, slot: int, type_: Any, visited: set[str]
    ) -> Resolved | None:
        if not -len(node.outputs) <= slot < len(node.outputs):
            raise ConversionError(f"{self._where()} has no output slot {slot}", node_id=self.id)
        inner_link = node.subgraph_output_link(slot)
        if inner_link is None:
            return None
        inner_node = node.subgraph.get_node(inner_link.origin_id)
        if inner_node is None:
            raise ConversionError(
                f"{self._where()} output {node.outputs[slot].name!r} comes from node {key(inner_link.origin_id)} "
                f"inside subgraph {node.subgraph.name!r}, which does not exist",
                node_id=self.id,
            )
        inner_dto = self.table.get(":".join([*self.path, key(node.id), key(inner_node.id)]))
        if inner_dto is None:
            raise ConversionError(f"{self._where()}: its inner node {key(inner_node.id)} is missing")
        return inner_dto.resolve_output(inner_link.origin_slot, type_, visited)


def execution_order(graph: Graph) -> list[Node]:
    """``LGraph.computeExecutionOrder(false)``: nodes without inputs first, then as their inputs are met;
    nodes left in loops at the end (numeric ids ascending, then the others)."""
    order: list[Node] = []
    pending: dict[str, Node] = {}
    starters: list[Node] = []
    remaining: dict[str, int] = {}
    for node in graph.nodes:
        pending[key(node.id)] = node
        count = sum(1 for slot in node.inputs if slot.link is not None)
        if count == 0:
            starters.append(node)
        else:
            remaining[key(node.id)] = count
    visited: set[str] = set()
    while starters:
        node = starters.pop(0)
        order.append(node)
        pending.pop(key(node.id), None)
        for output in node.outputs:
            for link_id in output.links or ():
                link = graph.get_link(link_id)
                if link is None or key(link.id) in visited:
                    continue
                target = graph.get_node(link.target_id)
                visited.add(key(link.id))
                if target is None:
                    continue
                target_key = key(target.id)
                remaining[target_key] = remaining.get(target_key, 0) - 1
                if remaining[target_key] == 0:
                    starters.append(target)
    numeric = sorted((k for k in pending if _is_array_index(k)), key=int)
    others = [k for k in pending if not _is_array_index(k)]
    order.extend(pending[k] for k in [*numeric, *others])
    return order


def _is_array_index(text: str) -> bool:
    return text.isdigit() and (text == "0" or not text.startswith("0")) and int(text) < 2**32 - 1


def _wrap(value: Any) -> Any:
    """Array values would read as links; the frontend sends them as ``{"__value__": [...]}``."""
    return {"__value__": value} if isinstance(value, list) else value


def graph_to_prompt(root: Graph, loader: Loader) -> dict[str, dict[str, Any]]:
    """The API prompt for a loaded graph, node for node and input for input as the frontend builds it."""
    for node in execution_order(root):
        for inner_node in node.nodes_for_apply(loader):
            if inner_node.is_virtual:
                inner_node.apply_to_graph(loader)

    loader.serialize_graph()

    table: dict[str, Executable] = {}
    for node in execution_order(root):
        dto = loader.executable_for(node, table)
        for inner_dto in dto.inner():
            table[inner_dto.id] = inner_dto
        table[dto.id] = dto

    prompt: dict[str, dict[str, Any]] = {}
    for dto in list(table.values()):
        node = dto.node
        if dto.is_virtual or node.mode in (MODE_NEVER, MODE_BYPASS):
            continue
        inputs: dict[str, Any] = {}
        for widget in node.widgets or ():
            if not widget.name or not widget.in_prompt:
                continue
            inputs[widget.name] = _wrap(widget.prompt_value())
        for index, (_, name, _) in enumerate(dto.inputs):
            resolved = dto.resolve_input(index, set())
            if resolved is None:
                continue
            if resolved.is_widget:
                inputs[name] = _wrap(resolved.widget_value)
                continue
            inputs[name] = [resolved.origin_id, resolved.origin_slot]
        prompt[dto.id] = {"inputs": inputs, "class_type": node.comfy_class, "_meta": {"title": node.title}}

    for entry in prompt.values():
        entry_inputs = entry["inputs"]
        for name, value in list(entry_inputs.items()):
            if isinstance(value, list) and len(value) == 2 and js_key(value[0]) not in prompt:
                del entry_inputs[name]
    for entry in prompt.values():
        entry["inputs"] = {k: _json_value(v) for k, v in entry["inputs"].items() if v is not UNDEFINED}
    loader.check_prompt(prompt, table)
    return prompt


def _json_value(value: Any) -> Any:
    """A value as the frontend sends it: JavaScript numbers are doubles, so 2.0 is written 2, and NaN
    and infinities (not JSON) are written null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) <= 2**53:
            return int(value)
    return value
