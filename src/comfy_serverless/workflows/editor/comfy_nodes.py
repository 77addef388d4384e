"""Nodes of ComfyUI's own classes, built from ``/object_info`` as the frontend builds them.

``registerNodeDef`` in src/services/litegraphService.ts (comfyui-frontend-package 1.35.9): plain sockets
first, then one widget (plus companions) and one widget socket per widget input, both in
``input_order``; dynamic inputs (autogrow, match-type, dynamic combos) from
src/core/graph/widgets/dynamicWidgets.ts; and the extension hooks that change what is sent
(``filename_prefix`` replacements, dynamic prompts).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..object_info import InputSpec, NodeDef
from .errors import ConversionError
from .model import UNDEFINED, Node, Widget, key, merge_with_definition
from .text import apply_text_replacements, process_dynamic_prompt
from .widgets import WIDGET_TYPES, build_widget

if TYPE_CHECKING:
    from .loader import Loader

# src/extensions/core/saveImageExtraOutput.ts
_SAVE_NODE_TYPES = frozenset(
    {
        "SaveImage",
        "SaveVideo",
        "SaveAnimatedWEBP",
        "SaveWEBM",
        "SaveAudio",
        "SaveGLB",
        "SaveAnimatedPNG",
        "CLIPSave",
        "VAESave",
        "ModelSave",
        "LoraSave",
        "SaveLatent",
    }
)

#: Classes whose value the browser makes at queue time (a webcam frame, a recording, a 3D render), and
#: the widget that does it. Without a browser there is nothing to send.
BROWSER_ONLY = {
    "WebcamCapture": "a webcam frame captured by the browser",
    "RecordAudio": "a recording made in the browser",
    "Load3D": "a render of the 3D scene made in the browser",
}

_RESERVED_SLOT_KEYS = ("name", "type", "shape", "localized_name")


class ComfyNode(Node):
    """A node of a ComfyUI class (``ComfyNode`` registered from the node definition)."""

    def __init__(self, node_def: NodeDef, loader: Loader, title: str | None = None):
        self.default_title = node_def.display_name or node_def.name
        super().__init__(node_def.name, title)
        self.node_def = node_def
        self.comfy_class = node_def.name
        self.loader = loader
        self.autogrow: dict[str, dict[str, Any]] = {}
        self.pending_frames: list[int] = []
        for spec in node_def.inputs:
            self._add_socket(spec)
        for spec in node_def.inputs:
            self._add_widget_input(spec)
        for output in node_def.outputs:
            self.add_output(output.name, output.type)

    # --- creation ----------------------------------------------------------------------------------

    def _add_socket(self, spec: InputSpec) -> None:
        """``addInputSocket``: a socket without a widget."""
        if spec.widget_type in WIDGET_TYPES and not spec.force_input:
            return
        if spec.type == "COMFY_MATCHTYPE_V3":
            template = spec.options.get("template") or {}
            typed = replace(spec, type=str(template.get("allowed_types", "*")))
            self.add_node_input(typed)
            return
        if spec.type == "COMFY_AUTOGROW_V3":
            self._apply_autogrow(spec)
            return
        self.add_input(spec.name, spec.type)

    def _add_widget_input(self, spec: InputSpec) -> None:
        """``addInputWidget``: the widget, and its socket unless the widget is socketless."""
        if spec.widget_type not in WIDGET_TYPES or spec.force_input:
            return
        if spec.widget_type == "COMFY_DYNAMICCOMBO_V3":
            from .dynamic_inputs import dynamic_combo_widget

            widget: Widget | None = dynamic_combo_widget(self, spec)
        else:
            widget = build_widget(self, spec)
        if widget is None or not widget.options.get("socketless"):
            self.add_input(spec.name, spec.type, widget={"name": spec.name})

    def add_node_input(self, spec: InputSpec) -> None:
        """``addNodeInput``: socket, then widget, for one spec (used by dynamic inputs)."""
        self._add_socket(spec)
        self._add_widget_input(spec)

    def _apply_autogrow(self, spec: InputSpec) -> None:
        from .dynamic_inputs import apply_autogrow

        apply_autogrow(self, spec)

    def on_created(self, loader: Loader) -> None:
        # nodeCreated hooks, in extension order (DynamicPrompts, ..., WebcamCapture) ...
        for widget in self.widgets or ():
            if widget.dynamic_prompts:
                _bind_dynamic_prompt(widget, loader)
        if self.type == "WebcamCapture":
            button = self.add_widget(Widget(name="waiting for camera...", type="button", value="capture"))
            button.serialize_value = lambda: UNDEFINED
        # ... then onNodeCreated hooks (SaveImageExtraOutput, PreviewAny, CustomCombo).
        if self.type in _SAVE_NODE_TYPES:
            prefix = self.widget("filename_prefix")
            if prefix is not None:
                prefix.serialize_value = lambda w=prefix: apply_text_replacements(loader, w.value)
        elif "Node name for S&R" not in self.properties:
            self.properties["Node name for S&R"] = self.type
        if self.type == "PreviewAny":
            # Text shown after a run; empty in a freshly loaded graph, but sent all the same.
            self.add_widget(Widget(name="preview", type="markdown", value="", has_value_slot=False))
            self.add_widget(Widget(name="preview", type="customtext", value="", has_value_slot=False))
            self.add_widget(Widget(name="previewMode", type="toggle", value=False))
        if self.type == "CustomCombo":
            _add_custom_combo_option(self)

    # --- loading -----------------------------------------------------------------------------------

    def configure(self, info: dict[str, Any], loader: Loader) -> None:
        """ComfyNode's ``configure``: slots keep their definition's name, type and widget; saved inputs
        are matched by name, saved outputs by position; old ``widgets_values`` are migrated."""
        data = merge_with_definition(self, info)
        data["widgets_values"] = migrate_widgets_values(
            self.node_def, self.widgets or [], info.get("widgets_values")
        )
        super().configure(data, loader)

    def after_slots_configured(self, loader: Loader) -> None:
        if self.autogrow:
            from .dynamic_inputs import autogrow_connections

            self.pending_frames = autogrow_connections(self)

    def after_frames(self, loader: Loader) -> None:
        """Work the frontend defers to the next animation frame, done before any prompt is built."""
        if self.pending_frames:
            from .dynamic_inputs import autogrow_after_frame

            pending, self.pending_frames = self.pending_frames, []
            autogrow_after_frame(self, pending)

    def on_graph_configured(self, loader: Loader) -> None:
        """``Comfy.WidgetInputs``: a widget socket whose widget no longer exists is removed."""
        if self.widgets is None:
            self.widgets = []
        for slot in list(self.inputs):
            if slot.widget is not None and self.widget(str(slot.widget.get("name"))) is None:
                self.remove_input(self.inputs.index(slot))

    def remove_input(self, index: int) -> None:
        """``removeInput``: disconnect, drop the slot, and shift the target slot of later links."""
        graph = self.graph
        slot = self.inputs[index]
        if graph is not None and slot.link is not None:
            link = graph.get_link(slot.link)
            slot.link = None
            if link is not None:
                origin = graph.get_node(link.origin_id)
                if origin is not None and 0 <= link.origin_slot < len(origin.outputs):
                    links = origin.outputs[link.origin_slot].links
                    if links is not None and link.id in links:
                        links.remove(link.id)
                graph.links.pop(key(link.id), None)
        del self.inputs[index]
        if graph is not None:
            for later in self.inputs[index:]:
                if later.link:
                    link = graph.get_link(later.link)
                    if link is not None:
                        link.target_slot -= 1

    def check_browser_only(self, execution_id: str) -> None:
        what = BROWSER_ONLY.get(self.type)
        if what is not None:
            raise ConversionError(
                f"node {execution_id} ({self.type}, {self.title!r}) sends {what}, which only the ComfyUI "
                "editor can make; replace it with a loader node (LoadImage, LoadAudio, ...) and send the file "
                "as a job input",
                node_id=execution_id,
                class_type=self.type,
            )


def _add_custom_combo_option(node: Node) -> None:
    """CustomCombo (src/extensions/core/customCombo.ts): a text option that, once filled in as the last
    one, adds the next; emptied as the second-to-last while the last is empty, removes the last."""
    assert node.widgets is not None
    option = node.add_widget(Widget(name=f"option{len(node.widgets) - 1}", type="text", value=""))

    def setter(value: Any) -> None:
        option.value = value
        widgets = node.widgets or []
        if widgets and widgets[-1] is option:
            if value:
                _add_custom_combo_option(node)
            return
        if value or len(widgets) < 2 or widgets[-2] is not option or widgets[-1].value:
            return
        widgets.pop()

    option.setter = setter


def _bind_dynamic_prompt(widget: Widget, loader: Loader) -> None:
    def serialize() -> Any:
        if not isinstance(widget.value, str):
            return widget.value
        return process_dynamic_prompt(widget.value, loader.rng)

    widget.serialize_value = serialize


def migrate_widgets_values(node_def: NodeDef, widgets: list[Widget], values: Any) -> Any:
    """``migrateWidgetsValues`` (src/utils/litegraphUtil.ts): files saved before frontend 1.16 kept a value
    for every ``forceInput`` input; when the count says so, those values are dropped."""
    if not isinstance(values, list):
        return values if values is not None else []
    names = {widget.name for widget in widgets}
    original = [
        spec for spec in node_def.inputs_in_definition_order if spec.name in names or spec.force_input
    ]
    expected = sum(
        2 if spec.options.get("control_after_generate") or spec.name in ("seed", "noise_seed") else 1
        for spec in original
    )
    if expected != len(values):
        return values
    kept: list[Any] = []
    for index, value in enumerate(values):
        spec = original[index] if index < len(original) else None
        if spec is not None and spec.force_input:
            continue
        kept.append(value)
    return kept
