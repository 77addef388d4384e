"""aiohttp application: the HTTP routes and the WebSocket of ComfyUI 0.8.0 as recorded.

Every route is also served under ``/api`` (01_meta_endpoints: ``/api/system_stats``).  Bodies, status
codes and content types follow the transcripts named next to each handler.  Where the "0.38" profile
differs, the handler cites the newer ``server.py`` @002c3fb9a5 (research notes, spec sections 1, 6, 10).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_request import FileField
from PIL import Image

from .assets import AssetRegistry
from .catalog import Catalog
from .config import Settings
from .execution import Executor, Outcome
from .faults import FaultStore
from .folders import FolderPaths, content_type_for
from .hub import SERVER_FEATURES, Hub
from .jobs import job_detail, list_jobs, valid_statuses
from .prompt_queue import PromptQueue
from .validation import Validator

log = logging.getLogger("comfy_emulator")

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
INDEX_HTML = (
    '<!doctype html><html lang="en"><head><meta charset="UTF-8"><title>ComfyUI</title></head>'
    "<body><p>ComfyUI emulator (test double of ComfyUI 0.8.0). There is no frontend here.</p></body></html>"
)
DOWNLOAD_ONLY_TYPES = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}
# newer folder_paths.py @1df2885ebd DANGEROUS_CONTENT_TYPES (plus any */xml or *+xml type)
DANGEROUS_TYPES = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "text/css",
    "image/svg+xml",
    "application/xml",
    "text/xml",
    "message/rfc822",
}
INVALID_PROMPT_ID = {
    "type": "invalid_prompt_id",
    "message": "prompt_id must be a valid UUID",
    "details": (
        "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the "
        "server generate one"
    ),
    "extra_info": {},
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _memory() -> tuple[int, int]:
    total = free = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                value = int(rest.strip().split()[0]) * 1024
                if key == "MemTotal":
                    total = value
                elif key == "MemAvailable":
                    free = value
    except (OSError, ValueError, IndexError):
        total, free = 16 * 1024**3, 8 * 1024**3
    return total, free


def is_canonical_uuid(value: Any) -> bool:
    """newer comfy_execution/jobs.py @172be43857 validate_job_id: a str equal to str(uuid.UUID(it))."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _is_dangerous(content_type: str) -> bool:
    normalized = content_type.split(";", 1)[0].strip().lower()
    return normalized in DANGEROUS_TYPES or normalized.endswith(("+xml", "/xml"))


def _route_value(table: Any, path: str) -> Any:
    """Fault tables keyed by route: ``"/history"`` also matches ``/history/<id>`` and ``/api/history``;
    a key spelled with ``/api`` (``"/api/jobs"``, the only spelling of that route in ComfyUI) matches the
    ``/api/...`` requests below it."""
    if not isinstance(table, dict):
        return None
    stripped = path[4:] if path.startswith("/api/") else path
    best: str | None = None
    for key in table:
        if not isinstance(key, str):
            continue
        prefix = key.rstrip("/") + "/"
        matches = any(p == key or p.startswith(prefix) for p in (path, stripped))
        if matches and (best is None or len(key) > len(best)):
            best = key
    return table[best] if best is not None else None


class EmulatorServer:
    def __init__(self, settings: Settings, folders: FolderPaths, faults: FaultStore) -> None:
        self.settings = settings
        self.folders = folders
        self.faults = faults
        self.newer = settings.at_least("0.38")
        self.version = settings.profile.version if settings.profile is not None else "0.8.0"
        self.hub = Hub()
        self.catalog = Catalog(folders, disable_api_nodes=settings.disable_api_nodes)
        self.validator = Validator(self.catalog, folders, newer=self.newer)
        self.queue = PromptQueue(self._queue_updated)
        self.executor = Executor(self.hub, self.catalog, folders, settings, faults)
        self.assets = AssetRegistry(folders) if settings.assets_enabled else None
        self.executor.assets = self.assets
        self.number = 0
        self.app = self._build_app()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ app
    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_upload_size, middlewares=[self._fault_middleware]
        )
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self.websocket),
            ("GET", "/", self.index),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("GET", "/extensions", self.extensions),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_node),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.interrupt),
            ("POST", "/free", self.free),
            ("GET", "/jobs", self.jobs),
            ("GET", "/jobs/{job_id}", self.job),
            # newer server.py L911-983; 0.8.0 has only the two GET routes above (L704, L802), so these
            # POSTs are 404 (and POST /api/jobs/cancel 405, aiohttp's answer for the GET-only route).
            *(
                [
                    ("POST", "/jobs/{job_id}/cancel", self.cancel_job),
                    ("POST", "/jobs/cancel", self.cancel_jobs),
                ]
                if self.newer
                else []
            ),
            ("GET", "/settings", self.settings_route),
            ("GET", "/users", self.users),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + (path if path != "/" else ""), handler)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.hub.publisher()))
        self._tasks.append(loop.create_task(self.prompt_worker()))

    async def _on_cleanup(self, _app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = self.faults.get()
        path = request.path
        delay = _route_value(faults.get("route_delay_s"), path)
        if isinstance(delay, (int, float)) and delay > 0:
            await asyncio.sleep(float(delay))
        status = _route_value(faults.get("route_status"), path)
        if isinstance(status, int):
            return web.Response(status=status, text=f"emulator fault: forced status {status} for {path}")
        cors = self.settings.cors_origin
        if cors and request.method == "OPTIONS":
            response: web.StreamResponse = web.Response()
        else:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                # 01_meta_endpoints: unknown routes answer 404 with an empty octet-stream body
                response = web.Response(
                    status=404, body=b"", headers={"Content-Type": "application/octet-stream"}
                )
        if cors:
            response.headers["Access-Control-Allow-Origin"] = cors
            response.headers["Access-Control-Allow-Methods"] = "POST, GET, DELETE, PUT, OPTIONS, PATCH"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    def _queue_updated(self) -> None:
        self.hub.send("status", {"status": self.queue.queue_info()})

    # ------------------------------------------------------------------ prompt worker
    async def prompt_worker(self) -> None:
        """One prompt at a time, in queue order (PROTOCOL: status(put) status(get) execution_start ...
        execution_success status(0) executing(null))."""
        while True:
            await self.queue.wait_for_flag_or_item()
            self._process_flags()
            if not self.queue.pending_items():
                continue
            task_id, item = await self.queue.get()
            started = time.perf_counter()
            try:
                outcome = await self.executor.execute(item)
            except Exception as exc:  # an emulator bug must not stop the queue
                log.exception("[emulator] internal error while executing %s", item.prompt_id)
                outcome = Outcome(
                    False,
                    {"outputs": {}, "meta": {}},
                    [
                        [
                            "execution_error",
                            {
                                "prompt_id": item.prompt_id,
                                "exception_message": str(exc),
                                "exception_type": type(exc).__name__,
                                "timestamp": int(time.time() * 1000),
                            },
                        ]
                    ],
                )
            status = {
                "status_str": "success" if outcome.success else "error",
                "completed": outcome.success,
                "messages": outcome.messages,
            }
            self.queue.task_done(task_id, outcome.history_result, status)
            client_id = item.extra_data.get("client_id")
            if client_id is not None:
                self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, client_id)
            self.hub.disarm_drop()  # drop_ws_after_messages counts the prompt's messages up to here
            log.info("Prompt executed in %.2f seconds", time.perf_counter() - started)
            pause = self.faults.value("gc_pause_s")
            if isinstance(pause, (int, float)) and pause > 0:
                gc.collect()
                time.sleep(float(pause))  # noqa: ASYNC251 - emulates ComfyUI's blocking gc.collect() between prompts
            self._process_flags()

    def _process_flags(self) -> None:
        flags = self.queue.take_flags()
        if flags.get("free_memory"):
            self.executor.reset()
            log.info("[emulator] caches cleared (POST /free)")

    # ------------------------------------------------------------------ websocket
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """02_ws_handshake / 23_ws_reconnect_mid_run."""
        if self.hub.refusing():
            return web.Response(status=503, text="emulator fault: websocket refused")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        # Same clientId again: the new socket replaces the old one (one socket per sid); no clientId:
        # a server-made hex sid (02_ws_handshake).
        sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
        self.hub.sockets[sid] = ws
        self.hub.requests[sid] = request
        self.hub.metadata[sid] = {"feature_flags": {}}
        try:
            # status first, with the sid; then, on reconnect of the running prompt's client, the current
            # node as {"node": id} without prompt_id (23).
            await ws.send_str(
                json.dumps({"type": "status", "data": {"status": self.queue.queue_info(), "sid": sid}})
            )
            if self.hub.client_id == sid and self.hub.last_node_id is not None:
                await ws.send_str(json.dumps({"type": "executing", "data": {"node": self.hub.last_node_id}}))
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    log.warning("ws connection closed with exception %s", ws.exception())
                elif msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                        if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                            flags = data.get("data", {})
                            self.hub.metadata[sid]["feature_flags"] = flags if isinstance(flags, dict) else {}
                            await ws.send_str(
                                json.dumps({"type": "feature_flags", "data": self.server_features()})
                            )
                        first = False
                    except json.JSONDecodeError:
                        log.warning("Invalid JSON received from client %s: %s", sid, msg.data)
        finally:
            # Real ComfyUI pops the sid unconditionally, even if a newer socket took it over meanwhile.
            self.hub.sockets.pop(sid, None)
            self.hub.requests.pop(sid, None)
            self.hub.metadata.pop(sid, None)
        return ws

    # ------------------------------------------------------------------ simple GETs (01_meta_endpoints)
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=INDEX_HTML,
            content_type="text/html",
            headers={"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"},
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        names = self.folders.get_filename_list("embeddings")
        return web.json_response([os.path.splitext(n)[0] for n in names])

    async def models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.folders.folder_names())

    async def models_folder(self, request: web.Request) -> web.StreamResponse:
        folder = request.match_info.get("folder", "")
        if folder not in self.folders.folders:
            return web.Response(status=404)
        return web.json_response(self.folders.get_filename_list(folder))

    async def extensions(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([])

    def server_features(self) -> dict[str, Any]:
        """01_meta_endpoints for 0.8.0.  newer comfy_api/feature_flags.py @1924b05ec8: plus
        supports_model_type_tags, node_replacements, assets (main.py sets it to the assets state), and the
        --feature-flag values, which cannot replace these core keys."""
        if not self.newer:
            return dict(SERVER_FEATURES)
        max_upload = self.settings.max_upload_size_mb
        core: dict[str, Any] = {
            "supports_preview_metadata": True,
            "supports_model_type_tags": True,
            "max_upload_size": max_upload * 1024 * 1024,
            "extension": {"manager": {"supports_v4": True}},
            "node_replacements": True,
            "assets": self.settings.assets_enabled,
        }
        extra = {k: v for k, v in self.settings.feature_flags.items() if k not in core}
        return {**core, **extra}

    async def features(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.server_features())

    async def settings_route(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def users(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"storage": "server", "migrated": True})

    def _devices(self, ram_total: int, ram_free: int) -> list[dict[str, Any]]:
        if self.settings.cpu:
            return [
                {
                    "name": "cpu",
                    "type": "cpu",
                    "index": None,
                    "vram_total": ram_total,
                    "vram_free": ram_free,
                    "torch_vram_total": ram_total,
                    "torch_vram_free": ram_free,
                }
            ]
        count = 1
        if self.newer:
            # newer server.py L626-677: one entry per torch device, primary first.  Fault gpu_count
            # emulates a machine with several GPUs (0.8.0 reports the primary device only).
            wanted = self.faults.value("gpu_count", 1)
            count = max(1, int(wanted)) if isinstance(wanted, int) else 1
        vram = 24 * 1024**3
        return [
            {
                "name": f"cuda:{index} NVIDIA GeForce RTX 4090 (emulated) : cudaMallocAsync",
                "type": "cuda",
                "index": index,
                "vram_total": vram,
                "vram_free": vram - (512 * 1024**2 if index == 0 else 0),
                "torch_vram_total": 0,
                "torch_vram_free": 0,
            }
            for index in range(count)
        ]

    async def system_stats(self, request: web.Request) -> web.StreamResponse:
        delay = self.faults.value("slow_system_stats_s")
        if isinstance(delay, (int, float)) and delay > 0:
            await asyncio.sleep(float(delay))
        ram_total, ram_free = _memory()
        packages = self.settings.profile.packages if self.settings.profile is not None else {}
        frontend = packages.get("comfyui-frontend-package", "1.35.9")
        templates = packages.get("comfyui-workflow-templates", "0.7.67")
        system: dict[str, Any] = {
            "os": "linux" if sys.platform.startswith("linux") else sys.platform,
            "ram_total": ram_total,
            "ram_free": ram_free,
            "comfyui_version": self.version,
            "required_frontend_version": frontend,
            "installed_templates_version": templates,
            "required_templates_version": templates,
        }
        if self.newer:
            # newer server.py L626-677: every comfy* package of requirements.txt with installed/required
            # versions (FrontendManager.get_comfy_package_versions, read in the index without a path).
            system["comfy_package_versions"] = [
                {"name": name, "installed": pinned, "required": pinned} for name, pinned in packages.items()
            ]
        system.update(
            {
                "python_version": sys.version,
                "pytorch_version": "2.14.1+cu130",
                "embedded_python": False,
            }
        )
        if self.newer:
            # get_deploy_environment: first line of <base>/.comfy_environment, default "local-git"
            system["deploy_environment"] = self._deploy_environment()
        system["argv"] = self.settings.argv
        body = {"system": system, "devices": self._devices(ram_total, ram_free)}
        return web.json_response(body)

    def _deploy_environment(self) -> str:
        try:
            with open(os.path.join(self.folders.base_dir, ".comfy_environment"), encoding="utf-8") as fh:
                line = fh.readline(128).strip()
        except OSError:
            return "local-git"
        value = "".join(c for c in line if 32 <= ord(c) < 127)
        return value or "local-git"

    # ------------------------------------------------------------------ object_info
    async def object_info(self, request: web.Request) -> web.StreamResponse:
        delay = self.faults.value("slow_object_info_s")
        if isinstance(delay, (int, float)) and delay > 0:
            await asyncio.sleep(float(delay))
        return web.json_response(self.catalog.all_defs())

    async def object_info_node(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("node_class", "")
        if name in self.catalog:
            return web.json_response({name: self.catalog.node_def(name)})
        return web.json_response({})

    # ------------------------------------------------------------------ prompt
    async def get_prompt(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.queue.queue_info())

    async def post_prompt(self, request: web.Request) -> web.StreamResponse:
        """12/13/19/24.  Invalid JSON or a non-dict prompt -> aiohttp's plain 500 (12)."""
        log.info("got prompt")
        json_data = await request.json()
        if "number" in json_data:
            number: float = float(json_data["number"])
        else:
            number = self.number
            if json_data.get("front"):
                number = -number
            self.number += 1

        if "prompt" not in json_data:
            no_prompt = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": no_prompt, "node_errors": {}}, status=400)

        record_to = self.faults.value("record_prompts_to")
        if isinstance(record_to, str) and record_to:
            # Test switch (not ComfyUI behaviour): keep every POST /prompt body, sensitive keys included,
            # so tests can check what a client sent that ComfyUI itself never shows back.
            with Path(record_to).open("a", encoding="utf-8") as fh:  # noqa: ASYNC230 - a test switch
                fh.write(json.dumps(json_data) + "\n")
        prompt = json_data["prompt"]
        if self.newer:
            # newer server.py L1030-1045: absent or null -> a new uuid4; anything but a canonical
            # lowercase hyphenated UUID string -> 400 invalid_prompt_id.
            client_prompt_id = json_data.get("prompt_id")
            if client_prompt_id is None:
                prompt_id = str(uuid.uuid4())
            elif is_canonical_uuid(client_prompt_id):
                prompt_id = client_prompt_id
            else:
                return web.json_response({"error": INVALID_PROMPT_ID, "node_errors": {}}, status=400)
        else:
            prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))  # 0.8.0 L872: anything, as str
        # newer L1050 node_replace_manager.apply_replacements: the emulator knows no replacements.
        partial = json_data.get("partial_execution_targets")
        valid, error, outputs, node_errors = self.validator.validate_prompt(prompt, partial)
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if self.newer and "comfy_usage_source" not in extra_data:
            usage_source = request.headers.get("Comfy-Usage-Source")  # newer L1058-1061
            if usage_source:
                extra_data["comfy_usage_source"] = usage_source
        if not valid:
            log.warning("invalid prompt: %s", error)
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        sensitive = {k: extra_data.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
        extra_data["create_time"] = int(time.time() * 1000)
        await self.queue.put(number, prompt_id, prompt, extra_data, outputs, sensitive)
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    # ------------------------------------------------------------------ queue / interrupt / history
    async def get_queue(self, request: web.Request) -> web.StreamResponse:
        running, pending = self.queue.current_queue()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.StreamResponse:
        """19: {"delete": [ids]} removes pending prompts (running: no effect), {"clear": true} empties."""
        json_data = await request.json()
        if json_data.get("clear"):
            self.queue.wipe()
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                self.queue.delete_pending(prompt_id)
        return web.Response(status=200)

    async def interrupt(self, request: web.Request) -> web.StreamResponse:
        """17: no body -> global; 18: {"prompt_id": x} only if x is running."""
        try:
            json_data = await request.json()
        except (json.JSONDecodeError, ValueError):
            json_data = {}
        prompt_id = json_data.get("prompt_id") if isinstance(json_data, dict) else None
        if prompt_id:
            if any(item.prompt_id == prompt_id for item in self.queue.running_items()):
                log.info("Interrupting prompt %s", prompt_id)
                self.executor.interrupt()
            else:
                log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
        else:
            log.info("Global interrupt (no prompt_id specified)")
            self.executor.interrupt()
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.StreamResponse:
        json_data = await request.json()
        unload = json_data.get("unload_models", False)
        free_memory = json_data.get("free_memory", False)
        if unload:
            self.queue.set_flag("unload_models", unload)
        if free_memory:
            self.queue.set_flag("free_memory", free_memory)
        if (unload or free_memory) and self.faults.value("oom_until_free"):
            # The memory that ran out is back: the out-of-memory fault ends (README, fault switches).
            self.faults.remove_keys("oom_on_class", "oom_on_node", "oom_until_free")
            log.info("[emulator] memory freed: the out-of-memory fault is over")
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query.get("offset", -1))
        return web.json_response(self.queue.get_history(max_items=max_items, offset=offset))

    async def get_history_item(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.queue.get_history(prompt_id=request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.StreamResponse:
        json_data = await request.json()
        if json_data.get("clear"):
            self.queue.wipe_history()
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                self.queue.delete_history(prompt_id)
        return web.Response(status=200)

    # ------------------------------------------------------------------ jobs (19, 21)
    async def jobs(self, request: web.Request) -> web.StreamResponse:
        """Parameter checks of GET /api/jobs (0.8.0 server.py L704-800; unchanged in newer L761-857)."""
        query = request.rel_url.query
        statuses: list[str] | None = None
        allowed = valid_statuses(self.newer)
        if query.get("status"):
            statuses = [s.strip().lower() for s in query["status"].split(",") if s.strip()]
            bad = [s for s in statuses if s not in allowed]
            if bad:
                valid = ", ".join(allowed)
                return web.json_response(
                    {"error": f"Invalid status value(s): {', '.join(bad)}. Valid values: {valid}"}, status=400
                )
        sort_by = query.get("sort_by", "created_at").lower()
        sort_order = query.get("sort_order", "desc").lower()
        if sort_by not in ("created_at", "execution_duration"):
            return web.json_response(
                {"error": "sort_by must be 'created_at' or 'execution_duration'"}, status=400
            )
        if sort_order not in ("asc", "desc"):
            return web.json_response({"error": "sort_order must be 'asc' or 'desc'"}, status=400)
        limit: int | None = None
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                return web.json_response({"error": "limit must be an integer"}, status=400)
            if limit <= 0:
                return web.json_response({"error": "limit must be a positive integer"}, status=400)
        offset = 0
        if "offset" in query:
            try:
                offset = max(0, int(query["offset"]))
            except ValueError:
                return web.json_response({"error": "offset must be an integer"}, status=400)
        return web.json_response(
            list_jobs(
                self.queue,
                statuses,
                limit,
                offset,
                sort_order,
                newer=self.newer,
                sort_by=sort_by,
                workflow_id=query.get("workflow_id"),
            )
        )

    async def job(self, request: web.Request) -> web.StreamResponse:
        detail = job_detail(self.queue, request.match_info["job_id"], newer=self.newer)
        if detail is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(detail)

    def interrupt_if_running(self, prompt_id: str) -> bool:
        """newer execution.py PromptQueue.interrupt_if_running (L1380): interrupt only if that prompt is
        still the running one, checked and signalled in one step (one event loop: no gap)."""
        if any(item.prompt_id == prompt_id for item in self.queue.running_items()):
            self.executor.interrupt()
            return True
        return False

    def _cancel(self, job_id: str) -> bool:
        """newer server.py _cancel_job_by_id (L884-909) + jobs.cancel_job: running -> interrupt, pending ->
        removed from the queue (no history entry), finished or unknown -> nothing."""
        if any(item.prompt_id == job_id for item in self.queue.running_items()):
            log.info("Cancelling running prompt %s", job_id)
            return self.interrupt_if_running(job_id)
        if any(item.prompt_id == job_id for item in self.queue.pending_items()):
            log.info("Cancelling pending prompt %s", job_id)
            return self.queue.delete_pending(job_id) or self.interrupt_if_running(job_id)
        return False

    async def cancel_job(self, request: web.Request) -> web.StreamResponse:
        """POST /api/jobs/{job_id}/cancel -> 200 {"cancelled": bool} for any id (newer L911-927)."""
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def cancel_jobs(self, request: web.Request) -> web.StreamResponse:
        """POST /api/jobs/cancel {"job_ids": [...]} (newer L929-983): every id must be a canonical UUID."""
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "Request body must be valid JSON"}, status=400)
        job_ids = json_data.get("job_ids") if isinstance(json_data, dict) else None
        if not isinstance(job_ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        invalid = [j if isinstance(j, str) else repr(j) for j in job_ids if not is_canonical_uuid(j)]
        if invalid:
            return web.json_response(
                {"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, status=400
            )
        cancelled = False
        for job_id in job_ids:
            if self._cancel(job_id):
                cancelled = True
        return web.json_response({"cancelled": cancelled})

    # ------------------------------------------------------------------ files
    async def upload_image(self, request: web.Request) -> web.StreamResponse:
        """05_upload_and_invert: overwrite, dedupe by hash, ``name (1).png``, subfolder, 400 on traversal."""
        post = await request.post()
        image = post.get("image")
        upload_type = post.get("type")
        kind = str(upload_type) if upload_type is not None else "input"
        directory = self.folders.directory_by_type(kind)
        if directory is None:
            raise ValueError(f"unknown upload type {kind!r}")  # ComfyUI fails with a 500 here as well
        if not isinstance(image, FileField) or not image.file:
            return web.Response(status=400)
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        overwrite = post.get("overwrite")
        data = image.file.read()
        stored = await asyncio.to_thread(
            self._store_upload,
            directory,
            subfolder,
            filename,
            data,
            overwrite is not None and str(overwrite) in ("true", "1"),
        )
        if stored is None:
            return web.Response(status=400)
        response: dict[str, Any] = {"name": stored, "subfolder": subfolder, "type": kind}
        if self.assets is not None:
            # newer server.py image_upload: the registered asset, also for a duplicate upload
            response["asset"] = await asyncio.to_thread(
                self.assets.register_upload, os.path.join(directory, subfolder, stored), stored, kind
            )
        return web.json_response(response)

    def _store_upload(
        self, directory: str, subfolder: str, filename: str, data: bytes, overwrite: bool
    ) -> str | None:
        folder = os.path.join(directory, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((directory, filepath)) != directory:
            return None
        if self.faults.value("disk_full"):
            # disk_full fault: an unhandled OSError, which aiohttp turns into its plain 500.
            raise OSError(28, "No space left on device")
        os.makedirs(folder, exist_ok=True)
        if not overwrite:
            stem, ext = os.path.splitext(filename)
            counter = 1
            digest = hashlib.sha256(data).digest()
            while os.path.exists(filepath):
                with open(filepath, "rb") as fh:
                    if hashlib.sha256(fh.read()).digest() == digest:
                        return filename  # same bytes under this name: nothing written (05)
                filename = f"{stem} ({counter}){ext}"
                filepath = os.path.join(folder, filename)
                counter += 1
        with open(filepath, "wb") as fh:
            fh.write(data)
        return filename

    async def view(self, request: web.Request) -> web.StreamResponse:
        """20_view_variants: 404 missing/no filename, 400 ``..``/unknown type, 403 subfolder traversal."""
        return await asyncio.to_thread(
            self._view, dict(request.rel_url.query), request.headers.get("Sec-Fetch-Dest")
        )

    def _view(self, query: dict[str, str], fetch_dest: str | None = None) -> web.StreamResponse:
        if "filename" not in query:
            return web.Response(status=404)
        if self.newer and query["filename"].startswith("blake3:"):
            # newer server.py view_image: an asset hash names an uploaded file (404 with assets off)
            found = self.assets.path_for_hash(query["filename"]) if self.assets is not None else None
            if found is None:
                return web.Response(status=404)
            return self._file_response(found, os.path.basename(found), fetch_dest)
        filename, output_dir = self.folders.annotated_filepath(query["filename"])
        if not filename:
            return web.Response(status=400)
        if filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        if output_dir is None:
            output_dir = self.folders.directory_by_type(query.get("type", "output"))
        if output_dir is None:
            return web.Response(status=400)
        if "subfolder" in query:
            full = os.path.join(output_dir, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full), output_dir)) != output_dir:
                return web.Response(status=403)
            output_dir = full
        filename = os.path.basename(filename)
        path = os.path.join(output_dir, filename)
        if not os.path.isfile(path):
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            info = query["preview"].split(";")
            fmt = info[0]
            if fmt not in ("webp", "jpeg") or "a" in query.get("channel", ""):
                fmt = "webp"
            quality = int(info[-1]) if info[-1].isdigit() else 90
            with Image.open(path) as img:
                out = img.convert("RGB") if fmt == "jpeg" or query.get("channel", "") == "rgb" else img.copy()
            buf = io.BytesIO()
            out.save(buf, format=fmt, quality=quality)
            return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
        channel = query.get("channel", "rgba")
        if channel == "rgb":
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            buf = io.BytesIO()
            rgb.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        if channel == "a":
            with Image.open(path) as img:
                alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
                size = img.size
            out_img = Image.new("RGBA", size)
            out_img.putalpha(alpha)
            buf = io.BytesIO()
            out_img.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        if self.newer:
            return self._file_response(path, filename, fetch_dest)
        content_type = content_type_for(filename) or "application/octet-stream"
        if content_type in DOWNLOAD_ONLY_TYPES:
            content_type = "application/octet-stream"
        return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})

    def _file_response(self, path: str, filename: str, fetch_dest: str | None) -> web.StreamResponse:
        """newer server.py view_image: ``X-Content-Type-Options: nosniff`` on every file; dangerous types
        (HTML, JS, CSS, XML, SVG, message/rfc822) as an octet-stream attachment, except an SVG that an
        <img> asks for (``Sec-Fetch-Dest: image``), and then not cacheable across destinations."""
        content_type = content_type_for(filename) or "application/octet-stream"
        safe = filename.replace("\\", "\\\\").replace('"', '\\"')
        disposition = f'filename="{safe}"'
        headers = {"X-Content-Type-Options": "nosniff"}
        if _is_dangerous(content_type):
            headers["Vary"] = "Sec-Fetch-Dest"
            headers["Cache-Control"] = "no-store"
            svg_for_img = (
                fetch_dest == "image" and content_type.split(";")[0].strip().lower() == "image/svg+xml"
            )
            if not svg_for_img:
                content_type = "application/octet-stream"
                disposition = f'attachment; filename="{safe}"'
        headers["Content-Disposition"] = disposition
        headers["Content-Type"] = content_type
        return web.FileResponse(path, headers=headers)
