"""Loading a saved editor workflow the way the frontend's ``app.loadGraphData`` does.

Order matters, because later steps see what earlier ones did (src/scripts/app.ts and
src/lib/litegraph/src/LGraph.ts ``configure`` of comfyui-frontend-package 1.35.9):

1. the link fixer repairs inconsistent links (:mod:`.link_fixer`);
2. renamed node types are patched and legacy group nodes are registered;
3. every subgraph definition is created, then each is filled in file order (its nodes are created,
   then configured);
4. the root nodes are created, then configured: each from its class's definition, then its saved
   slots and ``widgets_values``;
5. links' target slots are re-derived from the inputs, ComfyUI classes drop widget inputs whose
   widget no longer exists, and primitives build their widgets from what they feed;
6. a few known value fixes of old files are applied.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from ..object_info import ObjectInfo
from .comfy_nodes import ComfyNode
from .errors import ConversionError
from .execution import Executable, graph_to_prompt
from .frontend_nodes import NoteNode, PrimitiveNode, RerouteNode
from .group_nodes import GroupNodeRegistry
from .link_fixer import fix_bad_links
from .model import Graph, Link, Node, Subgraph, UnknownNode, json_clone, key
from .subgraphs import SubgraphNode

# collectMissingNodesAndModels (app.ts): types renamed since old files were saved.
_RENAMED_TYPES = {
    "T2IAdapterLoader": "ControlNetLoader",
    "ConditioningAverage ": "ConditioningAverage",
    "SDV_img2vid_Conditioning": "SVD_img2vid_Conditioning",
    "Load3DAnimation": "Load3D",
    "Preview3DAnimation": "Preview3D",
}

_FRONTEND_TYPES: dict[str, Callable[[str | None], Node]] = {
    "PrimitiveNode": PrimitiveNode,
    "Reroute": RerouteNode,
    "Note": lambda title: NoteNode("Note", title),
    "MarkdownNote": lambda title: NoteNode("MarkdownNote", title),
}


class Loader:
    """Loads one editor workflow into a :class:`Graph` and turns it into a prompt."""

    def __init__(
        self,
        object_info: ObjectInfo,
        *,
        now: dt.datetime | None = None,
        rng: random.Random | None = None,
    ):
        self.object_info = object_info
        self.now = now
        self.rng = rng or random.Random()
        self.root = Graph()
        self.group_nodes = GroupNodeRegistry(self)
        self.missing: list[tuple[str, str]] = []
        self.configuring = 0

    # --- node factory (LiteGraph.createNode) -----------------------------------------------------

    def create_node(self, type_name: str, title: str | None) -> Node | None:
        factory = _FRONTEND_TYPES.get(type_name)
        node: Node
        if factory is not None:
            node = factory(title)
        elif type_name in self.root.subgraphs:
            node = SubgraphNode(self.root.subgraphs[type_name], self, title)
        elif self.group_nodes.has(type_name):
            node = self.group_nodes.create(type_name, title)
        else:
            node_def = self.object_info.get(type_name)
            if node_def is None:
                return None
            node = ComfyNode(node_def, self, title)
        node.on_created(self)
        return node

    # --- loading ---------------------------------------------------------------------------------

    def load(self, workflow: dict[str, Any]) -> Graph:
        data = json_clone(workflow)
        data = fix_bad_links(data)
        self._patch_types(data)
        self.group_nodes.register_all(data)
        self.configuring += 1
        try:
            self.configure_graph(self.root, data)
        finally:
            self.configuring -= 1
        self._after_root_configured()
        self._fix_old_values()
        return self.root

    def _patch_types(self, data: dict[str, Any]) -> None:
        def patch(nodes: Any, where: str) -> None:
            if not isinstance(nodes, list):
                return
            for node in nodes:
                if isinstance(node, dict) and isinstance(node.get("type"), str):
                    node["type"] = _RENAMED_TYPES.get(node["type"], node["type"])

        patch(data.get("nodes"), "")
        definitions = data.get("definitions")
        if isinstance(definitions, dict):
            for subgraph in definitions.get("subgraphs") or ():
                if isinstance(subgraph, dict):
                    patch(subgraph.get("nodes"), str(subgraph.get("name") or subgraph.get("id")))

    def configure_graph(self, graph: Graph, data: dict[str, Any]) -> None:
        """``LGraph.configure``."""
        graph.nodes = []
        graph.nodes_by_id = {}
        graph.links = {}
        extra = data.get("extra")
        graph.extra = json_clone(extra) if isinstance(extra, dict) else {}
        arrays = data.get("version") == 0.4
        for raw in data.get("links") or ():
            link = _link_from(raw, arrays)
            if link is not None:
                graph.links[key(link.id)] = link
        definitions = data.get("definitions")
        subgraph_data = definitions.get("subgraphs") if isinstance(definitions, dict) else None
        if isinstance(subgraph_data, list):
            created = []
            for raw_subgraph in subgraph_data:
                if isinstance(raw_subgraph, dict):
                    subgraph = Subgraph(self.root, json_clone(raw_subgraph))
                    self.root.subgraphs[subgraph.id] = subgraph
                    created.append((subgraph, raw_subgraph))
            for subgraph, raw_subgraph in created:
                if self.root.subgraphs.get(subgraph.id) is subgraph:
                    self.configure_graph(subgraph, raw_subgraph)
                    subgraph.configure_slots(raw_subgraph)
        pending: list[tuple[Node, dict[str, Any]]] = []
        for info in data.get("nodes") or ():
            if not isinstance(info, dict):
                continue
            type_name = str(info.get("type") or "")
            title = info.get("title") if isinstance(info.get("title"), str) else None
            node = self.create_node(type_name, title)
            if node is None:
                node = UnknownNode(type_name, title)
                self.missing.append((type_name, graph.describe_where()))
            node.id = info.get("id")
            graph.add(node)
            pending.append((node, info))
        for node, info in pending:
            node.configure(info, self)

    def _after_root_configured(self) -> None:
        """The root graph's patched ``onConfigure`` (app.ts ``addAfterConfigureHandler``)."""
        fix_link_input_slots(self.root)
        for node in self.root.walk():
            node.on_graph_configured(self)
        for node in self.root.walk():
            node.on_after_graph_configured(self)
        for graph in [self.root, *self.root.subgraphs.values()]:
            for node in graph.nodes:
                node.after_frames(self)

    def _fix_old_values(self) -> None:
        """Value fixes loadGraphData applies to every node after loading."""
        for node in self.root.walk():
            for widget in node.widgets or ():
                if (
                    node.type in ("KSampler", "KSamplerAdvanced")
                    and widget.name == "sampler_name"
                    and isinstance(widget.value, str)
                    and widget.value.startswith("sample_")
                ):
                    widget.value = widget.value[7:]
                if (
                    node.type in ("KSampler", "KSamplerAdvanced", "PrimitiveNode")
                    and widget.name == "control_after_generate"
                ):
                    if widget.value is True:
                        widget.value = "randomize"
                    elif widget.value is False:
                        widget.value = "fixed"

    # --- prompt ----------------------------------------------------------------------------------

    def to_prompt(self) -> dict[str, dict[str, Any]]:
        return graph_to_prompt(self.root, self)

    def serialize_graph(self) -> None:
        """``graph.serialize()``, which graphToPrompt runs first: subgraph instances write their
        promoted widget values into the definition's widgets."""
        for node in self.root.nodes:
            node.on_serialize(self)
        used = _used_subgraphs(self.root)
        for subgraph in self.root.subgraphs.values():
            if subgraph.id in used:
                for node in subgraph.nodes:
                    node.on_serialize(self)

    def executable_for(self, node: Node, table: dict[str, Executable]) -> Executable:
        from .group_nodes import GroupNode

        if isinstance(node, GroupNode):
            return node.executable(table)
        return Executable(node, (), table)

    def check_prompt(self, prompt: dict[str, dict[str, Any]], table: dict[str, Executable]) -> None:
        """Refuse what the frontend would send broken: classes this ComfyUI lacks, and values only a
        browser can make (a webcam frame, a recording, a 3D render) on nodes that would run."""
        self.group_nodes.check_prompt(prompt, table)
        missing = [
            (node_id, table[node_id].node.type)
            for node_id, entry in prompt.items()
            if entry["class_type"] is None
        ]
        if missing:
            listed = ", ".join(f"node {node_id} ({type_name!r})" for node_id, type_name in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            classes = sorted({type_name for _, type_name in missing})
            raise ConversionError(
                f"the workflow uses node types this ComfyUI does not have: {listed}{more}; they are probably "
                "custom nodes that are not installed (mute or remove them in the editor, or install them in "
                "the image)",
                missing=[{"node_id": node_id, "class_type": type_name} for node_id, type_name in missing],
                class_types=classes,
            )
        needed = _nodes_that_run(prompt, self.object_info)
        for node_id in sorted(needed):
            node = table[node_id].node
            if isinstance(node, ComfyNode):
                node.check_browser_only(node_id)


def _nodes_that_run(prompt: dict[str, dict[str, Any]], object_info: ObjectInfo) -> set[str]:
    """Output nodes and everything they draw from: what ComfyUI executes of a prompt."""
    stack = [
        node_id
        for node_id, entry in prompt.items()
        if (node_def := object_info.get(str(entry["class_type"]))) is not None and node_def.output_node
    ]
    needed: set[str] = set()
    while stack:
        node_id = stack.pop()
        if node_id in needed or node_id not in prompt:
            continue
        needed.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                stack.append(value[0])
    return needed


def _used_subgraphs(root: Graph) -> set[str]:
    used: set[str] = set()
    stack: list[Graph] = [root]
    while stack:
        graph = stack.pop()
        for node in graph.nodes:
            if isinstance(node, SubgraphNode) and node.subgraph.id not in used:
                used.add(node.subgraph.id)
                stack.append(node.subgraph)
    return used


def _link_from(raw: Any, arrays: bool) -> Link | None:
    if isinstance(raw, list) and (arrays or not isinstance(raw, dict)):
        return Link.from_array(raw)
    if isinstance(raw, dict):
        return Link.from_object(raw)
    return None


def fix_link_input_slots(graph: Graph) -> None:
    """``fixLinkInputSlots`` (src/utils/litegraphUtil.ts): a link's target slot is the index of the input
    that holds it, whatever the file said; subgraphs are entered through their instances."""
    for node in graph.nodes:
        for index, slot in enumerate(node.inputs):
            if not slot.link:
                continue
            link = graph.get_link(slot.link)
            if link is not None:
                link.target_slot = index
        if isinstance(node, SubgraphNode):
            fix_link_input_slots(node.subgraph)
