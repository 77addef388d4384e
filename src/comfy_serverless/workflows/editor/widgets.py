"""Widgets the frontend builds from an input spec, with the value rules that reach the prompt.

Mirrors ``ComfyWidgets`` (src/scripts/widgets.ts) and the widget composables under
src/renderer/extensions/vueNodes/widgets/composables/ of comfyui-frontend-package 1.35.9, reduced to
what decides a prompt: the widget's name and initial value, whether it takes a place in
``widgets_values`` and whether it is sent, its companion ``control_after_generate`` widget, and the
rounding its change callback applies when a primitive pushes a value into it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..object_info import InputSpec
from .model import UNDEFINED, Node, Widget

#: Widget constructors the frontend knows (``ComfyWidgets`` plus the extensions' ``getCustomWidgets``).
#: An input whose (widget) type is not here is a plain socket.
WIDGET_TYPES = frozenset(
    {
        "INT",
        "FLOAT",
        "BOOLEAN",
        "STRING",
        "MARKDOWN",
        "COMBO",
        "IMAGEUPLOAD",
        "COLOR",
        "IMAGECOMPARE",
        "CHART",
        "GALLERIA",
        "TEXTAREA",
        "COMFY_DYNAMICCOMBO_V3",
        "AUDIO_UI",
        "AUDIOUPLOAD",
        "AUDIO_RECORD",
        "WEBCAM",
        "LOAD_3D",
        "PREVIEW_3D",
    }
)


def js_round(value: float) -> float:
    """``Math.round``: halves go up (towards +infinity)."""
    return float(math.floor(value + 0.5))


def js_to_fixed(value: float, digits: int) -> float:
    """``Number(value.toFixed(digits))``: ties away from zero on the exact binary value."""
    if not math.isfinite(value):
        return value
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_js_number(value: float) -> int | float:
    """A float as JSON.stringify writes it: whole numbers without a fraction."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def int_callback(widget: Widget, value: Any) -> None:
    """``onValueChange`` of the INT widget: round to the step, offset by min."""
    number = _number(value)
    if number is None:
        widget.value = _nan_like(value)
        return
    step = widget.options.get("step2") or 1
    if step == 1:
        widget.value = _as_js_number(js_round(number))
        return
    minimum = widget.options.get("min") or 0
    offset = math.fmod(minimum, step)
    widget.value = _as_js_number(js_round((number - offset) / step) * step + offset)


def float_callback(widget: Widget, value: Any) -> None:
    """``onFloatValueChange``: round to ``options.round`` at its precision, then clamp."""
    number = _number(value)
    rounding = widget.options.get("round")
    if not rounding:
        widget.value = value
        return
    if number is None:
        widget.value = _nan_like(value)
        return
    precision = widget.options.get("precision")
    if precision is None:
        precision = max(0, -math.floor(math.log10(rounding)))
    rounded = js_round(number / rounding) * rounding
    fixed = js_to_fixed(rounded, int(precision))
    minimum = widget.options.get("min")
    maximum = widget.options.get("max")
    low = -math.inf if minimum is None else minimum
    high = math.inf if maximum is None else maximum
    widget.value = _as_js_number(min(max(fixed, low), high))


def _nan_like(value: Any) -> Any:
    """Arithmetic on a non-number gives NaN in JavaScript, which JSON writes as null."""
    if isinstance(value, str):
        try:
            return _as_js_number(float(value)) if value.strip() else 0
        except ValueError:
            return None
    return None


def fire_callback(widget: Widget, value: Any) -> None:
    """A widget's change callback, as a primitive triggers it after setting the value."""
    if widget.callback_kind == "int":
        int_callback(widget, value)
    elif widget.callback_kind == "float":
        float_callback(widget, value)


def control_widget_name(spec_options: Mapping[str, Any], default_name: str, override: str | None) -> str:
    """``getName`` in addValueControlWidgets."""
    if override:
        return override
    custom = spec_options.get(default_name)
    if isinstance(custom, str):
        return custom
    prefix = spec_options.get("control_prefix")
    if prefix:
        return f"{prefix} {default_name}"
    return default_name


def add_value_control_widgets(
    node: Node,
    target: Widget,
    default: str | None,
    spec_options: Mapping[str, Any],
    *,
    add_filter_list: bool = True,
    control_name: str | None = None,
) -> list[Widget]:
    """``addValueControlWidgets``: the seed's ``control_after_generate`` (and, for combos, the
    ``control_filter_list``). Both are saved in ``widgets_values`` and never sent."""
    control = node.add_widget(
        Widget(
            name=control_widget_name(spec_options, "control_after_generate", control_name),
            type="combo",
            value=default or "randomize",
            in_prompt=False,
            options={"values": ["fixed", "increment", "decrement", "randomize"], "serialize": False},
            is_control=True,
        )
    )
    widgets = [control]
    if target.type == "combo" and add_filter_list:
        widgets.append(
            node.add_widget(
                Widget(
                    name=control_widget_name(spec_options, "control_filter_list", None),
                    type="text",
                    value="",
                    in_prompt=False,
                    options={"serialize": False},
                )
            )
        )
    target.linked = widgets
    return widgets


def textarea_value(value: Any) -> str:
    """What a ``<textarea>`` holds after ``el.value = value`` and reads back: null is empty, other values
    become strings, and line breaks are normalised to ``\\n``."""
    if value is None:
        text = ""
    elif value is UNDEFINED:
        text = "undefined"
    elif isinstance(value, str):
        text = value
    else:
        from .text import js_string

        text = js_string(value)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _textarea_widget(name: str, type_: str, initial: Any) -> Widget:
    widget = Widget(name=name, type=type_, value=textarea_value(initial))

    def setter(value: Any) -> None:
        widget.value = textarea_value(value)

    widget.setter = setter
    return widget


def _fixed_widget(name: str, type_: str, *, has_value_slot: bool = True) -> Widget:
    """A DOM or component widget without a value accessor: it always reads ``""``."""
    widget = Widget(name=name, type=type_, value="", has_value_slot=has_value_slot)
    widget.setter = lambda _value: None
    return widget


def build_widget(node: Node, spec: InputSpec, name: str | None = None) -> Widget | None:
    """Create the widget (and its companions) for one input spec on ``node``; None when the spec's type
    has no widget. ``name`` overrides the spec's name (a primitive's widget is called ``value``)."""
    widget_name = name or spec.name
    kind = spec.widget_type
    options = spec.options
    if kind == "INT":
        widget = node.add_widget(
            Widget(
                name=widget_name,
                type=_number_widget_type(options),
                value=_default(options, 0),
                options={
                    "min": _default(options, 0, "min"),
                    "max": _default(options, 2048, "max"),
                    "step2": _default(options, 1, "step"),
                    "precision": 0,
                },
                callback_kind="int",
            )
        )
        control = options.get("control_after_generate")
        if control is None:
            control = widget_name in ("seed", "noise_seed")
        if control:
            add_value_control_widgets(
                node,
                widget,
                "randomize",
                options,
                add_filter_list=False,
                control_name=control if isinstance(control, str) else None,
            )
        return widget
    if kind == "FLOAT":
        step = _default(options, 0.5, "step")
        precision = max(0, -math.floor(math.log10(step))) if isinstance(step, int | float) and step > 0 else 0
        explicit_round = options.get("round")
        rounding = 10.0**-precision if precision and not explicit_round else explicit_round
        widget = node.add_widget(
            Widget(
                name=widget_name,
                type=_number_widget_type(options),
                value=_default(options, 0),
                options={
                    "min": _default(options, 0, "min"),
                    "max": _default(options, 2048, "max"),
                    "round": rounding,
                    "step2": step,
                    "precision": precision,
                },
                callback_kind="float",
            )
        )
        control = options.get("control_after_generate")
        if control:
            add_value_control_widgets(
                node,
                widget,
                "fixed",
                options,
                add_filter_list=False,
                control_name=control if isinstance(control, str) else None,
            )
        return widget
    if kind == "BOOLEAN":
        return node.add_widget(Widget(name=widget_name, type="toggle", value=_default(options, False)))
    if kind == "STRING":
        if options.get("multiline"):
            widget = node.add_widget(_textarea_widget(widget_name, "customtext", _default(options, "")))
        else:
            default = _default(options, "")
            from .text import js_string

            widget = node.add_widget(
                Widget(
                    name=widget_name,
                    type="text",
                    value=default if isinstance(default, str) else js_string(default),
                )
            )
        if isinstance(options.get("dynamicPrompts"), bool):
            widget.dynamic_prompts = options["dynamicPrompts"]
        return widget
    if kind == "MARKDOWN":
        return node.add_widget(_textarea_widget(widget_name, "markdown", ""))
    if kind == "COMBO":
        return _combo_widget(node, spec, widget_name)
    if kind == "IMAGEUPLOAD":
        _install_upload_transform(node, spec)
        return node.add_widget(
            Widget(
                name=widget_name, type="button", value="image", in_prompt=False, options={"serialize": False}
            )
        )
    if kind == "AUDIOUPLOAD":
        return node.add_widget(
            Widget(name=widget_name, type="button", value="", in_prompt=False, options={"serialize": False})
        )
    if kind == "AUDIO_UI":
        return node.add_widget(_fixed_widget(widget_name, "audioUI", has_value_slot=False))
    if kind in ("PREVIEW_3D", "WEBCAM"):
        return node.add_widget(_fixed_widget(widget_name, "load3D" if kind == "PREVIEW_3D" else "WEBCAM"))
    if kind == "LOAD_3D":
        for button, value in (
            ("upload 3d model", "upload3dmodel"),
            ("upload extra resources", "uploadExtraResources"),
            ("clear", "clear"),
        ):
            node.add_widget(Widget(name=button, type="button", value=value))
        node.properties["Resource Folder"] = ""
        return node.add_widget(_fixed_widget(widget_name, "load3D"))
    if kind == "AUDIO_RECORD":
        widget = node.add_widget(_fixed_widget(widget_name, "audioUI"))
        node.add_widget(
            Widget(
                name=widget_name, type="audiorecord", value="", in_prompt=False, options={"serialize": False}
            )
        )
        return widget
    if kind == "COLOR":
        return node.add_widget(
            Widget(name=widget_name, type="color", value=options.get("default") or "#000000")
        )
    if kind == "TEXTAREA":
        return node.add_widget(Widget(name=widget_name, type="textarea", value=options.get("default") or ""))
    if kind == "IMAGECOMPARE":
        return node.add_widget(Widget(name=widget_name, type="imagecompare", value=["", ""]))
    if kind == "CHART":
        return node.add_widget(Widget(name=widget_name, type="chart", value=options.get("data") or {}))
    if kind == "GALLERIA":
        return node.add_widget(Widget(name=widget_name, type="galleria", value=options.get("images") or []))
    return None


def _default(options: Mapping[str, Any], fallback: Any, key: str = "default") -> Any:
    """``options[key] ?? fallback``."""
    value = options.get(key)
    return fallback if value is None else value


def _number_widget_type(options: Mapping[str, Any]) -> str:
    display = options.get("display")
    if display == "slider":
        return "slider"
    if display == "knob":
        return "knob"
    return "number"


def _combo_widget(node: Node, spec: InputSpec, widget_name: str) -> Widget:
    options = spec.options
    if options.get("multi_select"):
        widget = node.add_widget(Widget(name=widget_name, type="custom", value=[]))
        if options.get("control_after_generate"):
            add_value_control_widgets(node, widget, "fixed", options)
        return widget
    choices = list(spec.choices or ())
    default = options.get("default")
    if not default:
        if choices:
            default = choices[0]
        elif options.get("remote"):
            default = "Loading..."
        else:
            default = UNDEFINED
    widget = node.add_widget(
        Widget(name=widget_name, type="combo", value=default, options={"values": choices})
    )
    remote = options.get("remote")
    if isinstance(remote, dict):
        # useRemoteWidget: an auto-refresh toggle (saved, never sent) and, when asked for, a refresh
        # button whose value is sent like any other widget's.
        node.add_widget(
            Widget(
                name="Auto-refresh after generation",
                type="toggle",
                value=False,
                in_prompt=False,
                options={"serialize": False},
            )
        )
        if remote.get("refresh_button"):
            node.add_widget(Widget(name="refresh", type="button", value="refresh"))
    if options.get("control_after_generate"):
        add_value_control_widgets(node, widget, None, options)
    return widget


def _install_upload_transform(node: Node, spec: InputSpec) -> None:
    """The upload button turns its file combo's value into an annotated path (useImageUploadWidget):
    an empty value reads as the combo's value when the node was built, and files outside the input
    folder get a `` [output]``-style annotation."""
    combo_name = spec.options.get("imageInputName")
    combo = node.widget(str(combo_name)) if combo_name else None
    if combo is None:
        return
    from .text import js_string

    initial = "undefined" if combo.value is UNDEFINED else js_string(combo.value)
    root = spec.options.get("image_folder") or "input"
    allow_batch = spec.options.get("allow_batch")

    def annotate(item: Any) -> str:
        if isinstance(item, str):
            return item + _annotation(item, root)
        if isinstance(item, dict):
            filename = item.get("filename") or ""
            subfolder = item.get("subfolder")
            path = f"{subfolder}/{filename}" if subfolder else str(filename)
            kind = item.get("type")
            return path + (_annotation(str(kind), root) if kind else "")
        return ""

    def transform(value: Any) -> Any:
        if not value:
            return initial
        if isinstance(value, list):
            return [annotate(v) for v in value] if allow_batch else annotate(value[0])
        return annotate(value)

    def setter(value: Any) -> None:
        combo.value = transform(value)

    combo.value = transform(initial)
    combo.setter = setter


def _annotation(path: str, root: str) -> str:
    if root != "input" and not re.search(r"\[(input|output|temp)\]", path, re.IGNORECASE):
        return f" [{root}]"
    return ""
