"""One long-lived HTTP session and one WebSocket to ComfyUI, shared by every job of the worker.

The WebSocket listener dispatches typed events to per-prompt trackers. Prompts get a client-chosen id
before they are queued (24_two_prompts_queued shows ComfyUI honours it), so no message can arrive before
its tracker exists. When the socket drops, the listener reconnects and asks ``/history`` about every
prompt still in flight, because messages sent while disconnected are lost (23_ws_reconnect_mid_run) and
``/history`` is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from ..aio import in_thread
from .events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionFailed,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    parse_binary,
    parse_message,
    parse_text,
)

log = logging.getLogger(__name__)

_RECONNECT_FIRST_DELAY = 0.05
_RECONNECT_MAX_DELAY = 1.0


class ComfyConnectionError(Exception):
    """ComfyUI could not be reached or answered with something that is not its protocol."""


class ComfyHTTPError(ComfyConnectionError):
    """ComfyUI answered an HTTP request with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str):
        super().__init__(f"{method} {path} answered HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class QueuedPrompt:
    """ComfyUI's answer to POST /prompt when it accepted the prompt (03_tiny_image).

    ``node_errors`` is non-empty when only some output branches were valid (13_partially_invalid)."""

    prompt_id: str
    number: int
    node_errors: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RejectedPrompt:
    """ComfyUI's HTTP 400 body for an invalid prompt (12_validation_errors)."""

    error: dict[str, Any]
    node_errors: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Where a running prompt is: the current node, its step counter and how many nodes are done."""

    node: str | None
    value: int | None
    max: int | None
    nodes_done: int


@dataclass(slots=True)
class PromptOutcome:
    """How a prompt ended, from WebSocket events or, after a reconnect, from /history."""

    status: Literal["success", "error", "interrupted"]
    failure: ExecutionFailed | None = None
    interrupted: ExecutionInterrupted | None = None
    started_at: float | None = None
    finished_at: float = 0.0
    cached_nodes: frozenset[str] = frozenset()
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    from_history: bool = False


ProgressCallback = Callable[[ProgressSnapshot], None]


class PromptTracker:
    """Follows one prompt from queueing to its end."""

    def __init__(self, prompt_id: str, on_progress: ProgressCallback | None = None):
        self.prompt_id = prompt_id
        self.on_progress = on_progress
        self.started_at: float | None = None
        self.current_node: str | None = None
        self.value: int | None = None
        self.max: int | None = None
        self.cached: set[str] = set()
        self.done_nodes: set[str] = set()
        self.outputs: dict[str, dict[str, Any]] = {}
        self._failure: ExecutionFailed | None = None
        self._interrupted: ExecutionInterrupted | None = None
        self._success = False
        self._future: asyncio.Future[PromptOutcome] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._future.done()

    @property
    def running(self) -> bool:
        return self.started_at is not None and not self.done

    async def wait(self) -> PromptOutcome:
        """Wait until the prompt ends; raises what ``fail`` was given if it could not be followed."""
        return await asyncio.shield(self._future)

    def fail(self, error: BaseException) -> None:
        """End tracking with an error (ComfyUI died or became unreachable)."""
        if not self._future.done():
            self._future.set_exception(error)
            # Nobody may be waiting (an abandoned prompt); mark the exception as seen.
            self._future.exception()

    def finish_from_history(self, entry: Mapping[str, Any]) -> bool:
        """Complete from a /history entry; returns False while the prompt has not finished."""
        status = entry.get("status") or {}
        status_str = status.get("status_str")
        if status_str not in ("success", "error"):
            return False
        for message in status.get("messages") or ():
            if not isinstance(message, list | tuple) or len(message) != 2:
                continue
            kind, data = message
            if not isinstance(data, dict):
                continue
            if kind == "execution_error":
                event = parse_message(kind, data)
                if isinstance(event, ExecutionFailed):
                    self._failure = event
            elif kind == "execution_interrupted":
                event = parse_message(kind, data)
                if isinstance(event, ExecutionInterrupted):
                    self._interrupted = event
            elif kind == "execution_cached" and isinstance(data.get("nodes"), list):
                self.cached.update(str(n) for n in data["nodes"])
        outputs = entry.get("outputs")
        if isinstance(outputs, dict):
            self.outputs = {str(k): v for k, v in outputs.items() if isinstance(v, dict)}
        self._success = status_str == "success"
        self._resolve(from_history=True)
        return True

    def feed(self, event: Event) -> None:
        """Apply one WebSocket event addressed to this prompt."""
        if self.done:
            return
        report = False
        if isinstance(event, ExecutionStart):
            self.started_at = time.monotonic()
        elif isinstance(event, ExecutionCached):
            self.cached.update(event.nodes)
            report = bool(event.nodes)
        elif isinstance(event, Executing):
            if event.node is None:
                if event.prompt_id is not None:
                    self._resolve(from_history=False)
                return
            if self.current_node is not None:
                self.done_nodes.add(self.current_node)
            self.current_node, self.value, self.max = event.node, None, None
            report = True
        elif isinstance(event, Progress):
            if event.node is not None:
                self.current_node = event.node
            self.value, self.max = event.value, event.max
            report = True
        elif isinstance(event, Executed):
            self.outputs[event.node] = event.output
        elif isinstance(event, ExecutionSuccess):
            self._success = True
        elif isinstance(event, ExecutionFailed):
            self._failure = event
        elif isinstance(event, ExecutionInterrupted):
            self._interrupted = event
        if report and self.on_progress is not None:
            self.on_progress(
                ProgressSnapshot(self.current_node, self.value, self.max, len(self.done_nodes | self.cached))
            )

    def _resolve(self, *, from_history: bool) -> None:
        if self._future.done():
            return
        status: Literal["success", "error", "interrupted"]
        if self._interrupted is not None:
            status = "interrupted"
        elif self._failure is not None or not self._success:
            status = "error"
        else:
            status = "success"
        self._future.set_result(
            PromptOutcome(
                status=status,
                failure=self._failure,
                interrupted=self._interrupted,
                started_at=self.started_at,
                finished_at=time.monotonic(),
                cached_nodes=frozenset(self.cached),
                outputs=self.outputs,
                from_history=from_history,
            )
        )


class ComfyClient:
    """HTTP + WebSocket client for one ComfyUI server."""

    def __init__(self, base_url: str, *, request_timeout: float = 60.0, unreachable_grace: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._unreachable_grace = unreachable_grace
        self._session: aiohttp.ClientSession | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._trackers: dict[str, PromptTracker] = {}
        self._closing = False
        self.ws_connected = asyncio.Event()
        self.ws_connects = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=16, keepalive_timeout=300)
            )
        return self._session

    def start_listener(self) -> None:
        """Start (or keep) the WebSocket listener task."""
        if self._ws_task is None or self._ws_task.done():
            self._closing = False
            self._ws_task = asyncio.create_task(self._listen(), name="comfy-ws-listener")

    async def close(self) -> None:
        self._closing = True
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ws_task
            self._ws_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- trackers ----------------------------------------------------------------------------------

    def track(self, prompt_id: str, on_progress: ProgressCallback | None = None) -> PromptTracker:
        tracker = PromptTracker(prompt_id, on_progress)
        self._trackers[prompt_id] = tracker
        return tracker

    def forget(self, prompt_id: str) -> None:
        self._trackers.pop(prompt_id, None)

    def fail_all(self, error: BaseException) -> None:
        """Fail every prompt in flight, e.g. when the ComfyUI process died."""
        for tracker in list(self._trackers.values()):
            tracker.fail(error)

    @property
    def in_flight(self) -> list[PromptTracker]:
        return [t for t in self._trackers.values() if not t.done]

    # --- HTTP --------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        try:
            async with self.session.request(method, self.base_url + path, **kwargs) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise ComfyConnectionError(
                f"{method} {path} got no answer within {self._timeout.total:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ComfyConnectionError(f"{method} {path} failed: {exc}") from exc

    async def _ok(self, method: str, path: str, **kwargs: Any) -> None:
        """A request whose answer carries nothing but its status; anything but 200 is an error."""
        status, body = await self._request(method, path, **kwargs)
        if status != 200:
            raise ComfyHTTPError(method, path, status, body.decode("utf-8", "replace"))

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self._request(method, path, **kwargs)
        if status != 200:
            raise ComfyHTTPError(method, path, status, body.decode("utf-8", "replace"))
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ComfyConnectionError(f"{method} {path} returned a body that is not JSON") from exc

    async def system_stats(self, within: float | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if within is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=within)
        result = await self._json("GET", "/system_stats", **kwargs)
        return result if isinstance(result, dict) else {}

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        path = "/object_info" if class_type is None else f"/object_info/{class_type}"
        result = await self._json("GET", path)
        return result if isinstance(result, dict) else {}

    async def queue_prompt(
        self, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any] | None = None
    ) -> QueuedPrompt | RejectedPrompt:
        """POST /prompt. A 400 comes back as RejectedPrompt (12_validation_errors)."""
        payload: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = await self._request(
            "POST", "/prompt", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ComfyHTTPError("POST", "/prompt", status, text) from None
        if status == 200 and isinstance(parsed, dict):
            return QueuedPrompt(
                prompt_id=str(parsed.get("prompt_id", prompt_id)),
                number=int(parsed.get("number", 0)),
                node_errors=parsed.get("node_errors") or {},
            )
        if status == 400 and isinstance(parsed, dict):
            error = parsed.get("error")
            return RejectedPrompt(
                error=error if isinstance(error, dict) else {"message": str(error)},
                node_errors=parsed.get("node_errors") or {},
            )
        raise ComfyHTTPError("POST", "/prompt", status, text)

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The /history entry of one prompt, or None while it is unknown or unfinished (21)."""
        result = await self._json("GET", f"/history/{prompt_id}")
        entry = result.get(prompt_id) if isinstance(result, dict) else None
        return entry if isinstance(entry, dict) else None

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupt this prompt only if it is the one running (18_interrupt_targeted)."""
        await self._ok("POST", "/interrupt", json={"prompt_id": prompt_id})

    async def cancel_job(self, prompt_id: str) -> bool | None:
        """POST /api/jobs/{id}/cancel (ComfyUI from about 0.38): removes the prompt from the queue, or
        interrupts it if it is the one running. Whether it did anything; None when the server has no
        such route (older ComfyUI answers 404 or 405)."""
        status, body = await self._request("POST", f"/api/jobs/{prompt_id}/cancel")
        if status in (404, 405):
            return None
        if status != 200:
            raise ComfyHTTPError(
                "POST", f"/api/jobs/{prompt_id}/cancel", status, body.decode("utf-8", "replace")
            )
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        return bool(answer.get("cancelled")) if isinstance(answer, dict) else None

    async def free_memory(self) -> None:
        """Unload every model and drop the output cache (POST /free). ComfyUI does it between prompts,
        before it runs the next one in its queue."""
        await self._ok("POST", "/free", json={"unload_models": True, "free_memory": True})

    async def queued_prompt_ids(self) -> set[str]:
        """Ids of the prompts running or waiting in ComfyUI's queue (19_queue_delete_clear)."""
        result = await self._json("GET", "/queue")
        ids: set[str] = set()
        if isinstance(result, dict):
            for key in ("queue_running", "queue_pending"):
                for item in result.get(key) or ():
                    if isinstance(item, list) and len(item) > 1:
                        ids.add(str(item[1]))
        return ids

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        """Remove prompts still waiting in the queue (19_queue_delete_clear)."""
        await self._ok("POST", "/queue", json={"delete": prompt_ids})

    async def delete_history(self, prompt_ids: list[str]) -> None:
        """Drop finished prompts from ComfyUI's history so it does not grow (21_history_and_jobs)."""
        await self._ok("POST", "/history", json={"delete": prompt_ids})

    async def upload_input(self, path: Path, name: str, subfolder: str) -> str:
        """Store a local file in ComfyUI's input folder through /upload/image (05_upload_and_invert),
        streamed from disk (aiohttp reads file bodies in a thread).

        Returns the path a loader node uses to refer to it (``subfolder/name``)."""
        file = await in_thread(path.open, "rb")
        try:
            form = aiohttp.FormData()
            form.add_field("image", file, filename=name, content_type="application/octet-stream")
            form.add_field("subfolder", subfolder)
            form.add_field("type", "input")
            form.add_field("overwrite", "true")
            result = await self._json("POST", "/upload/image", data=form)
        finally:
            await in_thread(file.close)
        if not isinstance(result, dict) or "name" not in result:
            raise ComfyConnectionError("POST /upload/image returned no file name")
        stored_sub = str(result.get("subfolder") or "")
        return f"{stored_sub}/{result['name']}" if stored_sub else str(result["name"])

    async def download(self, filename: str, subfolder: str, folder_type: str, dest: Path) -> int:
        """Save an output fetched through /view (20_view_variants) to ``dest``, streamed in pieces
        written off the event loop; returns its size."""
        params = {"filename": filename, "subfolder": subfolder, "type": folder_type}
        try:
            async with self.session.get(self.base_url + "/view", params=params) as response:
                if response.status != 200:
                    body = await response.read()
                    raise ComfyHTTPError("GET", "/view", response.status, body.decode("utf-8", "replace"))
                file = await in_thread(dest.open, "xb")
                size = 0
                try:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        await in_thread(file.write, chunk)
                        size += len(chunk)
                finally:
                    await in_thread(file.close)
                return size
        except TimeoutError as exc:
            raise ComfyConnectionError(f"GET /view got no answer within {self._timeout.total:g} s") from exc
        except aiohttp.ClientError as exc:
            raise ComfyConnectionError(f"GET /view failed: {exc}") from exc

    # --- WebSocket ---------------------------------------------------------------------------------

    def _dispatch(self, event: Event | None) -> None:
        if event is None:
            return
        prompt_id = getattr(event, "prompt_id", None)
        if prompt_id is not None:
            tracker = self._trackers.get(prompt_id)
            if tracker is not None:
                tracker.feed(event)
            return
        if isinstance(event, Executing | Progress):
            # 23_ws_reconnect_mid_run: after a reconnect `executing` names only the node. ComfyUI runs
            # one prompt at a time, so it belongs to the prompt that is running.
            for tracker in self._trackers.values():
                if tracker.running:
                    tracker.feed(event)
                    break

    async def _listen(self) -> None:
        delay = _RECONNECT_FIRST_DELAY
        unreachable_since: float | None = None
        url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        while not self._closing:
            try:
                async with self.session.ws_connect(url, max_msg_size=0, autoping=True) as ws:
                    self.ws_connects += 1
                    self.ws_connected.set()
                    delay = _RECONNECT_FIRST_DELAY
                    unreachable_since = None
                    if self.ws_connects > 1:
                        log.info("WebSocket to ComfyUI reconnected; checking /history for prompts in flight")
                        await self._reconcile()
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._dispatch(parse_text(message.data))
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            self._dispatch(parse_binary(message.data))
                        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("WebSocket to ComfyUI unavailable: %s", exc)
            self.ws_connected.clear()
            if self._closing:
                break
            if self.in_flight:
                log.warning("WebSocket to ComfyUI dropped with %d prompt(s) in flight", len(self.in_flight))
            # Degraded path only: while the socket is down, /history still tells when prompts end.
            reachable = await self._reconcile()
            now = time.monotonic()
            if reachable:
                unreachable_since = None
            else:
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self._unreachable_grace:
                    self.fail_all(
                        ComfyConnectionError(
                            f"ComfyUI at {self.base_url} has not answered for {now - unreachable_since:.0f} s"
                        )
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_DELAY)

    async def _reconcile(self) -> bool:
        """Ask /history about every prompt in flight; returns False if ComfyUI did not answer."""
        for tracker in self.in_flight:
            try:
                entry = await self.history(tracker.prompt_id)
            except ComfyConnectionError:
                return False
            if entry is not None:
                tracker.finish_from_history(entry)
        return True
