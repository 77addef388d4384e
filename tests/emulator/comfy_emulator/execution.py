"""Running one prompt: caching, execution order, progress, WebSocket messages, errors and interrupts.

Message order per prompt (03_tiny_image and PROTOCOL.md):
``execution_start, execution_cached, [progress_state, executing, (progress|binary)*, (executed)?,
progress_state]*, execution_success`` -- then the prompt worker files the history, broadcasts ``status``
and sends ``executing {node: null}`` last.

* Cached output nodes (04_cached_rerun) send no ``executing``, re-send ``executed`` with the old ui and a
  ``progress_state`` that marks them finished with integer ``1/1``.
* Node order follows ComfyUI's execution list: output nodes are added in ``outputs_to_execute`` order,
  each with its uncached ancestors (depth first, stack based), and among the ready nodes an output node is
  preferred, then a node feeding an output, then one two hops from an output (08, 09, 25 orders).
* ``executing``/``executed``/``execution_*`` go only to the prompt's client_id; without a client_id only
  the broadcasts remain (14b, 22): ``progress_state``, binary TEXT, and ``execution_interrupted``.
* Interrupts are noticed at the next node start (after its ``executing``) or at the next progress tick
  (17_interrupt_global, 18_interrupt_targeted).

Profile "0.38" (newer ``execution.py`` @04e2a91433 ``execute()`` L439-640, spec section 5): every file
entry of a node's ui gets ``metadata`` (media_info.py; L568) and, with the assets system on, ``id`` /
``preview_id`` (assets.py; L575) in ``executed`` and ``/history``, while the cache keeps the ui without
ids; a cached node's ui goes into ``/history`` whether or not the prompt has a client_id
(``emit_cached_output``).  0.8.0 (execution.py L418-423 of 0.8.0) records a cached node's ui only for
prompts with a client_id.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import random
import signal
import struct
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import media_info
from .assets import AssetRegistry
from .catalog import INPUT_FILE_INPUTS, Catalog
from .config import Settings
from .faults import FaultStore
from .folders import FolderPaths, PlainException
from .hub import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, Hub
from .nodes import REGISTRY, NodeError, generic
from .nodes.base import EXECUTION_FRAMES, V3_FRAMES, run_timed
from .prompt_queue import QueueItem
from .validation import full_type_name
from .values import format_value

log = logging.getLogger("comfy_emulator")
T = TypeVar("T")

OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size to a large number."
)


class InterruptProcessing(Exception):
    pass


class DependencyCycleError(Exception):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


# --------------------------------------------------------------------------- cache
@dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class OutputCache:
    """Node outputs keyed by the node's signature (class, inputs, upstream signatures, file hashes).

    ``classic`` (0.8.0's default) forgets entries the current prompt does not use, so only the previous
    prompt's results survive (18: node "1" cached after 17; 04: identical prompt fully cached).
    ``lru`` (``--cache-lru N``) keeps up to N entries; ``none`` (``--cache-none``) caches nothing.
    ``ram`` (RAM pressure: the newer default, ``--cache-ram`` in 0.8.0) keeps results of all earlier
    prompts and frees them only when free RAM runs below a headroom of gigabytes (newer main.py
    prompt_worker, execution.py L801-812); the emulator's entries are tiny, so it never evicts.
    """

    def __init__(self, mode: str, lru_size: int = 0) -> None:
        self.mode = mode
        self.lru_size = lru_size
        self.entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()
        self.keys: dict[str, Hashable] = {}

    def set_prompt(self, keys: dict[str, Hashable]) -> None:
        self.keys = keys
        if self.mode == "classic":
            used = set(keys.values())
            for key in [k for k in self.entries if k not in used]:
                del self.entries[key]

    def get(self, node_id: str) -> CacheEntry | None:
        if self.mode == "none":
            return None
        key = self.keys.get(node_id)
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is not None and self.mode == "lru":
            self.entries.move_to_end(key)
        return entry

    def set(self, node_id: str, entry: CacheEntry) -> None:
        if self.mode == "none":
            return
        key = self.keys.get(node_id)
        if key is None:
            return
        self.entries[key] = entry
        self.entries.move_to_end(key)
        if self.mode == "lru":
            while len(self.entries) > max(1, self.lru_size):
                self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


def _freeze(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


class Signatures:
    def __init__(self, prompt: dict[str, Any], folders: FolderPaths) -> None:
        self.prompt = prompt
        self.folders = folders
        self.memo: dict[str, Hashable] = {}
        self.active: set[str] = set()

    def of(self, node_id: str) -> Hashable:
        if node_id in self.memo:
            return self.memo[node_id]
        if node_id in self.active or node_id not in self.prompt:
            return ("missing", node_id)
        self.active.add(node_id)
        try:
            node = self.prompt[node_id]
            class_type = node.get("class_type") if isinstance(node, dict) else None
            inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
            if not isinstance(inputs, dict):  # unreachable nodes are not validated by ComfyUI
                inputs = {}
            items: list[tuple[Any, ...]] = []
            for name in sorted(inputs):
                value = inputs[name]
                if is_link(value):
                    items.append((name, "link", self.of(str(value[0])), value[1]))
                else:
                    items.append((name, "value", _freeze(value)))
            sig: Hashable = (str(class_type), self._is_changed(class_type, inputs), tuple(items))
        finally:
            self.active.discard(node_id)
        self.memo[node_id] = sig
        return sig

    def _is_changed(self, class_type: Any, inputs: dict[str, Any]) -> str | None:
        """LoadImage & co. re-run when the file content changes (ComfyUI's IS_CHANGED: sha256)."""
        spec = INPUT_FILE_INPUTS.get(str(class_type))
        if class_type == "LoadImageOutput":
            spec = {"image": (("image",), "")}
        if not spec:
            return None
        digests = []
        for name in spec:
            value = inputs.get(name)
            if not isinstance(value, str):
                continue
            default = self.folders.output_dir if class_type == "LoadImageOutput" else None
            path = self.folders.get_annotated_filepath(value, default)
            try:
                with open(path, "rb") as fh:
                    digests.append(hashlib.sha256(fh.read()).hexdigest())
            except OSError:
                digests.append("missing")
        return ",".join(digests)


# --------------------------------------------------------------------------- execution order
class ExecutionList:
    def __init__(self, prompt: dict[str, Any], catalog: Catalog, is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.catalog = catalog
        self.is_cached = is_cached
        self.pending: dict[str, None] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, None]] = {}

    def _inputs(self, node_id: str) -> dict[str, Any]:
        inputs = self.prompt[node_id].get("inputs", {})
        return inputs if isinstance(inputs, dict) else {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = None
            self.block_count[current] = 0
            self.blocking[current] = {}
            for value in self._inputs(current).values():
                if is_link(value):
                    source = str(value[0])
                    if not self.is_cached(source):
                        stack.append(source)
                    links.append((source, current))
        for source, target in links:
            if not self.is_cached(source):
                self.add_node(source)
                if target not in self.blocking[source]:
                    self.blocking[source][target] = None
                    self.block_count[target] += 1

    def is_empty(self) -> bool:
        return not self.pending

    def _is_output(self, node_id: str) -> bool:
        return self.catalog.is_output_node(self.prompt[node_id]["class_type"])

    def stage(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for n in ready:
            if self._is_output(n):
                return n
        for n in ready:
            if any(self._is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            for b in self.blocking[n]:
                if any(self._is_output(b2) for b2 in self.blocking.get(b, {})):
                    return n
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for target in self.blocking.pop(node_id, {}):
            self.block_count[target] -= 1


# --------------------------------------------------------------------------- progress_state
class ProgressRegistry:
    """``progress_state`` carries every non-pending node of the prompt (03, 15)."""

    def __init__(self, hub: Hub, prompt_id: str, client_id: str | None) -> None:
        self.hub = hub
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str, value: float, maximum: float, state: str) -> dict[str, Any]:
        return {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    def _send(self) -> None:
        self.hub.send(
            "progress_state",
            {"prompt_id": self.prompt_id, "nodes": copy.deepcopy(self.nodes)},
            self.client_id,
        )

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = self._entry(node_id, 0.0, 1.0, "running")
        self._send()

    def update(self, node_id: str, value: int, maximum: int, preview: bytes | None) -> None:
        entry = self.nodes.setdefault(node_id, self._entry(node_id, 0.0, 1.0, "running"))
        entry["value"] = value
        entry["max"] = maximum
        entry["state"] = "running"
        self._send()
        if preview is not None and self.hub.supports_preview_metadata(self.client_id):
            # 27: PREVIEW_IMAGE_WITH_METADATA comes before the matching "progress".
            meta = json.dumps(
                {
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                    "image_type": "image/jpeg",
                }
            ).encode("utf-8")
            self.hub.send_binary(
                PREVIEW_IMAGE_WITH_METADATA, struct.pack(">I", len(meta)) + meta + preview, self.client_id
            )

    def finish(self, node_id: str) -> None:
        entry = self.nodes.get(node_id)
        if entry is None:
            # 04: a cached output node appears as finished with integer value/max.
            self.nodes[node_id] = self._entry(node_id, 1, 1, "finished")
        else:
            entry["state"] = "finished"
            entry["value"] = entry["max"]
        self._send()


# --------------------------------------------------------------------------- node context
class RunContext:
    """What a node implementation sees (``nodes.base.NodeContext``)."""

    def __init__(
        self,
        executor: Executor,
        node_id: str,
        class_type: str,
        prompt_id: str,
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
        progress: ProgressRegistry,
        preview_method: str,
    ) -> None:
        self.executor = executor
        self.node_id = node_id
        self.class_type = class_type
        self.prompt_id = prompt_id
        self.prompt = prompt
        self.extra_data = extra_data
        self.folders = executor.folders
        self.settings = executor.settings
        self._progress = progress
        self.preview_method = preview_method

    def scaled(self, seconds: float) -> float:
        return seconds * self.executor.time_scale()

    async def work(self, seconds: float, fn: Callable[..., T] | None = None, *args: Any) -> T | None:
        return await run_timed(self.scaled(seconds), fn, *args)

    async def progress(self, value: int, total: int, preview: bytes | None = None) -> None:
        self.check_interrupt()
        hub = self.executor.hub
        client_id = self._progress.client_id
        self._progress.update(self.node_id, value, total, preview)
        hub.send(
            "progress",
            {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id},
            client_id,
        )
        if preview is not None and not hub.supports_preview_metadata(client_id):
            # 26: legacy PREVIEW_IMAGE (u32 image type 1 = JPEG) right after "progress".
            hub.send_binary(PREVIEW_IMAGE, struct.pack(">I", 1) + preview, client_id)
        await asyncio.sleep(0)

    def send_text(self, text: str) -> None:
        # 22: binary TEXT frames are broadcast, also for prompts with a client_id.
        self.executor.hub.send_text(self.node_id, text, None)

    def check_interrupt(self) -> None:
        self.executor.check_interrupt()

    def fault(self, key: str, default: Any = None) -> Any:
        return self.executor.faults.value(key, default)


# --------------------------------------------------------------------------- executor
@dataclass
class Outcome:
    success: bool
    history_result: dict[str, Any]
    messages: list[list[Any]]


class Executor:
    def __init__(
        self, hub: Hub, catalog: Catalog, folders: FolderPaths, settings: Settings, faults: FaultStore
    ) -> None:
        self.hub = hub
        self.catalog = catalog
        self.folders = folders
        self.settings = settings
        self.faults = faults
        self.cache = OutputCache(settings.cache_mode, settings.cache_lru)
        # CacheSet's log line (0.8.0 execution.py L109-117; newer execution.py L121-160)
        message = {
            "none": "Disabling intermediate node cache.",
            "ram": "Using RAM pressure cache.",
            "lru": "Using LRU cache",
        }.get(settings.cache_mode)
        if message:
            log.info(message)
        self.interrupt_requested = False
        self.newer = settings.at_least("0.38")
        self.assets: AssetRegistry | None = None  # set by the server when the assets system is on

    # ------------------------------------------------------------------ controls
    def time_scale(self) -> float:
        return self.faults.time_scale(self.settings.time_scale)

    def interrupt(self) -> None:
        self.interrupt_requested = True

    def check_interrupt(self) -> None:
        if self.interrupt_requested:
            self.interrupt_requested = False
            raise InterruptProcessing()

    def reset(self) -> None:
        """POST /free {"free_memory": true} (21): ComfyUI drops its caches."""
        self.cache.clear()

    def _preview_method(self, extra_data: dict[str, Any]) -> str:
        method = extra_data.get("preview_method")
        if method in ("none", "auto", "latent2rgb", "taesd"):
            return str(method)
        return self.settings.preview_method

    # ------------------------------------------------------------------ one prompt
    async def execute(self, item: QueueItem) -> Outcome:
        prompt_id = item.prompt_id
        prompt = item.prompt
        extra_data = {**item.extra_data, **item.sensitive}
        client_id = extra_data.get("client_id")
        self.hub.client_id = client_id
        self.interrupt_requested = False  # a stale /interrupt does not hit the next prompt
        messages: list[list[Any]] = []

        def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": now_ms()}
            messages.append([event, data])
            if client_id is not None or broadcast:
                self.hub.send(event, data, client_id)

        self._arm_ws_faults()
        add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        signatures = Signatures(prompt, self.folders)
        self.cache.set_prompt({node_id: signatures.of(node_id) for node_id in prompt})
        cached_nodes = [node_id for node_id in prompt if self.cache.get(node_id) is not None]
        add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False)

        progress = ProgressRegistry(self.hub, prompt_id, client_id)
        order = list(item.outputs)
        if self.faults.value("output_order") == "random":
            random.shuffle(order)
        exec_list = ExecutionList(prompt, self.catalog, lambda n: self.cache.get(n) is not None)
        for output_id in order:
            exec_list.add_node(output_id)

        results: dict[str, tuple[Any, ...]] = {}
        ui_outputs: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        current_outputs = list(prompt)
        preview_method = self._preview_method(extra_data)
        success = True

        while not exec_list.is_empty():
            try:
                node_id = exec_list.stage()
            except DependencyCycleError as exc:
                node_id = next(iter(exec_list.pending))
                error = {
                    "node_id": node_id,
                    "exception_message": f"{exc}\n",
                    "exception_type": "graph.DependencyCycleError",
                    "traceback": [],
                    "current_inputs": {},
                }
                self._report_error(
                    add_message, prompt_id, prompt, node_id, executed, current_outputs, error, exc
                )
                success = False
                break
            failure = await self._execute_node(
                node_id,
                prompt,
                prompt_id,
                extra_data,
                client_id,
                results,
                ui_outputs,
                executed,
                progress,
                preview_method,
            )
            if failure is not None:
                node_error, node_exc = failure
                self._report_error(
                    add_message, prompt_id, prompt, node_id, executed, current_outputs, node_error, node_exc
                )
                success = False
                break
            exec_list.complete(node_id)
        else:
            add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        self.hub.last_node_id = None
        history_result = {
            "outputs": {k: v["output"] for k, v in ui_outputs.items()},
            "meta": {k: v["meta"] for k, v in ui_outputs.items()},
        }
        return Outcome(success, history_result, messages)

    def _arm_ws_faults(self) -> None:
        faults = self.faults.get()
        types = faults.get("drop_ws_message_types")
        self.hub.drop_types = {str(t) for t in types} if isinstance(types, list) else set()
        count = faults.get("drop_ws_after_messages")
        if isinstance(count, int) and count > 0:
            self.hub.arm_drop(
                count, str(faults.get("drop_ws_mode", "abort")), float(faults.get("refuse_ws_s", 0) or 0)
            )
            self.faults.remove_keys("drop_ws_after_messages")  # one-shot: "during the next prompt"

    def _report_error(
        self,
        add_message: Callable[[str, dict[str, Any], bool], None],
        prompt_id: str,
        prompt: dict[str, Any],
        node_id: str,
        executed: list[str],
        current_outputs: list[str],
        error: dict[str, Any],
        exc: BaseException,
    ) -> None:
        class_type = prompt[node_id]["class_type"]
        if isinstance(exc, InterruptProcessing):
            add_message(
                "execution_interrupted",
                {
                    "prompt_id": prompt_id,
                    "node_id": node_id,
                    "node_type": class_type,
                    "executed": list(executed),
                },
                True,
            )
        else:
            add_message(
                "execution_error",
                {
                    "prompt_id": prompt_id,
                    "node_id": node_id,
                    "node_type": class_type,
                    "executed": list(executed),
                    "exception_message": error["exception_message"],
                    "exception_type": error["exception_type"],
                    "traceback": error["traceback"],
                    "current_inputs": error["current_inputs"],
                    "current_outputs": list(current_outputs),
                },
                False,
            )

    def _gather_inputs(
        self,
        node_id: str,
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
        results: dict[str, tuple[Any, ...]],
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        node = prompt[node_id]
        node_def = self.catalog.raw(node["class_type"])
        values: dict[str, Any] = {}
        listed: dict[str, list[Any]] = {}
        for name, value in node.get("inputs", {}).items():
            _, category, _ = self.catalog.input_spec(node_def, name)
            if category is None:
                continue
            if is_link(value):
                source = str(value[0])
                outputs = results.get(source)
                if outputs is None:
                    cached = self.cache.get(source)  # 04: upstream nodes served from the cache
                    outputs = cached.outputs if cached is not None else None
                if outputs is None or value[1] >= len(outputs):
                    continue
                value = outputs[value[1]]
            values[name] = value
            listed[name] = [value]
        for name, kind in self.catalog.hidden_inputs(node_def).items():
            if kind == "PROMPT":
                hidden: Any = prompt
            elif kind == "EXTRA_PNGINFO":
                hidden = extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                hidden = node_id
            else:
                hidden = extra_data.get(name)
            values[name] = hidden
            listed[name] = [hidden]
        return values, listed

    async def _execute_node(
        self,
        node_id: str,
        prompt: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any],
        client_id: str | None,
        results: dict[str, tuple[Any, ...]],
        ui_outputs: dict[str, dict[str, Any]],
        executed: list[str],
        progress: ProgressRegistry,
        preview_method: str,
    ) -> tuple[dict[str, Any], BaseException] | None:
        class_type = prompt[node_id]["class_type"]
        cached = self.cache.get(node_id)
        if cached is not None:
            # 04_cached_rerun: executed is re-sent with the OLD filename, nothing is written.
            if self.newer:
                self._emit_cached(node_id, cached, prompt_id, client_id, ui_outputs)
            elif client_id is not None:
                output = cached.ui["output"] if cached.ui else None
                self.hub.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": output, "prompt_id": prompt_id},
                    client_id,
                )
                if cached.ui is not None:  # 0.8.0 execution.py L418-423: only with a client_id
                    ui_outputs[node_id] = cached.ui
            progress.finish(node_id)
            results[node_id] = cached.outputs
            return None

        listed: dict[str, list[Any]] | None = None
        try:
            progress.start(node_id)
            values, listed = self._gather_inputs(node_id, prompt, extra_data, results)
            if client_id is not None:
                self.hub.last_node_id = node_id
                self.hub.send(
                    "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, client_id
                )
            await self._node_faults(node_id, class_type)
            self.check_interrupt()
            ctx = RunContext(
                self, node_id, class_type, prompt_id, prompt, extra_data, progress, preview_method
            )
            impl = REGISTRY.get(class_type)
            if impl is not None:
                result = await impl(ctx, values)
            else:
                result = await generic(ctx, values, self.catalog.return_types(class_type))
            await self._slow_node(node_id, class_type)
            ui = result.ui
            entry_ui: dict[str, Any] | None = None
            if ui:
                meta = {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                }
                sent = ui
                if self.newer:
                    # newer L568-579: metadata always; ids only in what is sent and filed, not cached.
                    ui = await asyncio.to_thread(media_info.enrich, ui, self.folders)
                    sent = self.assets.register_outputs(ui) if self.assets is not None else copy.deepcopy(ui)
                entry_ui = {"meta": meta, "output": ui}
                ui_outputs[node_id] = {"meta": meta, "output": sent}
                if client_id is not None:
                    self.hub.send(
                        "executed",
                        {"node": node_id, "display_node": node_id, "output": sent, "prompt_id": prompt_id},
                        client_id,
                    )
            self.cache.set(node_id, CacheEntry(result.outputs, entry_ui))
            results[node_id] = result.outputs
        except InterruptProcessing as exc:
            log.info("Processing interrupted")
            return {"node_id": node_id}, exc
        except Exception as exc:
            return self._error_details(node_id, class_type, exc, listed), exc

        progress.finish(node_id)
        executed.append(node_id)
        return None

    def _emit_cached(
        self,
        node_id: str,
        cached: CacheEntry,
        prompt_id: str,
        client_id: str | None,
        ui_outputs: dict[str, dict[str, Any]],
    ) -> None:
        """newer asset_enrichment.py @228da55822 ``emit_cached_output``: the cached ui goes into the
        history (ids registered again when the assets system is on) and, with a client_id, ``executed``."""
        if node_id in ui_outputs:
            return
        wrapper: dict[str, Any] | None = None
        if cached.ui is not None:
            wrapper = copy.deepcopy(cached.ui)
            output = wrapper.get("output")
            if isinstance(output, dict):
                if self.assets is not None:
                    wrapper["output"] = self.assets.register_outputs(output)
                else:
                    for entries in output.values():
                        for entry in entries if isinstance(entries, list) else []:
                            if isinstance(entry, dict):
                                entry.pop("id", None)
                                entry.pop("preview_id", None)
            ui_outputs[node_id] = wrapper
        if client_id is None:
            return
        self.hub.send(
            "executed",
            {
                "node": node_id,
                "display_node": node_id,
                "output": wrapper.get("output") if wrapper is not None else None,
                "prompt_id": prompt_id,
            },
            client_id,
        )

    def _error_details(
        self, node_id: str, class_type: str, exc: Exception, listed: dict[str, list[Any]] | None
    ) -> dict[str, Any]:
        formatted: dict[str, list[Any]] = {}
        if listed is not None:
            for name, values in listed.items():
                formatted[name] = [format_value(v) for v in values]
        tips = ""
        if isinstance(exc, NodeError):
            type_name = exc.type_name
            message = exc.message
            frames = list(EXECUTION_FRAMES) + list(exc.frames)
            if exc.type_name.endswith("OutOfMemoryError"):
                tips = OOM_TIPS
        elif isinstance(exc, PlainException):
            type_name = "Exception"
            message = str(exc)
            frames = list(EXECUTION_FRAMES) + list(exc.frames)
        else:
            type_name = full_type_name(exc)
            message = str(exc)
            frames = list(EXECUTION_FRAMES)
            if self.catalog.is_v3(class_type):
                frames += V3_FRAMES
            frames += traceback.format_tb(exc.__traceback__)[-2:]
        log.error("!!! Exception during processing !!! %s", message)
        log.error("Traceback (most recent call last):\n%s%s: %s", "".join(frames), type_name, message)
        return {
            "node_id": node_id,
            "exception_message": f"{message}\n{tips}",
            "exception_type": type_name,
            "traceback": frames,
            "current_inputs": formatted,
        }

    # ------------------------------------------------------------------ node faults
    async def _node_faults(self, node_id: str, class_type: str) -> None:
        faults = self.faults
        if faults.matches_node("crash", node_id, class_type):
            await self._crash()
        if faults.matches_node("hang_event_loop", node_id, class_type):
            await self.hub.drain(1.0)
            log.warning("[emulator] fault: blocking the whole process in node %s (%s)", node_id, class_type)
            duration = faults.value("hang_event_loop_s")
            deadline = time.monotonic() + (float(duration) if isinstance(duration, (int, float)) else 10**9)
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # noqa: ASYNC251 - blocks the loop
        if faults.matches_node("hang", node_id, class_type):
            log.warning(
                "[emulator] fault: node %s (%s) hangs forever, ignoring interrupts", node_id, class_type
            )
            await asyncio.Event().wait()
        error = self._configured_error(node_id, class_type)
        if error is not None:
            raise error

    def _configured_error(self, node_id: str, class_type: str) -> NodeError | None:
        if self.faults.matches_node("oom", node_id, class_type):
            return NodeError(
                "torch.OutOfMemoryError",
                "Allocation on device ",
                [
                    '  File "/opt/ComfyUI/comfy/model_management.py", line 1181, in cast_to\n'
                    "    r = torch.empty_like(weight, dtype=dtype, device=device)\n"
                ],
            )
        table = self.faults.value("raise_on_class")
        if isinstance(table, dict) and class_type in table:
            spec = table[class_type]
            if isinstance(spec, str):
                spec = {"message": spec}
            if isinstance(spec, dict):
                return NodeError(
                    str(spec.get("type", "RuntimeError")), str(spec.get("message", "emulated failure"))
                )
        return None

    async def _slow_node(self, node_id: str, class_type: str) -> None:
        """``node_delay_s`` ({class: s}, "*" for all) and ``node_delay_on_node`` ({node_id: s})."""
        total = 0.0
        by_class = self.faults.value("node_delay_s")
        if isinstance(by_class, dict):
            delay = by_class.get(class_type, by_class.get("*"))
            if isinstance(delay, (int, float)) and delay > 0:
                total += float(delay)
        by_node = self.faults.value("node_delay_on_node")
        if isinstance(by_node, dict):
            delay = by_node.get(node_id)
            if isinstance(delay, (int, float)) and delay > 0:
                total += float(delay)
        if total > 0:
            await asyncio.sleep(total)

    async def _crash(self) -> None:
        faults = self.faults
        code = faults.value("crash_exit_code", 137)
        sig = faults.value("crash_signal")
        if faults.value("crash_once"):
            faults.remove_keys("crash_on_class", "crash_on_node", "crash_once")
        await self.hub.drain(1.0)
        message = faults.value("crash_message")
        if isinstance(message, str) and message:
            sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
        if isinstance(sig, str) and hasattr(signal, sig):
            os.kill(os.getpid(), getattr(signal, sig))
            await asyncio.sleep(1)
        os._exit(int(code) if isinstance(code, int) else 137)
