"""Shared fixtures for the provisioning tests: repo paths, the ComfyUI reference, a local HTTP server."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _reference_dir() -> Path | None:
    candidates = [
        os.environ.get("COMFYUI_REFERENCE_DIR"),
        REPO.parent / "shared" / "comfyui-reference",
        REPO / "shared" / "comfyui-reference",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "transcripts" / "object_info.json").is_file():
            return Path(candidate)
    return None


REFERENCE = _reference_dir()
needs_reference = pytest.mark.skipif(
    REFERENCE is None, reason="shared/comfyui-reference is not beside the repo"
)


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    assert REFERENCE is not None
    data: dict[str, Any] = json.loads((REFERENCE / "transcripts" / "object_info.json").read_text())
    return data


@pytest.fixture(scope="session")
def meta_transcript() -> dict[str, Any]:
    assert REFERENCE is not None
    data: dict[str, Any] = json.loads((REFERENCE / "transcripts" / "01_meta_endpoints.json").read_text())
    return data


def transcript_response(transcript: dict[str, Any], path: str) -> Any:
    """The JSON body of the first recorded GET of ``path``."""
    for event in transcript["events"]:
        if event.get("kind") == "http" and event["request"]["path"] == path:
            return event["response"]["json"]
    raise KeyError(path)


@dataclass
class FileServer:
    """A tiny HTTP server on 127.0.0.1 serving in-memory files, with range, auth and fault switches."""

    files: dict[str, bytes] = field(default_factory=dict)
    linked_etag: dict[str, str] = field(default_factory=dict)  # path -> sha256 announced on HEAD
    redirects: dict[str, str] = field(default_factory=dict)  # path -> absolute URL
    token: str | None = None  # required bearer token for paths under /gated/
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before dropping, once
    ignore_range: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # silence
            return

        def _common(self, head: bool) -> None:
            state.requests.append((self.command, self.path, dict(self.headers.items())))
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                if self.path in state.linked_etag:
                    self.send_header("X-Linked-Etag", f'"{state.linked_etag[self.path]}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if (
                self.path.startswith("/gated/")
                and self.headers.get("Authorization") != f"Bearer {state.token}"
            ):
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            range_header = self.headers.get("Range")
            if range_header and not state.ignore_range:
                start = int(range_header.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            if self.path in state.linked_etag:
                self.send_header("X-Linked-Etag", f'"{state.linked_etag[self.path]}"')
            self.end_headers()
            if head:
                return
            cut = state.cut_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._common(head=False)

        def do_HEAD(self) -> None:
            self._common(head=True)

    return Handler


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def second_server() -> Iterator[FileServer]:
    """Another host (port) to test that tokens are not forwarded across redirects."""
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
