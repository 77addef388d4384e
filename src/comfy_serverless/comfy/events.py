"""ComfyUI WebSocket messages, parsed once into typed events.

Message shapes and order follow ../shared/comfyui-reference/PROTOCOL.md; the transcript each shape was
recorded in is named beside it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Status:
    """Queue length broadcast (02_ws_handshake; sent twice when a prompt is queued, 03_tiny_image)."""

    queue_remaining: int
    sid: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionStart:
    """A prompt left the queue and began to run (03_tiny_image)."""

    prompt_id: str


@dataclass(frozen=True, slots=True)
class ExecutionCached:
    """Nodes whose cached results are reused; always sent, empty when none (04_cached_rerun)."""

    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Executing:
    """A node started. ``node`` None ends the prompt (03_tiny_image). After a WebSocket reconnect the
    message carries no prompt_id (23_ws_reconnect_mid_run)."""

    prompt_id: str | None
    node: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """Step progress inside a node, e.g. sampler steps or upscale tiles (15_progress_upscale)."""

    prompt_id: str | None
    node: str | None
    value: int
    max: int


@dataclass(frozen=True, slots=True)
class Executed:
    """An output node finished; ``output`` is its UI dict (images, audio, text, ...) (03, 08-11)."""

    prompt_id: str
    node: str
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExecutionSuccess:
    """Every node of the prompt ran (03_tiny_image)."""

    prompt_id: str


@dataclass(frozen=True, slots=True)
class ExecutionFailed:
    """A node raised (14_runtime_error)."""

    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()
    current_inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecutionInterrupted:
    """The prompt was interrupted at a node boundary (17_interrupt_global, 18_interrupt_targeted)."""

    prompt_id: str
    node_id: str | None
    node_type: str | None


@dataclass(frozen=True, slots=True)
class TextPreview:
    """Binary frame type 3: text a node shows while running, e.g. GetImageSize (11_text_output...)."""

    node: str
    text: str


@dataclass(frozen=True, slots=True)
class ImagePreview:
    """Binary frame type 1 or 4: a sampler preview (26/27_ksampler_preview_*)."""

    mime: str
    data: bytes
    prompt_id: str | None = None
    node: str | None = None


Event = (
    Status
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | Executed
    | ExecutionSuccess
    | ExecutionFailed
    | ExecutionInterrupted
    | TextPreview
    | ImagePreview
)

_BINARY_PREVIEW_IMAGE = 1
_BINARY_TEXT = 3
_BINARY_PREVIEW_WITH_METADATA = 4
_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_text(raw: str) -> Event | None:
    """Parse one text frame. Returns None for message types the worker does not use
    (progress_state, feature_flags, custom nodes' own types) and for malformed frames."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    return parse_message(kind, data)


def parse_message(kind: Any, data: dict[str, Any]) -> Event | None:
    """Parse a message given as type and data, as in text frames and /history's status.messages."""
    try:
        return _parse_data(kind, data)
    except (KeyError, TypeError, ValueError):
        return None


def _parse_data(kind: Any, data: dict[str, Any]) -> Event | None:
    prompt_id = _str_or_none(data.get("prompt_id"))
    if kind == "status":
        exec_info = data.get("status", {}).get("exec_info", {})
        return Status(int(exec_info.get("queue_remaining", 0)), _str_or_none(data.get("sid")))
    if kind == "executing":
        return Executing(prompt_id, _str_or_none(data.get("node")))
    if kind == "progress":
        return Progress(prompt_id, _str_or_none(data.get("node")), int(data["value"]), int(data["max"]))
    if prompt_id is None:
        return None
    if kind == "execution_start":
        return ExecutionStart(prompt_id)
    if kind == "execution_cached":
        return ExecutionCached(prompt_id, tuple(str(n) for n in data.get("nodes") or ()))
    if kind == "executed":
        output = data.get("output")
        return Executed(prompt_id, str(data["node"]), output if isinstance(output, dict) else {})
    if kind == "execution_success":
        return ExecutionSuccess(prompt_id)
    if kind == "execution_error":
        return ExecutionFailed(
            prompt_id=prompt_id,
            node_id=_str_or_none(data.get("node_id")),
            node_type=_str_or_none(data.get("node_type")),
            exception_type=str(data.get("exception_type") or "Exception"),
            exception_message=str(data.get("exception_message") or ""),
            traceback=tuple(str(line) for line in data.get("traceback") or ()),
            current_inputs=data.get("current_inputs") or {},
        )
    if kind == "execution_interrupted":
        return ExecutionInterrupted(
            prompt_id, _str_or_none(data.get("node_id")), _str_or_none(data.get("node_type"))
        )
    return None


def parse_binary(frame: bytes) -> Event | None:
    """Parse one binary frame: u32 big-endian event type, then its payload (PROTOCOL.md, binary frames)."""
    if len(frame) < 8:
        return None
    (kind,) = struct.unpack_from(">I", frame, 0)
    if kind == _BINARY_TEXT:
        (name_len,) = struct.unpack_from(">I", frame, 4)
        node = frame[8 : 8 + name_len].decode("utf-8", "replace")
        return TextPreview(node, frame[8 + name_len :].decode("utf-8", "replace"))
    if kind == _BINARY_PREVIEW_IMAGE:
        (image_type,) = struct.unpack_from(">I", frame, 4)
        return ImagePreview(_IMAGE_TYPES.get(image_type, "application/octet-stream"), frame[8:])
    if kind == _BINARY_PREVIEW_WITH_METADATA:
        (meta_len,) = struct.unpack_from(">I", frame, 4)
        try:
            meta = json.loads(frame[8 : 8 + meta_len])
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        return ImagePreview(
            str(meta.get("image_type") or "image/jpeg"),
            frame[8 + meta_len :],
            _str_or_none(meta.get("prompt_id")),
            _str_or_none(meta.get("node_id")),
        )
    return None
