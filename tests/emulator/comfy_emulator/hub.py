"""WebSocket clients and the ordered message publisher.

Like real ComfyUI, every message goes through one queue and one publisher task, so the order on the
wire is the order of ``send`` calls.  ``sid=None`` means broadcast to every socket (02/22: ``status``,
``progress_state`` of prompts without client_id, binary TEXT frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("comfy_emulator")

# Binary event types (PROTOCOL.md "Binary frames")
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

# 01_meta_endpoints GET /features, 02_ws_handshake feature_flags reply
SERVER_FEATURES: dict[str, Any] = {
    "supports_preview_metadata": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
}


_ARM = "\x00arm-drop"
_DISARM = "\x00disarm-drop"


@dataclass
class _Outgoing:
    event: str | int
    data: Any
    sid: str | None


class Hub:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.requests: dict[str, web.Request] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        # state shared with the executor (ComfyUI's server.client_id / server.last_node_id)
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        # fault: drop all sockets after N more messages (armed per prompt), then refuse reconnects
        self._drop_countdown: int | None = None
        self._drop_mode = "abort"
        self._refuse_after_drop_s = 0.0
        self.refuse_until = 0.0
        self.drop_types: set[str] = set()

    # ------------------------------------------------------------------ sending
    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self._idle.clear()
        self._queue.put_nowait(_Outgoing(event, data, sid))

    def send_binary(self, event_type: int, payload: bytes, sid: str | None = None) -> None:
        self._idle.clear()
        self._queue.put_nowait(_Outgoing(event_type, payload, sid))

    def send_text(self, node_id: str, text: str, sid: str | None = None) -> None:
        """Binary TEXT frame: u32be len + node_id + utf-8 text (11_text_output_and_binary_text)."""
        node = str(node_id).encode("utf-8")
        self.send_binary(TEXT, struct.pack(">I", len(node)) + node + text.encode("utf-8"), sid)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self.metadata.get(sid, {}).get("feature_flags", {})
        return isinstance(flags, dict) and flags.get("supports_preview_metadata") is True

    async def drain(self, wait_s: float = 1.0) -> None:
        """Wait until everything queued so far was written (used before emulated crashes)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), wait_s)

    async def publisher(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            except Exception:  # never let one bad socket stop the publisher
                log.exception("[emulator] error while sending %s", item.event)
            if self._queue.empty():
                self._idle.set()

    async def _deliver(self, item: _Outgoing) -> None:
        if item.event == _ARM:
            count, mode, refuse_s = item.data
            self._drop_countdown = count
            self._drop_mode = mode
            self._refuse_after_drop_s = refuse_s
            return
        if item.event == _DISARM:
            self._drop_countdown = None
            return
        if isinstance(item.event, str) and item.event in self.drop_types:
            return
        if isinstance(item.event, int):
            payload: bytes | str = struct.pack(">I", item.event) + item.data
        else:
            payload = json.dumps({"type": item.event, "data": item.data})
        if item.sid is None:
            targets = list(self.sockets.items())
        elif item.sid in self.sockets:
            targets = [(item.sid, self.sockets[item.sid])]
        else:
            targets = []
        for _sid, ws in targets:
            if ws.closed:
                continue
            try:
                if isinstance(payload, bytes):
                    await ws.send_bytes(payload)
                else:
                    await ws.send_str(payload)
            except (ConnectionError, RuntimeError) as exc:
                log.warning("send error: %s", exc)
        if self._drop_countdown is not None:
            self._drop_countdown -= 1
            if self._drop_countdown <= 0:
                self._drop_countdown = None
                await self.drop_all(self._drop_mode)
                if self._refuse_after_drop_s > 0:
                    self.refuse_until = time.monotonic() + self._refuse_after_drop_s

    # ------------------------------------------------------------------ faults
    def arm_drop(self, after_messages: int, mode: str, refuse_s: float) -> None:
        """Count from the next message queued (not from messages already waiting in the queue)."""
        self._idle.clear()
        self._queue.put_nowait(
            _Outgoing(_ARM, (max(1, int(after_messages)), mode, max(0.0, float(refuse_s))), None)
        )

    def disarm_drop(self) -> None:
        self._idle.clear()
        self._queue.put_nowait(_Outgoing(_DISARM, None, None))

    async def drop_all(self, mode: str = "abort") -> None:
        log.warning("[emulator] fault: dropping %d websocket connection(s) (%s)", len(self.sockets), mode)
        for sid, ws in list(self.sockets.items()):
            if mode == "close":
                with contextlib.suppress(Exception):
                    await ws.close(code=1011, message=b"emulator fault: connection dropped")
            else:
                request = self.requests.get(sid)
                transport = request.transport if request is not None else None
                if transport is not None:
                    transport.abort()
                else:
                    with contextlib.suppress(Exception):
                        await ws.close(code=1006)

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until
