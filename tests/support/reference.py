"""Read ../shared/comfyui-reference: recorded transcripts and workflows of real ComfyUI 0.8.0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
