"""Legacy group nodes: ``workflow>NAME`` nodes whose definition lives in ``extra.groupNodes[NAME]``.

Mirrors src/extensions/core/groupNode.ts, src/utils/executableGroupNodeDto.ts and
src/utils/executableGroupNodeChildDTO.ts of comfyui-frontend-package 1.35.9:

- before the root graph is configured, each definition whose inner node types all exist becomes a
  node type (``GroupNodeConfig.registerType``): the inner nodes' unlinked sockets and their widgets
  become the group's inputs and widgets, their outputs not used inside (or listed in ``external``)
  its outputs;
- when the prompt is built, each instance creates its inner nodes from the definition, copies its
  widget values into them, and emits them under the ids ``"<group id>:<index in the definition>"``;
- an inner input is resolved by index: an exposed one follows the group's input link one step (no
  bypass, reroute or primitive resolution), an internal one points at the inner node that feeds it.

The frontend's index quirks are kept: inner inputs are looked up by their runtime index in maps keyed
by the definition's slot numbers, converted widgets are sorted as strings ("10" before "4"), and a link
to a node that is not emitted is dropped together with the widget value under the same name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..object_info import NodeDef, node_def_from_json, with_extension_inputs
from .comfy_nodes import ComfyNode
from .errors import ConversionError
from .execution import Executable, Resolved
from .model import MODE_BYPASS, Node, UnknownNode, json_clone, key
from .text import js_key, js_string
from .widgets import WIDGET_TYPES

if TYPE_CHECKING:
    from .loader import Loader

# src/constants/groupNodeConstants.ts
PREFIX = "workflow"
SEPARATOR = ">"
_FRONTEND_TYPES = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})
_NOT_INSTALLED = "probably custom nodes that are not installed"


class _RegistrationError(Exception):
    """Where the frontend throws while registering a group type (it then registers no further ones)."""


def _get(obj: Any, name: str) -> Any:
    """``obj?.[name]`` on parsed JSON (None for undefined)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    if isinstance(obj, list) and name.isdigit() and int(name) < len(obj):
        return obj[int(name)]
    return None


def _item(items: Any, index: int) -> Any:
    if not isinstance(items, list):
        raise _RegistrationError(f"expected a list, found {items!r}")
    return items[index] if index < len(items) else None


def _index(value: Any) -> int | None:
    """An array index given as a number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and (value == "0" or not value.startswith("0")):
        return int(value)
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value) or isinstance(value, list | dict)


def _js_key_order(keys: list[str]) -> list[str]:
    """``for ... in`` order: array-index keys ascending, then the others in insertion order."""
    indexes = [k for k in keys if _index(k) is not None and int(k) < 2**32 - 1]
    return sorted(indexes, key=int) + [k for k in keys if k not in indexes]


def _js_slot(value: Any, where: str) -> int:
    """``parseInt(slot)`` of a slot number; NaN would reach the prompt as null, so it is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        digits = value.strip().lstrip("+")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("-")
        count = len(digits) - len(digits.lstrip("0123456789"))
        if count:
            return sign * int(digits[:count])
    raise ConversionError(f"{where} has no valid slot number ({value!r})")


def _is_widget_spec(spec: Any) -> bool:
    """``inputIsWidget``: the spec's type (COMBO for a list of choices) has a widget constructor."""
    if not isinstance(spec, list) or not spec:
        raise _RegistrationError(f"input spec {spec!r} is not a list")
    spec_type = "COMBO" if isinstance(spec[0], list) else spec[0]
    return isinstance(spec_type, str) and spec_type in WIDGET_TYPES


class GroupDefinition:
    """``GroupNodeConfig``: one ``extra.groupNodes`` entry made into the node type ``workflow>NAME``."""

    def __init__(self, name: str, data: dict[str, Any], registry: GroupNodeRegistry):
        self.name = name
        self.type = f"{PREFIX}{SEPARATOR}{name}"
        self.data = data
        self.registry = registry
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            raise _RegistrationError("its nodes are not a list of nodes")
        self.nodes: list[dict[str, Any]] = nodes
        # Keys are JavaScript object keys: node indexes, slots and names as strings.
        self.links_from: dict[str, dict[str, list[list[Any]]]] = {}
        self.links_to: dict[str, dict[str, list[Any]]] = {}
        self.external_from: dict[str, dict[str, Any]] = {}
        self.old_to_new_input: dict[str, dict[str, int]] = {}
        self.old_to_new_widget: dict[str, dict[str, str | None]] = {}
        #: Group widget name -> (inner node index, inner input name).
        self.new_to_old_widget: dict[str, tuple[int, str]] = {}
        #: Group output slot -> (inner node index, inner output slot).
        self.new_to_old_output: dict[int, tuple[int, int]] = {}
        self.primitive_defs: dict[str, dict[str, Any]] = {}
        #: Inner primitive index -> [(target node index as saved, target input name)].
        self.primitive_to_widget: dict[str, list[tuple[Any, str]]] = {}
        self.input_count = 0
        self._read_links()
        self.node_def: NodeDef = self._register()

    # --- getLinks --------------------------------------------------------------------------------

    def _read_links(self) -> None:
        links = self.data.get("links")
        if not isinstance(links, list):
            raise _RegistrationError("its links are not a list")
        for link in links:
            if not isinstance(link, list):
                raise _RegistrationError(f"link {link!r} is not a list")
            source, source_slot, target, target_slot = (_item(link, i) for i in range(4))
            if source is None:  # from outside the group
                continue
            self.links_from.setdefault(js_key(source), {}).setdefault(js_key(source_slot), []).append(link)
            self.links_to.setdefault(js_key(target), {})[js_key(target_slot)] = link
        external = self.data.get("external")
        if _truthy(external):
            if not isinstance(external, list):
                raise _RegistrationError("its external outputs are not a list")
            for entry in external:
                self.external_from.setdefault(js_key(_item(entry, 0)), {})[js_key(_item(entry, 1))] = _item(
                    entry, 2
                )

    # --- registerType ----------------------------------------------------------------------------

    def _register(self) -> NodeDef:
        required: dict[str, list[Any]] = {}
        seen_inputs: dict[str, int] = {}
        seen_outputs: set[str] = set()
        outputs: dict[str, list[Any]] = {"output": [], "output_name": [], "output_is_list": []}
        deferred: list[Callable[[], None]] = []
        for index, node in enumerate(self.nodes):
            node_def = self._node_def(index, node)
            if not node_def:
                continue
            sections = node_def.get("input") or {}
            inputs = {**(sections.get("required") or {}), **(sections.get("optional") or {})}
            self._process_inputs(index, node, inputs, required, seen_inputs, deferred)
            if node_def.get("output"):
                self._process_outputs(index, node, node_def, seen_outputs, outputs)
        for convert in deferred:
            convert()
        return node_def_from_json(
            self.type, {"input": {"required": required}, "display_name": self.name, **outputs}
        )

    def _node_def(self, index: int, node: dict[str, Any]) -> dict[str, Any] | None:
        """``getNodeDef``: the class's definition; for an inner primitive or a boundary reroute, one
        made from its links; None for nodes the group skips (notes, purely internal reroutes, nested
        group nodes)."""
        type_name = node.get("type")
        found = self.registry.global_def(type_name) if isinstance(type_name, str) else None
        if found is not None:
            return found
        links_from = self.links_from.get(str(index))
        if type_name == "PrimitiveNode":
            if not links_from:
                return None
            first = links_from["0"][0]
            value_type = _item(first, 5)
            if value_type == "COMBO":
                source = node["outputs"][0]["widget"]["name"]
                target = self.nodes[self._node_index(_item(first, 2))]
                target_def = self.registry.global_def(str(target.get("type")))
                if target_def is None:
                    raise _RegistrationError(f"primitive {index} feeds a node without a definition")
                spec = target_def["input"]["required"].get(source)
                if spec is None:
                    spec = target_def["input"]["optional"][source]
                value_type = spec[0]
            made = {
                "input": {"required": {"value": [value_type, {}]}},
                "output": [value_type],
                "output_name": [],
                "output_is_list": [],
            }
            self.primitive_defs[str(index)] = made
            return made
        if type_name == "Reroute":
            return self._reroute_def(index, node, links_from)
        return None

    def _reroute_def(
        self, index: int, node: dict[str, Any], links_from: dict[str, list[list[Any]]] | None
    ) -> dict[str, Any] | None:
        links_to = self.links_to.get(str(index))
        if links_to and links_from and not _truthy(self.external_from.get(str(index), {}).get("0")):
            return None  # used only inside the group
        reroute_type: Any = "*"
        if links_from:
            for link in links_from["0"]:
                target = self.nodes[self._node_index(_item(link, 2))]
                slot = target["inputs"][_index(_item(link, 3))]
                if reroute_type == "*":
                    reroute_type = slot.get("type")
        elif links_to:
            link = links_to["0"]
            origin = self.nodes[self._node_index(_item(link, 0))]
            reroute_type = origin["outputs"][_index(_item(link, 1))].get("type")
        else:
            for link in self.data["links"]:
                if _item(link, 2) == index and not isinstance(_item(link, 2), bool):
                    reroute_type = _item(link, 5)
                    break
            if reroute_type == "*":
                external = self.external_from.get(str(index), {}).get("0")
                if _truthy(external):
                    reroute_type = external
        # The widget options the frontend merges in do not matter: a forced input has no widget.
        name = js_key(reroute_type)
        return {
            "input": {"required": {name: [reroute_type, {"forceInput": True}]}},
            "output": [reroute_type],
            "output_name": [],
            "output_is_list": [],
        }

    def _node_index(self, value: Any) -> int:
        position = _index(value)
        if position is None or position >= len(self.nodes):
            raise _RegistrationError(f"a link refers to node index {value!r}, which the definition lacks")
        return position

    def _input_config(
        self,
        index: int,
        node: dict[str, Any],
        input_name: str,
        config: Any,
        seen: dict[str, int],
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, Any, Any]:
        """``getInputConfig``: the group input's name (prefixed with the node's title when taken) and
        its spec; seeds get a prefixed control widget, upload buttons the name of their file widget."""
        custom = _get(_get(_get(self.data.get("config"), str(index)), "input"), input_name)
        name: Any = _get(custom, "name")
        if name is None:
            inputs = node.get("inputs")
            found = (
                next((i for i in inputs if i.get("name") == input_name), None)
                if isinstance(inputs, list)
                else None
            )
            label = found.get("label") if found is not None else None
            name = label if label is not None else input_name
        name = js_key(name)
        entry_key = name
        prefix = ""
        if (node.get("type") == "PrimitiveNode" and _truthy(node.get("title"))) or name in seen:
            title = node.get("title")
            prefix = f"{js_string(title if title is not None else node.get('type'))} "
            entry_key = name = f"{prefix}{input_name}"
            if name in seen:
                name = f"{prefix}{seen[name]} {input_name}"
        seen[entry_key] = seen.get(entry_key, 1) + 1
        if input_name in ("seed", "noise_seed"):
            extra = {**(extra or {}), "control_after_generate": f"{prefix}control_after_generate"}
        if isinstance(config, list) and config and config[0] == "IMAGEUPLOAD":
            options = config[1] if len(config) > 1 else None
            widget = options.get("widget") if isinstance(options, dict) else None
            mapped = self.old_to_new_widget.get(str(index), {}).get(
                js_key(widget if widget is not None else "image")
            )
            extra = {**(extra or {}), "widget": mapped if mapped is not None else "image"}
        if extra:
            options = config[1] if isinstance(config, list) and len(config) > 1 else None
            config = [config[0], {**(options if isinstance(options, dict) else {}), **extra}]
        return name, config, custom

    def _process_inputs(
        self,
        index: int,
        node: dict[str, Any],
        inputs: dict[str, Any],
        required: dict[str, list[Any]],
        seen: dict[str, int],
        deferred: list[Callable[[], None]],
    ) -> None:
        """``processNodeInputs``: widgets (unless converted to inputs) and unlinked sockets now,
        converted widgets once every node is done."""
        if not inputs:
            return
        converted: dict[int, str] = {}
        slots: list[str] = []
        widget_map: dict[str, str | None] = {}
        self.old_to_new_widget[str(index)] = widget_map
        node_inputs = node.get("inputs")
        for input_name, spec in inputs.items():
            if not _is_widget_spec(spec):
                slots.append(input_name)
                continue
            position = next(
                (
                    i
                    for i, slot in enumerate(node_inputs if isinstance(node_inputs, list) else ())
                    if slot.get("name") == input_name and _get(slot.get("widget"), "name") == input_name
                ),
                -1,
            )
            if position > -1:
                converted[position] = input_name
                widget_map[input_name] = None
            else:
                name, config, _ = self._input_config(index, node, input_name, spec, seen)
                required[name] = config
                widget_map[input_name] = name
                self.new_to_old_widget[name] = (index, input_name)
        links_to = self.links_to.get(str(index)) or {}
        input_map: dict[str, int] = {}
        self.old_to_new_input[str(index)] = input_map
        for slot_index, input_name in enumerate(slots):
            link = links_to.get(str(slot_index))
            if link:
                self._check_primitive_connection(link, input_name, inputs)
                continue
            name, config, custom = self._input_config(index, node, input_name, inputs[input_name], seen)
            if _get(custom, "visible") is False:
                continue
            required[name] = config
            input_map[str(slot_index)] = self.input_count
            self.input_count += 1

        def process_converted() -> None:
            # Array.prototype.sort without a comparator: the slot numbers compared as strings.
            for offset, input_name in enumerate(converted[k] for k in sorted(converted, key=str)):
                slot_index = len(slots) + offset
                link = links_to.get(str(slot_index))
                if link:
                    self._check_primitive_connection(link, input_name, inputs)
                    continue
                name, config, _ = self._input_config(
                    index, node, input_name, inputs[input_name], seen, {"defaultInput": True}
                )
                required[name] = config
                self.new_to_old_widget[name] = (index, input_name)
                self.old_to_new_widget.setdefault(str(index), {})[input_name] = name
                input_map[str(slot_index)] = self.input_count
                self.input_count += 1

        deferred.append(process_converted)

    def _check_primitive_connection(self, link: list[Any], input_name: str, inputs: dict[str, Any]) -> None:
        """``checkPrimitiveConnection``: an inner primitive's group widget takes the options of the
        widget it feeds, with a control widget."""
        source = self.nodes[self._node_index(_item(link, 0))]
        if source.get("type") != "PrimitiveNode":
            return
        source_key = js_key(_item(link, 0))
        config = self.primitive_defs[source_key]["input"]["required"]["value"]
        target_spec = inputs[input_name]
        options = target_spec[1] if len(target_spec) > 1 else None
        config[1] = dict(options) if isinstance(options, dict) else {}
        name = self.old_to_new_widget[source_key]["value"]
        if not isinstance(name, str):
            raise _RegistrationError(f"primitive {source_key} has no group widget")
        config[1]["control_after_generate"] = True
        config[1]["control_prefix"] = name[: max(0, len(name) - 6)]
        self.primitive_to_widget.setdefault(source_key, []).append((_item(link, 2), input_name))

    def _process_outputs(
        self,
        index: int,
        node: dict[str, Any],
        node_def: dict[str, Any],
        seen: set[str],
        outputs: dict[str, list[Any]],
    ) -> None:
        """``processNodeOutputs``: outputs not linked inside the group (or listed as external, or
        made visible in its config) become group outputs."""
        types = node_def["output"]
        for output_index in range(len(types)):
            links_from = self.links_from.get(str(index))
            has_link = bool(links_from and links_from.get(str(output_index))) and not _truthy(
                self.external_from.get(str(index), {}).get(str(output_index))
            )
            custom = _get(_get(_get(self.data.get("config"), str(index)), "output"), str(output_index))
            visible = _get(custom, "visible")
            if not (_truthy(visible) if visible is not None else not has_link):
                continue
            self.new_to_old_output[len(outputs["output"])] = (index, output_index)
            outputs["output"].append(types[output_index])
            is_list = node_def["output_is_list"]
            outputs["output_is_list"].append(is_list[output_index] if output_index < len(is_list) else None)
            label = _get(custom, "name")
            if not _truthy(label):
                names = node_def.get("output_name")
                label = _get(names, str(output_index))
                if label is None:
                    label = types[output_index]
                node_outputs = node.get("outputs")
                if not isinstance(node_outputs, list):
                    raise _RegistrationError(f"inner node {index} has no outputs list")
                found = next((o for o in node_outputs if _same_type(o.get("name"), label)), None)
                if found is not None and _truthy(found.get("label")):
                    label = found["label"]
            name = js_key(label)
            if name in seen:
                title = node.get("title")
                prefix = f"{js_string(title if title is not None else node.get('type'))} "
                name = f"{prefix}{js_key(label)}"
                if name in seen:
                    name = f"{prefix}{index} {js_key(label)}"
            seen.add(name)
            outputs["output_name"].append(name)


class GroupNode(ComfyNode):
    """An instance of a group type on the root graph (``GroupNodeHandler``)."""

    def __init__(self, definition: GroupDefinition, loader: Loader, title: str | None = None):
        super().__init__(definition.node_def, loader, title)
        self.definition = definition
        self.inner_nodes: list[Node] | None = None

    # --- inner nodes (getInnerNodes) --------------------------------------------------------------

    def ensure_inner_nodes(self) -> list[Node]:
        """The inner nodes, created from the definition on first use, with the group's widget values."""
        if self.inner_nodes is None:
            nodes: list[Node] = []
            for index, data in enumerate(self.definition.nodes):
                node = self.loader.create_node(str(data.get("type")), None)
                if node is None:
                    raise ConversionError(
                        f"group node {key(self.id)} ({self.type!r}): inner node {index} has the unknown type "
                        f"{data.get('type')!r}",
                        node_id=key(self.id),
                    )
                node.configure(json_clone(data), self.loader)
                node.id = f"{key(self.id)}:{index}"
                node.graph = self.graph
                nodes.append(node)
            self.inner_nodes = nodes
        self.update_inner_widgets(self.inner_nodes)
        return self.inner_nodes

    def update_inner_widgets(self, inner: list[Node]) -> None:
        """``updateInnerWidgets``: each group widget's value into the inner widget it stands for; an
        inner primitive's value into the widgets that primitive feeds."""
        definition = self.definition
        for group_name, (index, input_name) in definition.new_to_old_widget.items():
            group_widget = self.widget(group_name)
            if group_widget is None:
                continue
            value = group_widget.value
            node = inner[index]
            if node.type == "PrimitiveNode":
                for target_index, target_input in definition.primitive_to_widget.get(str(index), []):
                    position = _index(target_index)
                    target = inner[position] if position is not None and position < len(inner) else None
                    widget = target.widget(target_input) if target is not None else None
                    if widget is not None:
                        widget.set(value)
                continue
            if node.type == "Reroute":
                for link in definition.links_from.get(str(index), {}).get("0", []):
                    position, slot_index = _index(_item(link, 2)), _index(_item(link, 3))
                    if position is None or slot_index is None or position >= len(inner):
                        continue
                    target = inner[position]
                    slot = target.inputs[slot_index] if slot_index < len(target.inputs) else None
                    widget = target.get_widget_from_slot(slot) if slot is not None else None
                    if widget is not None:
                        widget.set(value)
            widget = node.widget(input_name)
            if widget is not None:
                widget.set(value)

    def nodes_for_apply(self, loader: Loader) -> list[Node]:
        return list(self.ensure_inner_nodes())

    def executable(self, table: dict[str, Executable]) -> Executable:
        return GroupExecutable(self, table)

    def inner_executables(
        self,
        table: dict[str, Executable],
        path: tuple[str, ...],
        collected: list[Executable] | None = None,
        visited: frozenset[int] = frozenset(),
    ) -> list[Executable]:
        """A group node inside a subgraph: the frontend refuses to convert it."""
        node_id = ":".join([*path, key(self.id)])
        raise ConversionError(
            f"node {node_id} is the group node {self.type!r} inside a subgraph: Group nodes inside subgraphs "
            "are not supported. Please convert the group node to a subgraph instead.",
            node_id=node_id,
            class_type=self.type,
        )

    # --- links ------------------------------------------------------------------------------------

    def input_origin(self, slot: int) -> Resolved | None:
        """An exposed inner input: the node on the other end of the group's input ``slot``, as is."""
        if not 0 <= slot < len(self.inputs) or self.graph is None:
            return None
        link = self.graph.get_link(self.inputs[slot].link)
        origin = self.graph.get_node(link.origin_id) if link is not None else None
        if link is None or origin is None:
            return None
        return Resolved(key(origin.id), link.origin_slot)

    def output_origin(self, slot: int) -> Resolved:
        """``updateLink`` on the first link of output ``slot``: the inner node (past inner reroutes)
        and output behind it."""
        where = f"group node {key(self.id)} ({self.type!r})"
        output = self.outputs[slot] if 0 <= slot < len(self.outputs) else None
        link_id = output.links[0] if output is not None and output.links else None
        link = self.graph.get_link(link_id) if self.graph is not None else None
        if link is None:
            raise ConversionError(
                f"{where}: its output {slot} is used but lists no link (a damaged file: re-save it from the "
                "editor)",
                node_id=key(self.id),
            )
        mapped = self.definition.new_to_old_output.get(link.origin_slot)
        if mapped is None:
            raise ConversionError(f"{where} has no output {link.origin_slot}", node_id=key(self.id))
        index, origin_slot = mapped
        inner = self.ensure_inner_nodes()
        inner_link: list[Any] | None = None
        passed: set[int] = set()
        while inner[index].type == "Reroute":
            if index in passed:
                raise ConversionError(f"{where}: its inner Reroute nodes form a loop", node_id=key(self.id))
            passed.add(index)
            if self.definition.old_to_new_input.get(str(index), {}).get("0") is not None:
                raise ConversionError(
                    f"{where}: its output {slot} comes through an inner Reroute from outside the group, which "
                    "the editor cannot convert either (ungroup the group node, or convert it to a subgraph)",
                    node_id=key(self.id),
                )
            inner_link = self.definition.links_to.get(str(index), {}).get("0")
            source = _index(inner_link[0]) if inner_link else None
            if source is None or source >= len(inner) or inner[source].type == "PrimitiveNode":
                raise ConversionError(
                    f"{where}: its output {slot} comes from an inner Reroute that nothing feeds",
                    node_id=key(self.id),
                )
            index = source
        if inner_link is not None and inner_link[1] is not None:
            return Resolved(f"{key(self.id)}:{index}", _js_slot(inner_link[1], where))
        return Resolved(f"{key(self.id)}:{index}", origin_slot)


class GroupExecutable(Executable):
    """``ExecutableGroupNodeDTO``: stands for the group, is never emitted, hands out its inner nodes."""

    node: GroupNode

    def __init__(self, node: GroupNode, table: dict[str, Executable]):
        super().__init__(node, (), table)

    @property
    def is_virtual(self) -> bool:
        return True

    def inner(self) -> list[Executable]:
        return [
            GroupChildExecutable(inner, self.node, index, self.table)
            for index, inner in enumerate(self.node.ensure_inner_nodes())
        ]

    def resolve_output(self, slot: int, type_: Any, visited: set[str]) -> Resolved | None:
        if self.mode == MODE_BYPASS:
            # The first input of exactly the consumer's type, trying the same slot first.
            for index in [slot, *range(len(self.inputs))]:
                if 0 <= index < len(self.inputs) and _same_type(self.inputs[index][2], type_):
                    return self.resolve_input(index, visited)
            return None
        return self.node.output_origin(slot)


def _same_type(a: Any, b: Any) -> bool:
    """``===`` between two slot types."""
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return type(a) is type(b) and bool(a == b)


class GroupChildExecutable(Executable):
    """``ExecutableGroupNodeChildDTO``: an inner node of a group, emitted as ``"<group id>:<index>"``."""

    def __init__(self, node: Node, group: GroupNode, index: int, table: dict[str, Executable]):
        super().__init__(node, (key(group.id),), table)
        self.id = f"{key(group.id)}:{index}"
        self.group = group
        self.index = index

    def resolve_input(self, slot: int, visited: set[str], type_: Any = None) -> Resolved | None:
        definition = self.group.definition
        exposed = definition.old_to_new_input.get(str(self.index), {}).get(str(slot))
        if exposed is not None:
            return self.group.input_origin(exposed)
        link = definition.links_to.get(str(self.index), {}).get(str(slot))
        if not link:
            return None
        inner = self.group.inner_nodes or []
        source = _index(link[0])
        if source is None or source >= len(inner):
            raise ConversionError(
                f"group node {key(self.group.id)} ({self.group.type!r}): inner node {self.index} is linked from "
                f"inner node {link[0]!r}, which its definition lacks",
                node_id=self.id,
            )
        if inner[source].type == "PrimitiveNode":
            return None  # the primitive's value is already in the widget
        return Resolved(f"{key(self.group.id)}:{source}", _js_slot(_item(link, 1), f"node {self.id}"))


class GroupNodeRegistry:
    """The group types of one workflow (``GroupNodeConfig.registerFromWorkflow``)."""

    def __init__(self, loader: Loader):
        self.loader = loader
        self.definitions: dict[str, GroupDefinition] = {}
        #: Group types that could not be registered, and why (for the error that names the node).
        self.failures: dict[str, str] = {}
        self._global_defs: dict[str, dict[str, Any] | None] = {}
        self._subgraph_ids: set[str] = set()

    def global_def(self, type_name: str) -> dict[str, Any] | None:
        """The class's ``/object_info`` entry as the frontend's extensions left it: upload buttons added
        (``beforeRegisterNodeDef``), optional ``defaultInput`` inputs forced to sockets."""
        if type_name not in self._global_defs:
            raw = self.loader.object_info.raw.get(type_name)
            if not isinstance(raw, Mapping):
                self._global_defs[type_name] = None
            else:
                sections = raw.get("input") if isinstance(raw.get("input"), Mapping) else {}
                assert isinstance(sections, Mapping)
                section: dict[str, Any] = dict(sections)
                section["required"] = with_extension_inputs(type_name, dict(sections.get("required") or {}))
                if isinstance(sections.get("optional"), Mapping):
                    section["optional"] = {
                        name: [spec[0], {**spec[1], "forceInput": True}, *spec[2:]]
                        if isinstance(spec, list)
                        and len(spec) > 1
                        and isinstance(spec[1], dict)
                        and spec[1].get("defaultInput")
                        else spec
                        for name, spec in sections["optional"].items()
                    }
                self._global_defs[type_name] = {**raw, "input": section}
        return self._global_defs[type_name]

    def register_all(self, data: dict[str, Any]) -> None:
        """The group extension's ``beforeConfigureGraph``: legacy ``workflow/NAME`` root types become
        ``workflow>NAME``, then every definition whose inner types all exist is registered, in key
        order; one that fails stops the registration of the rest."""
        extra = data.get("extra")
        group_nodes = extra.get("groupNodes") if isinstance(extra, dict) else None
        if not _truthy(group_nodes):
            return
        for node in data.get("nodes") or ():
            if (
                isinstance(node, dict)
                and isinstance(node.get("type"), str)
                and node["type"].startswith("workflow/")
            ):
                node["type"] = f"{PREFIX}{SEPARATOR}{node['type'][len('workflow/') :]}"
        if not isinstance(group_nodes, dict):
            return
        definitions = data.get("definitions")
        for subgraph in (definitions.get("subgraphs") if isinstance(definitions, dict) else None) or ():
            if isinstance(subgraph, dict):
                self._subgraph_ids.add(str(subgraph.get("id")))
        names = _js_key_order(list(group_nodes))
        for position, name in enumerate(names):
            type_name = f"{PREFIX}{SEPARATOR}{name}"
            try:
                group_data = group_nodes[name]
                nodes = group_data["nodes"] if isinstance(group_data, dict) else None
                if not isinstance(nodes, list):
                    raise _RegistrationError("it has no list of nodes")
                types = [n.get("type", "undefined") if isinstance(n, dict) else n["type"] for n in nodes]
                missing = [js_key(t) for t in types if not self._is_registered(t)]
                if missing:
                    self.failures[type_name] = self._missing_reason(missing)
                    continue
                self.definitions[type_name] = GroupDefinition(name, group_data, self)
            except (_RegistrationError, KeyError, IndexError, TypeError, AttributeError) as error:
                detail = (
                    error.args[0]
                    if isinstance(error, _RegistrationError)
                    else f"{type(error).__name__}: {error}"
                )
                self.failures[type_name] = f"whose definition cannot be read ({detail})"
                for later in names[position + 1 :]:
                    self.failures.setdefault(
                        f"{PREFIX}{SEPARATOR}{later}",
                        f"whose definition was not registered because the one of {type_name!r} before it "
                        f"cannot be read ({detail})",
                    )
                return

    def _is_registered(self, type_name: Any) -> bool:
        """``type in LiteGraph.registered_node_types``."""
        name = js_key(type_name) if type_name is not None else "undefined"
        return (
            name in self.loader.object_info
            or name in _FRONTEND_TYPES
            or name in self.definitions
            or name in self._subgraph_ids
        )

    @staticmethod
    def _missing_reason(missing: list[str]) -> str:
        nested = [t for t in missing if t.startswith(f"{PREFIX}{SEPARATOR}")]
        listed = ", ".join(repr(t) for t in dict.fromkeys(missing))
        if nested:
            return (
                f"whose definition uses node types this ComfyUI does not have: {listed} (group nodes nested in "
                "group nodes are not supported; ungroup them in the editor, or convert them to subgraphs)"
            )
        return f"whose definition uses node types this ComfyUI does not have: {listed}; they are {_NOT_INSTALLED}"

    def has(self, type_name: str) -> bool:
        return type_name in self.definitions

    def create(self, type_name: str, title: str | None) -> Node:
        return GroupNode(self.definitions[type_name], self.loader, title)

    def check_prompt(self, prompt: dict[str, dict[str, Any]], table: dict[str, Executable]) -> None:
        """Refuse what only group nodes make the frontend send broken: a group node that is missing its
        definition or a class, and a group node nested in another one (sent as class ``workflow>A``)."""
        for node_id, entry in prompt.items():
            node = table[node_id].node
            if isinstance(node, GroupNode):
                outer = node_id.split(":")[0]
                raise ConversionError(
                    f"node {node_id} is the group node {node.type!r} nested inside group node {outer}; the editor "
                    f"would send it with class_type {node.type!r}, which ComfyUI cannot run (nested group nodes "
                    "are not supported: ungroup them in the editor, or convert them to subgraphs)",
                    node_id=node_id,
                    class_type=node.type,
                )
            if isinstance(node, UnknownNode) and entry["class_type"] is None:
                reason = self.failures.get(node.type)
                if reason is None and node.type.startswith((f"{PREFIX}{SEPARATOR}", f"{PREFIX}/")):
                    name = node.type[len(PREFIX) + 1 :]
                    reason = (
                        f"whose definition is missing from the workflow (extra.groupNodes has no {name!r}); it is "
                        "probably a custom node that is not installed, or a group node whose definition was lost"
                    )
                if reason is not None:
                    raise ConversionError(
                        f"node {node_id} is the group node {node.type!r}, {reason} (mute or remove it in the "
                        "editor, or install what it needs in the image)",
                        node_id=node_id,
                        class_type=node.type,
                    )
