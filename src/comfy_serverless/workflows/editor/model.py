"""The editor's graph as its frontend holds it after loading a saved workflow.

A small Python mirror of the parts of litegraph (comfyui-frontend-package 1.35.9) that decide the
prompt: links, node slots, widgets and their values, and the order in which loading fills them.
Node kinds with rules of their own (ComfyUI classes, primitives, reroutes, subgraph instances,
group nodes) live in their own modules and subclass :class:`Node`.

Ids: the frontend keeps node ids as JSON gives them (numbers, or strings for execution ids) and looks
them up through a JavaScript object, where 5 and "5" are the same key. Here every lookup goes
through :func:`key`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConversionError

if TYPE_CHECKING:
    from .loader import Loader

# LGraphEventMode (src/lib/litegraph/src/types/globalEnums.ts)
MODE_ALWAYS = 0
MODE_NEVER = 2  # "muted"
MODE_BYPASS = 4

# Ids of a subgraph's input and output "nodes" in its links (src/lib/litegraph/src/constants.ts).
SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20


class _Undefined:
    """JavaScript's ``undefined``: a widget holding it is left out of the prompt, as JSON.stringify does."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()


def key(node_id: Any) -> str:
    """A node or link id as the frontend's object lookups see it."""
    if isinstance(node_id, float) and node_id.is_integer():
        node_id = int(node_id)
    return str(node_id)


def json_clone(value: Any) -> Any:
    """``JSON.parse(JSON.stringify(value))``, as LiteGraph.cloneObject does."""
    return copy.deepcopy(value)


@dataclass(slots=True)
class Link:
    id: Any
    type: Any
    origin_id: Any
    origin_slot: int
    target_id: Any
    target_slot: int
    parent_id: Any = None

    @property
    def origin_is_io_node(self) -> bool:
        return key(self.origin_id) == key(SUBGRAPH_INPUT_ID)

    @classmethod
    def from_array(cls, data: list[Any]) -> Link:
        """A v0.4 link: ``[id, origin_id, origin_slot, target_id, target_slot, type]``."""
        padded = [*data, None, None, None, None, None, None][:6]
        return cls(padded[0], padded[5], padded[1], _slot(padded[2]), padded[3], _slot(padded[4]))

    @classmethod
    def from_object(cls, data: dict[str, Any]) -> Link:
        return cls(
            data.get("id"),
            data.get("type"),
            data.get("origin_id"),
            _slot(data.get("origin_slot")),
            data.get("target_id"),
            _slot(data.get("target_slot")),
            data.get("parentId"),
        )


def _slot(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


@dataclass(slots=True)
class InputSlot:
    name: str
    type: Any
    link: Any = None
    #: ``{"name": widget name}`` when this socket belongs to a widget (a "widget input").
    widget: dict[str, Any] | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSlot:
        known = {"name", "type", "link", "widget", "label"}
        widget = data.get("widget")
        return cls(
            name=str(data.get("name", "")),
            type=data.get("type"),
            link=data.get("link"),
            widget=dict(widget) if isinstance(widget, dict) else None,
            label=data.get("label") if isinstance(data.get("label"), str) else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            **json_clone(self.extra),
            "name": self.name,
            "type": self.type,
            "link": self.link,
        }
        if self.widget is not None:
            data["widget"] = dict(self.widget)
        if self.label is not None:
            data["label"] = self.label
        return data


@dataclass(slots=True)
class OutputSlot:
    name: str
    type: Any
    links: list[Any] | None = None
    widget: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputSlot:
        links = data.get("links")
        return cls(
            name=str(data.get("name", "")),
            type=data.get("type"),
            links=list(links) if isinstance(links, list) else None,
        )


@dataclass(eq=False, slots=True)
class Widget:
    """A widget on a node: the value the editor shows, and how it reaches the prompt."""

    name: str
    type: str
    value: Any
    #: ``options.serialize === false``: shown and saved, never sent to ComfyUI.
    in_prompt: bool = True
    #: ``widget.serialize === false``: takes no place in ``widgets_values`` (saved or loaded).
    has_value_slot: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    #: Companion widgets (the seed's control_after_generate).
    linked: list[Widget] = field(default_factory=list)
    dynamic_prompts: bool = False
    #: ``serializeValue``: what reaches the prompt instead of the value.
    serialize_value: Callable[[], Any] | None = None
    #: ``property`` option: the widget mirrors ``node.properties[property]``.
    property_name: str | None = None
    #: Set on a control_after_generate companion.
    is_control: bool = False
    #: The change callback a primitive triggers after pushing a value: "int" or "float" rounding.
    callback_kind: str | None = None
    #: A value setter with side effects (a dynamic combo adds and removes inputs when it changes).
    setter: Callable[[Any], None] | None = None

    def set(self, value: Any) -> None:
        """``widget.value = value``, through the widget's own setter when it has one."""
        if self.setter is not None:
            self.setter(value)
        else:
            self.value = value

    def prompt_value(self) -> Any:
        return self.serialize_value() if self.serialize_value is not None else self.value


class Node:
    """A node of the editor graph (``LGraphNode``)."""

    #: ``isVirtualNode``: exists only in the editor and never reaches the prompt.
    is_virtual = False
    comfy_class: str | None = None
    #: The class's display title (``constructor.title``), used when the file has no title.
    default_title = ""

    def __init__(self, type_name: str, title: str | None = None):
        self.id: Any = -1
        self.type = type_name
        self.title = title or self.default_title or type_name
        self.mode = MODE_ALWAYS
        self.inputs: list[InputSlot] = []
        self.outputs: list[OutputSlot] = []
        self.widgets: list[Widget] | None = None
        self.properties: dict[str, Any] = {}
        self.graph: Graph | None = None
        self.saved: dict[str, Any] = {}

    # --- building --------------------------------------------------------------------------------

    def add_input(self, name: str, type_: Any, widget: dict[str, Any] | None = None) -> InputSlot:
        slot = InputSlot(name=name, type=type_, widget=widget)
        self.inputs.append(slot)
        return slot

    def add_output(self, name: str, type_: Any) -> OutputSlot:
        slot = OutputSlot(name=name, type=type_)
        self.outputs.append(slot)
        return slot

    def add_widget(self, widget: Widget) -> Widget:
        if self.widgets is None:
            self.widgets = []
        self.widgets.append(widget)
        return widget

    def on_created(self, loader: Loader) -> None:
        """``onNodeCreated`` hooks of the frontend's extensions."""

    # --- loading (LGraphNode.configure) ----------------------------------------------------------

    def configure(self, info: dict[str, Any], loader: Loader) -> None:
        self.saved = info
        properties = info.get("properties")
        if isinstance(properties, dict):
            for name, value in properties.items():
                self.properties[name] = value
        title = info.get("title")
        if isinstance(title, str) and title:
            self.title = title
        elif not title:
            self.title = self.default_title or self.type
        mode = info.get("mode")
        if isinstance(mode, int | float) and not isinstance(mode, bool):
            self.mode = int(mode)
        saved_inputs = info.get("inputs")
        if isinstance(saved_inputs, list):
            # LiteGraph.cloneObject(info.inputs, this.inputs): the saved slots replace the created
            # ones index by index; created slots past the saved ones stay.
            for index, data in enumerate(saved_inputs):
                if not isinstance(data, dict):
                    continue
                in_slot = InputSlot.from_json(data)
                if index < len(self.inputs):
                    self.inputs[index] = in_slot
                else:
                    self.inputs.append(in_slot)
        saved_outputs = info.get("outputs")
        if isinstance(saved_outputs, list):
            for index, data in enumerate(saved_outputs):
                if not isinstance(data, dict):
                    continue
                out_slot = OutputSlot.from_json(data)
                if index < len(self.outputs):
                    self.outputs[index] = out_slot
                else:
                    self.outputs.append(out_slot)
        self.after_slots_configured(loader)
        if self.widgets is not None:
            for widget in self.widgets:
                if widget.property_name and self.properties.get(widget.property_name) is not None:
                    widget.value = json_clone(self.properties[widget.property_name])
            values = info.get("widgets_values")
            if values is not None:
                self.assign_widget_values(values)
            named = info.get("widgets_values_named")
            if isinstance(named, dict):
                # Values saved by widget name (newer frontends and some tools write them beside the
                # positional list; frontend 1.35.9 ignores them): the names are unambiguous, so they win.
                self.assign_widget_values(named)
        self.on_configure(info, loader)

    def after_slots_configured(self, loader: Loader) -> None:
        """``_internalConfigureAfterSlots``: subgraph instances build their promoted widgets here."""

    def assign_widget_values(self, values: Any) -> None:
        """Saved ``widgets_values`` onto the widgets, in order, skipping widgets without a value slot."""
        if isinstance(values, dict):
            # Dict-form values (written by some custom nodes): the frontend 1.35.9 reads them by
            # position and assigns undefined to every widget, which sends a prompt missing those
            # inputs; by name is what the file means.
            for widget in list(self.widgets or ()):
                if widget.name in values:
                    widget.set(values[widget.name])
            return
        if not isinstance(values, list):
            return
        # A JavaScript for..of over the live list: widgets a setter inserts further on are visited.
        index = 0
        position = 0
        while self.widgets is not None and position < len(self.widgets):
            widget = self.widgets[position]
            position += 1
            if not widget.has_value_slot:
                continue
            if index >= len(values):
                break
            widget.set(values[index])
            index += 1

    def on_configure(self, info: dict[str, Any], loader: Loader) -> None:
        """``onConfigure``."""

    def on_graph_configured(self, loader: Loader) -> None:
        """``onGraphConfigured``, run once the whole root graph is loaded."""

    def on_after_graph_configured(self, loader: Loader) -> None:
        """``onAfterGraphConfigured``, run after every node's ``onGraphConfigured``."""

    def after_frames(self, loader: Loader) -> None:
        """Work the frontend defers to the next animation frame after loading."""

    def on_serialize(self, loader: Loader) -> None:
        """What ``serialize()`` changes on the live graph (graphToPrompt serializes first)."""

    # --- queries ---------------------------------------------------------------------------------

    def widget(self, name: str) -> Widget | None:
        for widget in self.widgets or ():
            if widget.name == name:
                return widget
        return None

    def get_widget_from_slot(self, slot: InputSlot) -> Widget | None:
        if slot.widget is None:
            return None
        return self.widget(str(slot.widget.get("name")))

    def input_link(self, slot: int) -> Link | None:
        """``getInputLink``."""
        if slot < len(self.inputs) and self.graph is not None:
            link_id = self.inputs[slot].link
            if link_id is not None:
                return self.graph.links.get(key(link_id))
        return None

    def apply_to_graph(self, loader: Loader) -> None:
        """``applyToGraph``: virtual nodes push their values into the nodes they feed."""

    def nodes_for_apply(self, loader: Loader) -> list[Node]:
        """graphToPrompt's first pass: ``getInnerNodes(new Map())`` where a node has it, else the node."""
        return [self]

    def describe(self) -> str:
        return f"node {key(self.id)} ({self.type})"


def merge_with_definition(node: Node, info: dict[str, Any]) -> dict[str, Any]:
    """``ComfyNode.configure`` before the generic one: a saved input is matched to the created one by
    name and keeps the created slot's name, type and widget; saved inputs the definition lacks go last;
    saved outputs are matched by position and keep the created name and type."""
    data = dict(info)
    saved_inputs = [i for i in info.get("inputs") or () if isinstance(i, dict)]
    by_name = {str(saved.get("name")): saved for saved in saved_inputs}
    defined_names = {slot.name for slot in node.inputs}
    merged: list[dict[str, Any]] = []
    for slot in node.inputs:
        saved = by_name.get(slot.name)
        if saved is None:
            merged.append(slot.to_json())
            continue
        entry = json_clone(saved)
        entry["name"] = slot.name
        entry["type"] = slot.type
        # The created slot's widget wins, also when it has none: every slot object carries a `widget`
        # field, so `_.pick(input, [..., 'widget'])` copies its `undefined` over a saved one.
        entry.pop("widget", None)
        if slot.widget is not None:
            entry["widget"] = dict(slot.widget)
        merged.append(entry)
    merged.extend(json_clone(s) for s in saved_inputs if str(s.get("name")) not in defined_names)
    data["inputs"] = merged
    raw_outputs = info.get("outputs")
    saved_outputs: list[Any] = raw_outputs if isinstance(raw_outputs, list) else []
    outputs: list[dict[str, Any]] = []
    for index in range(max(len(node.outputs), len(saved_outputs))):
        defined = node.outputs[index] if index < len(node.outputs) else None
        saved_out = saved_outputs[index] if index < len(saved_outputs) else None
        if defined is None:
            outputs.append(saved_out if isinstance(saved_out, dict) else {})
        elif isinstance(saved_out, dict):
            outputs.append({**saved_out, "name": defined.name, "type": defined.type})
        else:
            outputs.append({"name": defined.name, "type": defined.type, "links": None})
    data["outputs"] = outputs
    return data


class UnknownNode(Node):
    """A node whose type this ComfyUI lacks: kept as saved, so bypass can still route through it."""

    def __init__(self, type_name: str, title: str | None = None):
        super().__init__(type_name, title)
        self.comfy_class = None


@dataclass(slots=True)
class SubgraphSlot:
    """An input or output of a subgraph definition."""

    name: str
    type: Any
    link_ids: list[Any]
    label: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubgraphSlot:
        link_ids = data.get("linkIds")
        return cls(
            name=str(data.get("name", "")),
            type=data.get("type"),
            link_ids=list(link_ids) if isinstance(link_ids, list) else [],
            label=data.get("label") if isinstance(data.get("label"), str) else None,
        )


class Graph:
    """A graph (``LGraph``): the root workflow or the inside of a subgraph definition."""

    def __init__(self, root: Graph | None = None):
        self.root: Graph = root or self
        self.nodes: list[Node] = []
        self.nodes_by_id: dict[str, Node] = {}
        self.links: dict[str, Link] = {}
        #: Subgraph definitions by id; only the root graph holds them.
        self.subgraphs: dict[str, Subgraph] = {}
        self.extra: dict[str, Any] = {}

    def get_node(self, node_id: Any) -> Node | None:
        return self.nodes_by_id.get(key(node_id))

    def get_link(self, link_id: Any) -> Link | None:
        if link_id is None:
            return None
        return self.links.get(key(link_id))

    def add(self, node: Node) -> None:
        node.graph = self
        self.nodes.append(node)
        self.nodes_by_id[key(node.id)] = node

    def walk(self) -> Iterator[Node]:
        """``forEachNode``: the nodes of this graph, entering each subgraph instance's definition
        before the instance itself (so a definition used twice is visited twice)."""
        from .subgraphs import SubgraphNode

        for node in list(self.nodes):
            if isinstance(node, SubgraphNode):
                yield from node.subgraph.walk()
            yield node

    def describe_where(self) -> str:
        return ""


class Subgraph(Graph):
    """A subgraph definition (``definitions.subgraphs[]``)."""

    def __init__(self, root: Graph, data: dict[str, Any]):
        super().__init__(root)
        self.id = str(data.get("id"))
        self.name = str(data.get("name") or "Unnamed Subgraph")
        self.inputs: list[SubgraphSlot] = []
        self.outputs: list[SubgraphSlot] = []
        #: Instances of this definition that listen for its inputs being (re)defined.
        self.listeners: list[Callable[[SubgraphSlot], None]] = []
        self.configure_slots(data)

    def configure_slots(self, data: dict[str, Any]) -> None:
        """``#configureSubgraph``: (re)create the definition's inputs and outputs and tell the live
        instances about each input (their ``input-added`` listener)."""
        inputs = data.get("inputs")
        if isinstance(inputs, list):
            self.inputs = []
            for raw in inputs:
                if isinstance(raw, dict):
                    slot = SubgraphSlot.from_json(raw)
                    self.inputs.append(slot)
                    for listener in list(self.listeners):
                        listener(slot)
        outputs = data.get("outputs")
        if isinstance(outputs, list):
            self.outputs = [SubgraphSlot.from_json(raw) for raw in outputs if isinstance(raw, dict)]

    def input_slot(self, name: str) -> SubgraphSlot | None:
        for slot in self.inputs:
            if slot.name == name:
                return slot
        return None

    def describe_where(self) -> str:
        return f" in subgraph {self.name!r}"


def require(condition: bool, message: str, **details: Any) -> None:
    if not condition:
        raise ConversionError(message, **details)
