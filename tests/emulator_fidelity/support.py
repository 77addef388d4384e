"""Helpers for the fidelity tests: the reference transcripts (../shared/comfyui-reference
beside the repository), a recording WebSocket client and an HTTP client bound to one emulator."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import itertools
import json
import os
import re
import struct
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

HERE = Path(__file__).resolve().parent
REFERENCE = Path(os.environ.get("COMFY_REFERENCE_DIR") or HERE.parents[2] / "shared" / "comfyui-reference")
sys.path.insert(0, str(HERE.parent / "emulator"))

from comfy_emulator.control import EmulatorProcess, start_emulator  # noqa: E402

__all__ = ["EmulatorProcess", "start_emulator"]

# The shared emulator runs emulated compute 20x faster than the recording machine.
SHARED_TIME_SCALE = 0.05
BINARY_NAMES = {1: "PREVIEW_IMAGE", 2: "UNENCODED_PREVIEW_IMAGE", 3: "TEXT", 4: "PREVIEW_IMAGE_WITH_METADATA"}
_unique = itertools.count(1000)


# --------------------------------------------------------------------------- reference data
def transcript(name: str) -> dict[str, Any]:
    matches = sorted((REFERENCE / "transcripts").glob(f"{name}*.json"))
    assert matches, name
    data: dict[str, Any] = json.loads(matches[0].read_text())
    return data


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "workflows" / f"{name}.json").read_text())
    return data


def recorded_http(name: str, label: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
    """HTTP exchanges of a transcript, filtered by label and/or request path."""
    out = []
    for event in transcript(name)["events"]:
        if event["kind"] != "http":
            continue
        if label is not None and event.get("label") != label:
            continue
        if path is not None and event["request"]["path"] != path:
            continue
        out.append(event)
    return out


def recorded_ws(name: str, msg_type: str) -> list[dict[str, Any]]:
    return [
        e["json"]["data"]
        for e in transcript(name)["events"]
        if e["kind"] == "ws_recv" and e.get("json", {}).get("type") == msg_type
    ]


def recorded_binary(name: str) -> list[dict[str, Any]]:
    return [
        e["binary"] for e in transcript(name)["events"] if e["kind"] == "ws_recv" and e["opcode"] == "binary"
    ]


def unique_number() -> int:
    return next(_unique)


def with_color(prompt: dict[str, Any], node: str = "1") -> dict[str, Any]:
    """A copy of a workflow whose EmptyImage gets a unique colour (keeps tests independent)."""
    out = copy.deepcopy(prompt)
    out[node]["inputs"]["color"] = unique_number()
    return out


def strip_volatile(data: Any) -> Any:
    """Drop prompt ids, timestamps and sids so emulator and recorded messages can be compared."""
    if isinstance(data, dict):
        return {k: strip_volatile(v) for k, v in data.items() if k not in ("prompt_id", "timestamp", "sid")}
    if isinstance(data, list):
        return [strip_volatile(v) for v in data]
    return data


def normalize_names(data: Any) -> Any:
    """Counters and random temp prefixes differ between runs; make file names comparable."""
    if isinstance(data, dict):
        return {k: normalize_names(v) for k, v in data.items()}
    if isinstance(data, list):
        return [normalize_names(v) for v in data]
    if isinstance(data, str):
        data = re.sub(r"ComfyUI_temp_[a-z]{5}_", "ComfyUI_temp_XXXXX_", data)
        return re.sub(r"_\d{5}_\.", "_NNNNN_.", data)
    return data


def list_dir(path: str | Path) -> list[str]:
    return sorted(p.name for p in Path(path).iterdir())


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- websocket recorder
@dataclass
class Message:
    kind: str  # "text" | "binary"
    type: str  # message type, or "binary:NAME" like ws_message_type_sequence
    data: Any = None
    raw: bytes = b""
    event: int | None = None


def executed_outputs(messages: list[Message]) -> list[Any]:
    return [normalize_names(strip_volatile(m.data)) for m in messages if m.type == "executed"]


def executing_nodes(messages: list[Message]) -> list[Any]:
    return [m.data.get("node") for m in messages if m.type == "executing"]


@dataclass
class WSRecorder:
    session: aiohttp.ClientSession
    url: str
    messages: list[Message] = field(default_factory=list)
    ws: aiohttp.ClientWebSocketResponse | None = None
    closed: bool = False
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, first_message: dict[str, Any] | None = None) -> WSRecorder:
        self.ws = await self.session.ws_connect(self.url)
        if first_message is not None:
            await self.ws.send_json(first_message)
        self._task = asyncio.get_running_loop().create_task(self._reader())
        return self

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    self.messages.append(Message("text", data["type"], data["data"], msg.data.encode()))
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    raw = bytes(msg.data)
                    event = struct.unpack(">I", raw[:4])[0]
                    name = "binary:" + BINARY_NAMES.get(event, str(event))
                    self.messages.append(Message("binary", name, None, raw, event))
                self._changed.set()
        finally:
            self.closed = True
            self._changed.set()

    def types(self) -> list[str]:
        return [m.type for m in self.messages]

    def of_type(self, msg_type: str) -> list[Message]:
        return [m for m in self.messages if m.type == msg_type]

    async def wait_for(self, predicate: Callable[[Message], bool], wait_s: float = 15.0) -> Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            for m in self.messages:
                if predicate(m):
                    return m
            if self.closed:
                raise AssertionError(f"socket closed while waiting; got {self.types()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; got {self.types()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_closed(self, wait_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self.closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"socket still open; got {self.types()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_done(self, prompt_id: str, wait_s: float = 20.0) -> Message:
        """Until ``executing {node: null}`` of the prompt (always the last message, PROTOCOL.md)."""

        def done(m: Message) -> bool:
            return (
                m.type == "executing" and m.data.get("node") is None and m.data.get("prompt_id") == prompt_id
            )

        return await self.wait_for(done, wait_s)

    async def wait_executing(self, node: str, wait_s: float = 15.0) -> Message:
        return await self.wait_for(lambda m: m.type == "executing" and m.data.get("node") == node, wait_s)

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Client:
    """HTTP + WebSocket helper bound to one emulator."""

    def __init__(self, emu: EmulatorProcess, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.base = emu.base_url
        self._sockets: list[WSRecorder] = []

    async def ws(
        self, client_id: str | None = "auto", first_message: dict[str, Any] | None = None
    ) -> tuple[WSRecorder, str | None]:
        cid = uuid.uuid4().hex if client_id == "auto" else client_id
        rec = WSRecorder(self.session, self.emu.ws_url(cid))
        await rec.connect(first_message)
        await rec.wait_for(lambda m: m.type == "status")
        self._sockets.append(rec)
        return rec, cid

    async def post_prompt(
        self, prompt: dict[str, Any], client_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        async with self.session.post(self.base + "/prompt", json=body) as resp:
            data = await resp.json()
            assert resp.status == 200, data
            return dict(data)

    async def get_json(self, path: str, **params: Any) -> Any:
        async with self.session.get(self.base + path, params=params) as resp:
            assert resp.status == 200, (path, resp.status)
            return await resp.json()

    async def post_json(self, path: str, body: Any) -> aiohttp.ClientResponse:
        async with self.session.post(self.base + path, json=body) as resp:
            await resp.read()
            return resp

    async def history(self, prompt_id: str) -> dict[str, Any]:
        data = await self.get_json(f"/history/{prompt_id}")
        return dict(data[prompt_id])

    async def run(self, prompt: dict[str, Any], **extra: Any) -> tuple[WSRecorder, dict[str, Any]]:
        """Connect a socket, run a prompt to completion, return (socket, history entry)."""
        rec, cid = await self.ws()
        posted = await self.post_prompt(prompt, cid, **extra)
        await rec.wait_done(posted["prompt_id"])
        return rec, await self.history(posted["prompt_id"])

    async def upload(self, data: bytes, filename: str, **fields: str) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value)
        form.add_field("image", data, filename=filename, content_type="image/png")
        async with self.session.post(self.base + "/upload/image", data=form) as resp:
            await resp.read()
            return resp

    async def clear_cache(self) -> None:
        resp = await self.post_json("/free", {"free_memory": True})
        assert resp.status == 200

    async def close(self) -> None:
        for rec in self._sockets:
            await rec.close()


def free_port_for_tests() -> int:
    from comfy_emulator.control import free_port

    return free_port()
