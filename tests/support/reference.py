"""Read ../shared/comfyui-reference: recorded transcripts and workflows of real ComfyUI 0.8.0."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from comfy_serverless.workflows.object_info import ObjectInfo

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "comfyui-reference"


def transcript(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "transcripts" / f"{name}.json").read_text())
    return data


def http_exchanges(name: str) -> Iterator[dict[str, Any]]:
    for event in transcript(name)["events"]:
        if event.get("kind") == "http":
            yield event


def ws_texts(name: str) -> Iterator[dict[str, Any]]:
    for event in transcript(name)["events"]:
        if event.get("kind") == "ws_recv" and event.get("opcode") == "text":
            yield event["json"]


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "workflows" / f"{name}.json").read_text())
    return data


@functools.cache
def object_info_raw() -> dict[str, Any]:
    """``/object_info`` of ComfyUI 0.8.0 with no custom nodes (568 classes)."""
    data: dict[str, Any] = json.loads((REFERENCE / "transcripts" / "object_info.json").read_text())
    return data


def object_info() -> ObjectInfo:
    return ObjectInfo(object_info_raw())
