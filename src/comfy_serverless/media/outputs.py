"""ComfyUI's per-node UI outputs (from /history) turned into typed output files and texts.

Core nodes report stills, animated WEBP/PNG and videos under ``images`` (animated ones flagged in
``animated``: 08_animated_webp_png, 09_video_mp4_webm), sound under ``audio`` (10_audio), text under
``text`` (11_text_output_and_binary_text) and 3D models under ``3d`` (SaveGLB; newer 3D previews too).
Custom nodes use their own keys, such as VideoHelperSuite's ``gifs``; any list of
``{filename, subfolder, type}`` entries is taken as files.

Newer ComfyUI (about 0.38 on) adds fields to each file entry: ``metadata`` (kind, width, height, and
for videos duration, fps and frame_count) whatever its settings, and ``id``/``preview_id`` with its
assets system on. ``metadata`` is passed on to the caller as it came; the rest is ignored. A 3D
preview's ``result`` ([model file, camera state, background]) is the viewer's state, not an output.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

OutputKind = Literal["image", "video", "audio", "text", "3d", "file"]

_EXTRA_TYPES = {
    ".webp": "image/webp",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".obj": "model/obj",
    ".fbx": "application/octet-stream",
    ".usdz": "model/vnd.usdz+zip",
    ".ply": "application/octet-stream",
    ".stl": "model/stl",
    ".safetensors": "application/octet-stream",
    ".latent": "application/octet-stream",
}
_ANIMATABLE = {"image/webp", "image/png", "image/gif", "image/apng"}
_MODEL_SUFFIXES = {".glb", ".gltf", ".obj", ".fbx", ".usdz", ".ply", ".stl"}


def guess_mime(filename: str) -> str:
    suffix = PurePosixPath(filename).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file a node produced, as ComfyUI reported it."""

    node_id: str
    kind: OutputKind
    filename: str
    subfolder: str
    folder_type: str  # "output" or "temp"
    mime: str
    animated: bool = False
    #: What newer ComfyUI says of the file (kind, width, height, duration, fps, frame_count), as it came.
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class OutputText:
    """A text a node produced (PreviewAny and custom text nodes)."""

    node_id: str
    text: str


def _kind_of(mime: str, key: str, animated: bool, filename: str) -> OutputKind:
    major = mime.split("/", 1)[0]
    if key == "3d" or PurePosixPath(filename).suffix.lower() in _MODEL_SUFFIXES:
        return "3d"
    if major == "video" or (animated and mime in _ANIMATABLE):
        return "video"
    if key == "gifs" and mime in _ANIMATABLE:
        return "video"
    if major in ("image", "audio"):
        return major  # type: ignore[return-value]
    return "file"


def _file_entry(node_id: str, key: str, entry: Mapping[str, Any], animated: bool) -> OutputFile | None:
    filename = entry.get("filename")
    if not isinstance(filename, str) or not filename:
        return None
    folder_type = str(entry.get("type") or "output")
    declared = entry.get("format")
    mime = declared if isinstance(declared, str) and "/" in declared and " " not in declared else None
    # VHS says e.g. "video/h264-mp4": a codec name, not a MIME type; trust the file name then.
    if mime is None or mime.split("/", 1)[1] not in guess_mime(filename):
        mime = guess_mime(filename)
    metadata = entry.get("metadata")
    return OutputFile(
        node_id=node_id,
        kind=_kind_of(mime, key, animated, filename),
        filename=filename,
        subfolder=str(entry.get("subfolder") or ""),
        folder_type=folder_type,
        mime=mime,
        animated=animated or (key == "gifs" and mime.split("/", 1)[0] != "video" and mime in _ANIMATABLE),
        metadata=dict(metadata) if isinstance(metadata, Mapping) and metadata else None,
    )


def collect_outputs(outputs: Mapping[str, Mapping[str, Any]]) -> tuple[list[OutputFile], list[OutputText]]:
    """Every file and text in a prompt's outputs, in node order as ComfyUI listed them."""
    files: list[OutputFile] = []
    texts: list[OutputText] = []
    for node_id, ui in outputs.items():
        if not isinstance(ui, Mapping):
            continue
        animated_flags = ui.get("animated")
        any_animated = isinstance(animated_flags, list | tuple) and any(bool(a) for a in animated_flags)
        for key, items in ui.items():
            if key == "animated" or not isinstance(items, list | tuple):
                continue
            for item in items:
                if isinstance(item, Mapping):
                    found = _file_entry(str(node_id), key, item, any_animated and key == "images")
                    if found is not None:
                        files.append(found)
                elif isinstance(item, str) and key in ("text", "string", "texts"):
                    texts.append(OutputText(str(node_id), item))
    return files, texts
