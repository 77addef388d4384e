"""ComfyUI's ``/object_info``, read once per boot into typed node definitions.

The editor builds each node from these definitions: which inputs become widgets, in which order
(``input_order``), which are plain sockets, and the node's output types. Converting an editor
workflow needs exactly that, so the converter reads it from here rather than from the raw dicts.

Input specs follow the frontend's own normalisation (``transformInputSpecV1ToV2`` in
``src/schemas/nodeDef/migration.ts`` of comfyui-frontend-package 1.35.9): a combo's type is
``COMBO`` whether ComfyUI sent ``[[choices], {...}]`` or ``["COMBO", {"options": [...]}]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a node class, as the frontend sees it."""

    name: str
    type: str
    is_optional: bool
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Choices of a combo (also for ``["COMBO", {"options": [...]}]``); None for other types.
    choices: tuple[Any, ...] | None = None

    @property
    def force_input(self) -> bool:
        return bool(self.options.get("forceInput"))

    @property
    def widget_type(self) -> str:
        """The widget constructor the frontend picks (``widgetType`` overrides the type)."""
        widget_type = self.options.get("widgetType")
        return widget_type if isinstance(widget_type, str) else self.type

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    type: str
    is_list: bool


@dataclass(frozen=True, slots=True)
class NodeDef:
    """A node class of the running ComfyUI."""

    name: str
    display_name: str
    #: Inputs in the order the frontend creates them (``input_order``, then the rest).
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    #: Inputs as ``/object_info`` lists them (required, then optional), which old-file migrations count.
    inputs_in_definition_order: tuple[InputSpec, ...] = ()
    output_node: bool = False
    api_node: bool = False

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    @property
    def input_names(self) -> set[str]:
        return {spec.name for spec in self.inputs}


def _is_combo(raw: list[Any]) -> bool:
    return isinstance(raw[0], list) or raw[0] == "COMBO"


def input_spec_from_json(name: str, raw: Any, *, optional: bool) -> InputSpec | None:
    if not isinstance(raw, list | tuple) or not raw:
        return None
    raw = list(raw)
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if _is_combo(raw):
        choices = raw[0] if isinstance(raw[0], list) else options.get("options") or []
        return InputSpec(name, "COMBO", optional, options, tuple(choices))
    if isinstance(raw[0], str):
        return InputSpec(name, raw[0], optional, options)
    return InputSpec(name, "UNKNOWN", optional, options)


_AUDIO_WIDGET_CLASSES = frozenset({"LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus"})


def with_extension_inputs(name: str, required: dict[str, Any]) -> dict[str, Any]:
    """Inputs the frontend's own extensions add before it registers a class (``beforeRegisterNodeDef``, in
    extension order): ``Comfy.Preview3D`` and ``Comfy.SaveGLB`` add an ``image`` preview to Preview3D and
    SaveGLB; ``Comfy.AudioWidget`` an ``audioUI`` player to the audio loaders and savers;
    ``Comfy.UploadAudio`` and ``Comfy.UploadImage`` an ``upload`` button after the file combo
    (src/extensions/core/load3d.ts, saveMesh.ts, uploadAudio.ts, uploadImage.ts)."""
    required = dict(required)
    if name in ("Preview3D", "SaveGLB"):
        required["image"] = ["PREVIEW_3D"]
    if name in _AUDIO_WIDGET_CLASSES:
        required["audioUI"] = ["AUDIO_UI", {}]
    audio = required.get("audio")
    if (
        isinstance(audio, list)
        and len(audio) > 1
        and isinstance(audio[1], dict)
        and audio[1].get("audio_upload") is True
    ):
        required["upload"] = ["AUDIOUPLOAD", {}]
    for input_name, raw in list(required.items()):
        if not isinstance(raw, list) or not raw:
            continue
        options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
        combo = isinstance(raw[0], list) or raw[0] == "COMBO"
        if combo and any(
            options.get(k) is True for k in ("image_upload", "video_upload", "animated_image_upload")
        ):
            required["upload"] = ["IMAGEUPLOAD", {**options, "imageInputName": input_name}]
            break
    return required


def node_def_from_json(name: str, raw: Mapping[str, Any]) -> NodeDef:
    """One ``/object_info`` entry as the frontend registers it."""
    sections = raw.get("input") or {}
    required = dict(sections.get("required") or {})
    optional = dict(sections.get("optional") or {})
    required = with_extension_inputs(name, required)
    specs: dict[str, InputSpec] = {}
    for section, optional_flag in ((required, False), (optional, True)):
        for input_name, spec_raw in section.items():
            if (
                optional_flag
                and isinstance(spec_raw, list)
                and len(spec_raw) > 1
                and isinstance(spec_raw[1], dict)
                and spec_raw[1].get("defaultInput")
            ):
                # ComfyNodeDefImpl: an optional defaultInput is a forceInput (src/stores/nodeDefStore.ts).
                spec_raw = [spec_raw[0], {**spec_raw[1], "forceInput": True}, *spec_raw[2:]]
            spec = input_spec_from_json(input_name, spec_raw, optional=optional_flag)
            if spec is not None:
                specs[input_name] = spec
    order = raw.get("input_order") or {}
    ordered: list[InputSpec] = []
    if order:
        # getOrderedInputSpecs (src/workbench/utils/nodeDefOrderingUtil.ts): required in order, then
        # optional in order, then whatever input_order left out.
        for input_name in order.get("required") or ():
            spec = specs.get(input_name)
            if spec is not None and not spec.is_optional:
                ordered.append(spec)
        for input_name in order.get("optional") or ():
            spec = specs.get(input_name)
            if spec is not None and spec.is_optional:
                ordered.append(spec)
        seen = {spec.name for spec in ordered}
        ordered.extend(spec for spec in specs.values() if spec.name not in seen)
    else:
        ordered = list(specs.values())
    outputs: list[OutputSpec] = []
    output_types = raw.get("output") or []
    output_names = raw.get("output_name") or []
    output_is_list = raw.get("output_is_list") or []
    for index, output_type in enumerate(output_types):
        out_type = "COMBO" if isinstance(output_type, list) else str(output_type)
        if out_type == "COMFY_MATCHTYPE_V3":
            out_type = "*"
        out_name = (
            output_names[index] if index < len(output_names) and output_names[index] else f"output_{index}"
        )
        is_list = bool(output_is_list[index]) if index < len(output_is_list) else False
        outputs.append(OutputSpec(str(out_name), out_type, is_list))
    return NodeDef(
        name=name,
        display_name=str(raw.get("display_name") or name),
        inputs=tuple(ordered),
        outputs=tuple(outputs),
        inputs_in_definition_order=tuple(specs.values()),
        output_node=bool(raw.get("output_node")),
        api_node=bool(raw.get("api_node")),
    )


class ObjectInfo:
    """Every node class of one ComfyUI, parsed once."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self._defs: dict[str, NodeDef] = {}

    def get(self, class_type: str) -> NodeDef | None:
        node_def = self._defs.get(class_type)
        if node_def is None:
            entry = self.raw.get(class_type)
            if not isinstance(entry, Mapping):
                return None
            node_def = self._defs[class_type] = node_def_from_json(class_type, entry)
        return node_def

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and isinstance(self.raw.get(class_type), Mapping)

    def class_names(self) -> Iterable[str]:
        return self.raw.keys()


class ObjectInfoCache:
    """The running ComfyUI's node definitions, fetched once per boot: a restart (after a crash, or with
    other custom nodes) is read afresh; every job of the same boot reuses the parsed definitions."""

    def __init__(self, fetch: Callable[[], Awaitable[Mapping[str, Any]]], boot: Callable[[], int]):
        self._fetch = fetch
        self._boot = boot
        self._cached: tuple[int, ObjectInfo] | None = None
        self._lock: asyncio.Lock | None = None

    def current(self) -> ObjectInfo | None:
        """The definitions of the current boot when already read, else None (never fetches)."""
        cached = self._cached
        return cached[1] if cached is not None and cached[0] == self._boot() else None

    async def get(self) -> ObjectInfo:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent jobs of a new boot share one fetch
            info = self.current()
            if info is None:
                boot = self._boot()
                info = ObjectInfo(await self._fetch())
                self._cached = (boot, info)
            return info
