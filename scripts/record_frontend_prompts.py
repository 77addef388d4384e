#!/usr/bin/env python3
"""Record what ComfyUI's own web frontend turns UI-format ("editor") workflows into.

A developer tool, not run in CI: it needs a running ComfyUI and a Chromium. Its output is checked
in as test fixtures (``tests/fixtures/frontend_prompts/``), the ground truth for our Python
converter of UI-format workflows; rerun it by hand when fixture workflows are added or the pinned
versions move.

For each workflow file it loads the workflow into the ComfyUI page the way the editor does when a
user opens a saved file (``app.loadGraphData(workflow, true, true, fileName)``, as the frontend's
``handleFile`` does; dialogs and toasts that an earlier load left open are closed first, through the
frontend's own stores), waits two animation frames and ``--settle-ms``, then calls
``app.graphToPrompt()``, *without queueing anything*, and saves its ``output`` (the API-format prompt
the frontend would POST to ``/prompt``) as ``OUT/<stem>.json``, ``json.dumps(indent=1,
sort_keys=True)``::

    {"source": "<package or folder>/<file name>", "comfyui_version": ..., "frontend_version": ...,
     "templates_version": ..., "recorded_at": "<ISO-8601 UTC with ms: the browser's Date.now()
     just before graphToPrompt>", "prompt": {...}, "console_errors": [...]}

``source`` names the folder above ``templates/`` for a template package's file
(``comfyui_workflow_templates_media_image/templates/x.json`` gives
``comfyui_workflow_templates_media_image/x.json``), else the file's own folder. ``comfyui_version`` and
``templates_version`` come from the server's ``/system_stats`` (``installed_templates_version`` is
what ComfyUI reads from its venv's package metadata), ``frontend_version`` from the page
(``window.__COMFYUI_FRONTEND_VERSION__``). ``console_errors``: the page's ``console.error`` calls,
uncaught exceptions and non-network error log entries (stack frames dropped) from the start of the
load until the page's requests have settled after ``graphToPrompt``. Resources that failed to load
(a template's missing input image, an unreachable model URL) are left out of the record and only
counted in the summary; but the missing-models dialog logs ``Error fetching file size`` with
console.error when it cannot reach the model's URL, so offline recordings carry that error.

If the frontend itself fails (``loadGraphData`` or ``graphToPrompt`` throws, or the prompt is empty)
the workflow counts as failed and gets no record, unless ``--record-failures`` writes one with
``"prompt": null`` and ``"error"``. The exit status is 1 when any workflow failed.

Nothing is queued: the script watches the page's requests and fails a workflow whose load POSTs to
``/prompt``. Seed widgets' "control after generate" runs only when queueing, so seeds are recorded
as saved. Two kinds of value are not deterministic; the summary lists the workflows that hold them:
``{a|b}`` choices in dynamic-prompt text widgets (the frontend picks with ``Math.random``) and
``%date:...%`` in ``filename_prefix`` (the browser's clock; the browser runs in UTC, so
``recorded_at`` dates them).

Workflows that use a node class the server lacks are skipped and listed with the missing classes,
unless ``--include-unknown``. Present count: ``/object_info``'s classes (or ``--object-info FILE``'s),
the frontend-only ``PrimitiveNode``, ``Reroute``, ``Note`` and ``MarkdownNote``, the workflow's subgraph
ids, and its legacy group nodes ``workflow>NAME`` from ``extra.groupNodes`` (whose inner nodes are
checked instead).

By default one page serves all workflows; each load starts from a cleaned graph (the frontend's
``clean`` option), and the script warns if the loaded graph does not have exactly the workflow's
nodes and subgraphs. ``--reload-each`` opens the page afresh for every workflow (slower; both modes
gave identical prompts for the 205 templates). After a failure the next workflow gets a fresh page.

Recorded with ComfyUI 0.8.0 (commit 3cd7b32) on the CPU (torch 2.14.1), comfyui-frontend-package
1.35.9, comfyui-workflow-templates 0.7.67 and Debian's Chromium 156.

Start ComfyUI 0.8.0 for it, in a Python 3.11 venv with torch 2.14.1, torchvision 0.29.1,
torchaudio 2.11.0, ``requests`` and ComfyUI 0.8.0's ``requirements.txt``::

    S=/tmp/comfy-scratch; mkdir -p $S/input $S/output $S/temp $S/user
    cd /path/to/ComfyUI-0.8.0 && /path/to/venv/bin/python main.py --cpu --listen 127.0.0.1 \\
        --port 8288 --input-directory $S/input --output-directory $S/output \\
        --temp-directory $S/temp --user-directory $S/user \\
        --database-url sqlite:///$S/user/comfyui.db
    curl -s http://127.0.0.1:8288/system_stats   # "comfyui_version": "0.8.0"

Then run this script with the worker's venv (it needs only aiohttp). It starts Chromium
(``apt-get install chromium``) headless with a fresh profile, drives it over the DevTools protocol,
and stops it at the end::

    .venv/bin/python scripts/record_frontend_prompts.py --comfy-url http://127.0.0.1:8288 \\
        --out OUT_DIR WORKFLOW.json ...
    .venv/bin/python scripts/record_frontend_prompts.py --comfy-url http://127.0.0.1:8288 \\
        --out tests/fixtures/frontend_prompts/templates \\
        --from-dir .../comfyui_workflow_templates_media_image/templates --from-dir ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

LOG = logging.getLogger("record_frontend_prompts")

# Node types that only the frontend knows: they never reach the prompt.
FRONTEND_ONLY_TYPES = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})
# JSON files in template folders that are not workflows.
NOT_WORKFLOW_NAMES = re.compile(r"^(index.*|fuse_options)\.json$")
# `{a|b}` choice (the frontend picks one with Math.random when it serializes the widget).
DYNAMIC_CHOICE = re.compile(r"\{[^}]*\|")
DATE_REPLACEMENT = "%date:"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-dev-shm-usage",
    "--lang=en-US",
    "--window-size=1920,1080",
    "--remote-debugging-port=0",
)

# True once the editor is usable: the app and its canvas exist, the node definitions are
# registered, and the start-up workflow (restored or default) has been opened.
READY_JS = """(() => {
  const a = window.app;
  return Boolean(a && a.graph && a.canvas && window.LiteGraph
    && LiteGraph.registered_node_types && ('KSampler' in LiteGraph.registered_node_types)
    && a.extensionManager && a.extensionManager.workflow
    && a.extensionManager.workflow.activeWorkflow);
})()"""

# Hooks the page's toast and dialog stores (Pinia `$onAction`) so that each load's toasts and dialogs
# can be told apart; `reset` closes what an earlier load left open, through the stores, no clicks.
HOOKS_JS = """(() => {
  if (!window.__recorder) {
    const toast = app.extensionManager.toast;
    const dialogStore = toast._p && toast._p._s.get('dialog');
    const rec = window.__recorder = { toasts: [], dialogs: [], toast, dialogStore };
    toast.$onAction(({ name, args }) => {
      if (name === 'addAlert') rec.toasts.push(`Alert: ${args[0]}`);
      else if (name === 'add') rec.toasts.push(`${args[0].summary || ''}: ${args[0].detail || ''}`);
    });
    if (dialogStore) dialogStore.$onAction(({ name, args }) => {
      if (name === 'showDialog' || name === 'showExtensionDialog')
        rec.dialogs.push(String(args[0].key || args[0].title || '(untitled)'));
    });
    rec.reset = () => {
      rec.toast.removeAll();
      const stack = rec.dialogStore ? rec.dialogStore.dialogStack : [];
      while (stack.length) rec.dialogStore.closeDialog({ key: stack[0].key });
      rec.toasts = [];
      rec.dialogs = [];
    };
  }
  return Boolean(window.__recorder.dialogStore);
})()"""

# Loads one workflow as the editor does for a file the user opens, lets the page settle (two
# animation frames, as a user would before clicking anything, plus `settleMs`), then converts it.
# The result goes back as a JSON string: JSON.stringify is also how the frontend sends the prompt.
RECORD_JS = """(async (workflow, fileName, settleMs) => {
  const frames = () => new Promise((resolve) => {
    let done = false;
    const finish = () => { if (!done) { done = true; resolve(); } };
    requestAnimationFrame(() => requestAnimationFrame(finish));
    setTimeout(finish, 1000);
  });
  window.__recorder.reset();
  await new Promise((resolve) => setTimeout(resolve, 50));
  let stage = 'loadGraphData';
  let t = Date.now();
  let p = null;
  let error = null;
  try {
    await app.loadGraphData(workflow, true, true, fileName);
    await frames();
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    stage = 'graphToPrompt';
    t = Date.now();
    p = await app.graphToPrompt();
  } catch (e) {
    error = `${stage} threw ${e && e.name ? `${e.name}: ${e.message}` : String(e)}`;
  }
  return JSON.stringify({
    recordedAt: new Date(t).toISOString(),
    error,
    output: p ? p.output : null,
    workflow: p ? p.workflow : null,
    frontendVersion: window.__COMFYUI_FRONTEND_VERSION__
      || (p && p.workflow.extra && p.workflow.extra.frontendVersion) || null,
    rootNodes: app.rootGraph.nodes.length,
    rootSubgraphs: app.rootGraph.subgraphs.size,
    dialogs: window.__recorder.dialogs,
    toasts: window.__recorder.toasts,
  });
})"""


class RecorderError(RuntimeError):
    """A workflow could not be recorded, or the browser could not be driven."""


# --------------------------------------------------------------------------------------------
# Workflow files


@dataclass
class WorkflowFile:
    path: Path
    source: str
    data: dict[str, Any]


def source_name(path: Path) -> str:
    """`<package>/<name>` for a file in `<package>/templates/`, else `<folder>/<name>`."""
    parent = path.resolve().parent
    owner = parent.parent.name if parent.name == "templates" else parent.name
    return f"{owner}/{path.name}"


def subgraph_definitions(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    definitions = workflow.get("definitions") or {}
    subgraphs = definitions.get("subgraphs") or []
    return [s for s in subgraphs if isinstance(s, dict)]


def all_nodes(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node, top level and inside subgraph definitions, with where it lives."""
    for node in workflow.get("nodes") or []:
        yield "", node
    for subgraph in subgraph_definitions(workflow):
        for node in subgraph.get("nodes") or []:
            yield f"subgraph {subgraph.get('name') or subgraph.get('id')}: ", node


def group_node_definitions(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Legacy group nodes (`extra.groupNodes`), by the node types that use them: `workflow>name`
    (and the older `workflow/name`, which the frontend rewrites on load)."""
    groups = (workflow.get("extra") or {}).get("groupNodes") or {}
    if not isinstance(groups, dict):
        return {}
    return {
        f"workflow{sep}{name}": group
        for name, group in groups.items()
        if isinstance(group, dict)
        for sep in (">", "/")
    }


def missing_classes(workflow: dict[str, Any], known: set[str]) -> list[str]:
    """Node classes the server lacks, counting the insides of the group nodes that are used."""
    groups = group_node_definitions(workflow)
    present = known | FRONTEND_ONLY_TYPES | {str(s.get("id")) for s in subgraph_definitions(workflow)}
    used = {str(node.get("type")) for _, node in all_nodes(workflow)}
    pending, seen = [t for t in used if t in groups], set[str]()
    while pending:
        group_type = pending.pop()
        if group_type in seen:
            continue
        seen.add(group_type)
        inner = {
            str(node.get("type")) for node in groups[group_type].get("nodes") or [] if isinstance(node, dict)
        }
        used |= inner
        pending += [t for t in inner if t in groups]
    return sorted(used - present - groups.keys())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def nondeterministic_values(workflow: dict[str, Any]) -> list[str]:
    """Widget values the frontend resolves with Math.random (`{a|b}`) or the clock (`%date:`)."""
    found: list[str] = []
    for where, node in all_nodes(workflow):
        for text in _strings(node.get("widgets_values")):
            kinds = [
                k
                for k, hit in (("{|}", DYNAMIC_CHOICE.search(text)), ("%date:", DATE_REPLACEMENT in text))
                if hit
            ]
            if kinds:
                shown = text if len(text) <= 80 else text[:77] + "..."
                found.append(
                    f"{where}node {node.get('id')} {node.get('type')} [{','.join(kinds)}]: {shown!r}"
                )
    return found


def collect_workflow_files(paths: Iterable[Path], dirs: Iterable[Path]) -> list[Path]:
    files = list(paths)
    for directory in dirs:
        if not directory.is_dir():
            LOG.warning("%s is not a folder", directory)
        files.extend(
            p
            for p in sorted(directory.glob("*.json"))
            if p.is_file() and not NOT_WORKFLOW_NAMES.match(p.name)
        )
    return files


def load_workflow(path: Path) -> WorkflowFile:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise RecorderError("not a UI-format workflow (no 'nodes' list)")
    return WorkflowFile(path=path, source=source_name(path), data=data)


def widget_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Nodes whose type or widget values differ between the file and the frontend's own serialization."""

    def index(workflow: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(where, str(node.get("id"))): node for where, node in all_nodes(workflow)}

    old, new = index(before), index(after)
    changes = [f"{where}node {nid} dropped" for where, nid in old.keys() - new.keys()]
    changes += [
        f"{where}node {nid} added ({new[where, nid].get('type')})" for where, nid in new.keys() - old.keys()
    ]
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        label = f"{key[0]}node {key[1]} {a.get('type')}"
        if a.get("type") != b.get("type"):
            changes.append(f"{label}: type -> {b.get('type')}")
        va, vb = a.get("widgets_values"), b.get("widgets_values")
        if va != vb and not (va in (None, [], {}) and vb in (None, [], {})):
            changes.append(f"{label}: widgets_values {_values_change(va, vb)}")
    return sorted(changes)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_change(a: Any, b: Any) -> str:
    if isinstance(a, str) and isinstance(b, str):
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        start = max(0, at - 20)
        return f"text differs at {at}: {a[start : at + 40]!r} -> {b[start : at + 40]!r}"
    return f"{_short(a)} -> {_short(b)}"


def _values_change(a: Any, b: Any) -> str:
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return "; ".join(
            f"[{i}] {_value_change(x, y)}" for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y
        )
    if isinstance(a, list) and isinstance(b, list):
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        tail_a = ", ".join(_short(x, 40) for x in a[at:])
        tail_b = ", ".join(_short(x, 40) for x in b[at:])
        return f"{len(a)} -> {len(b)} values, from [{at}]: [{tail_a}] -> [{tail_b}]"
    return f"{_short(a, 200)} -> {_short(b, 200)}"


# --------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol


def _without_stack(text: str) -> str:
    """An error's message without its stack frames (positions in the minified bundle)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("    at ")).strip()


def _remote_value(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return _without_stack(str(obj.get("description") or obj.get("unserializableValue") or obj.get("type")))


@dataclass
class PageEvents:
    """What the page reported while a workflow was loaded and converted."""

    console_errors: list[str] = field(default_factory=list)
    network_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class CdpPage:
    """One page target, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events = PageEvents()
        self._inflight: dict[str, str] = {}
        self._last_network_change = time.monotonic()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                else:
                    self._on_event(data.get("method", ""), data.get("params") or {})
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(RecorderError("DevTools connection closed"))
            self._pending.clear()

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(_remote_value(arg) for arg in params.get("args") or [])
            self.events.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            exception = details.get("exception") or {}
            text = exception.get("description") or details.get("text") or "exception"
            self.events.console_errors.append(f"uncaught: {_without_stack(text)}")
        elif method == "Log.entryAdded":
            entry = params.get("entry") or {}
            if entry.get("level") == "error":
                url = f" ({entry['url']})" if entry.get("url") else ""
                text = f"log.{entry.get('source')}: {entry.get('text')}{url}"
                # A resource that failed to load (a missing input image, an unreachable model URL)
                # says nothing about the frontend itself, and its URL may carry a random cache buster.
                if entry.get("source") == "network":
                    self.events.network_errors.append(text)
                else:
                    self.events.console_errors.append(text)
        elif method == "Network.requestWillBeSent":
            request = params.get("request") or {}
            if request.get("method", "GET") != "GET":
                self.events.requests.append(f"{request.get('method')} {request.get('url')}")
            url = str(request.get("url"))
            if url.startswith(("http:", "https:")):  # blob: and data: loads may never report an end
                self._inflight[str(params.get("requestId"))] = url[:200]
                self._last_network_change = time.monotonic()
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            self._inflight.pop(str(params.get("requestId")), None)
            self._last_network_change = time.monotonic()

    async def network_idle(self, quiet_s: float = 0.3, limit_s: float = 15) -> bool:
        """Waits until no request has been in flight for `quiet_s`; False if that took over `limit_s`."""
        deadline = time.monotonic() + limit_s
        while self._inflight or time.monotonic() - self._last_network_change < quiet_s:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def inflight(self) -> list[str]:
        return sorted(self._inflight.values())

    def take_events(self) -> PageEvents:
        events, self.events = self.events, PageEvents()
        return events

    async def call(
        self, method: str, params: dict[str, Any] | None = None, limit_s: float = 60
    ) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        try:
            reply = await asyncio.wait_for(future, limit_s)
        finally:
            self._pending.pop(call_id, None)
        if "error" in reply:
            raise RecorderError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result") or {}
        return result

    async def evaluate(self, expression: str, limit_s: float = 60) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            limit_s=limit_s + 5,
        )
        details = result.get("exceptionDetails")
        if details:
            exception = details.get("exception") or {}
            raise RecorderError(
                str(exception.get("description") or details.get("text") or "evaluation failed")
            )
        return (result.get("result") or {}).get("value")

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _stop_chromium(proc: asyncio.subprocess.Process, browser_ws: str | None) -> None:
    """Closes Chromium and every process it started (Debian's /usr/bin/chromium is a shell wrapper)."""
    if browser_ws is not None and proc.returncode is None:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with aiohttp.ClientSession() as session, session.ws_connect(browser_ws) as ws:
                await ws.send_str(json.dumps({"id": 1, "method": "Browser.close"}))
                await asyncio.wait_for(ws.receive(), 5)
    # The wrapper runs in a session of its own, so its process group holds the whole browser.
    pgid = proc.pid
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.2)
            elif not _group_alive(pgid):
                return
            else:
                await asyncio.sleep(0.2)
    LOG.warning("Chromium (process group %d) did not stop", pgid)


@contextlib.asynccontextmanager
async def chromium_page(session: aiohttp.ClientSession, chromium: str) -> AsyncIterator[CdpPage]:
    """A fresh headless Chromium (own profile, UTC clock) and one page target of it."""
    profile = Path(tempfile.mkdtemp(prefix="record-frontend-chromium-"))
    env = {**os.environ, "TZ": "UTC"}
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    page: CdpPage | None = None
    browser_ws: str | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RecorderError(f"Chromium did not start ({chromium}, exit code {proc.returncode})")
            await asyncio.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        base = f"http://127.0.0.1:{port}"
        async with session.get(f"{base}/json/version") as resp:
            browser = await resp.json()
        browser_ws = browser["webSocketDebuggerUrl"]
        async with session.put(f"{base}/json/new?about:blank") as resp:
            target = await resp.json()
        LOG.info("Chromium %s, DevTools on port %d", browser["Browser"], port)
        ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0, heartbeat=None)
        page = CdpPage(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})
        yield page
    finally:
        if page is not None:
            await page.close()
        await _stop_chromium(proc, browser_ws)
        shutil.rmtree(profile, ignore_errors=True)


async def open_editor(page: CdpPage, comfy_url: str, limit_s: float) -> list[str]:
    """Navigates to the ComfyUI page and waits until the editor is ready; returns its load errors."""
    page.take_events()
    await page.call("Page.navigate", {"url": comfy_url})
    deadline = time.monotonic() + limit_s
    while not await page.evaluate(READY_JS):
        if time.monotonic() > deadline:
            raise RecorderError(f"the ComfyUI page at {comfy_url} was not ready after {limit_s:.0f}s")
        await asyncio.sleep(0.25)
    # Let the start-up work that follows the first workflow (tabs, template browser) finish.
    await asyncio.sleep(1.5)
    await page.network_idle()
    if not await page.evaluate(HOOKS_JS):
        LOG.warning("no dialog store found: dialogs of one load may stay open into the next")
    return page.take_events().console_errors


# --------------------------------------------------------------------------------------------
# Recording


@dataclass
class Outcome:
    source: str
    stem: str
    error: str | None = None
    console_errors: list[str] = field(default_factory=list)
    network_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    toasts: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nondeterministic: list[str] = field(default_factory=list)


@dataclass
class Versions:
    comfyui: str
    templates: str | None


async def server_versions(session: aiohttp.ClientSession, comfy_url: str) -> Versions:
    async with session.get(f"{comfy_url}/system_stats") as resp:
        resp.raise_for_status()
        stats = (await resp.json())["system"]
    return Versions(comfyui=str(stats["comfyui_version"]), templates=stats.get("installed_templates_version"))


async def server_node_classes(session: aiohttp.ClientSession, comfy_url: str) -> set[str]:
    async with session.get(f"{comfy_url}/object_info") as resp:
        resp.raise_for_status()
        return set(await resp.json())


def write_record(out_dir: Path, stem: str, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    (out_dir / f"{stem}.json").write_text(text, encoding="utf-8")


async def record_one(
    page: CdpPage,
    wf: WorkflowFile,
    versions: Versions,
    out_dir: Path,
    settle_ms: int,
    limit_s: float,
    record_failures: bool,
) -> Outcome:
    stem = wf.path.stem
    outcome = Outcome(source=wf.source, stem=stem, nondeterministic=nondeterministic_values(wf.data))
    await page.network_idle()
    page.take_events()
    expression = f"({RECORD_JS})({json.dumps(wf.data)}, {json.dumps(stem)}, {settle_ms})"
    try:
        raw = await page.evaluate(expression, limit_s=limit_s)
        # Let what the load started (the missing-model dialog's size checks, image previews) finish,
        # so that its errors land in this workflow's record and not in the next one's.
        if not await page.network_idle():
            LOG.warning("%s: requests still in flight after 15s: %s", wf.source, page.inflight())
    except (RecorderError, TimeoutError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        raw = None
    events = page.take_events()
    outcome.console_errors = events.console_errors
    outcome.network_errors = events.network_errors
    outcome.requests = events.requests
    if any(re.search(r"/prompt(\?|$)", r) for r in events.requests if r.startswith("POST ")):
        outcome.error = "the page queued a prompt"
    if outcome.error is not None:
        return outcome
    result = json.loads(raw)
    outcome.dialogs, outcome.toasts = result["dialogs"], result["toasts"]
    if result["workflow"] is not None:
        outcome.changes = widget_changes(wf.data, result["workflow"])
    expected_nodes, expected_subgraphs = len(wf.data["nodes"]), len(subgraph_definitions(wf.data))
    if (result["rootNodes"], result["rootSubgraphs"]) != (expected_nodes, expected_subgraphs):
        outcome.warnings.append(
            f"graph has {result['rootNodes']} nodes / {result['rootSubgraphs']} subgraphs after loading, "
            f"file has {expected_nodes} / {expected_subgraphs}"
        )
    frontend_error: str | None = result["error"]
    if frontend_error is None and not result["output"]:
        frontend_error = "graphToPrompt returned an empty prompt"
    if frontend_error is not None:
        outcome.error = f"the frontend failed: {frontend_error}"
    record = {
        "source": wf.source,
        "comfyui_version": versions.comfyui,
        "frontend_version": result["frontendVersion"],
        "templates_version": versions.templates,
        "recorded_at": result["recordedAt"],
        "prompt": result["output"],
        "console_errors": outcome.console_errors,
    }
    if outcome.error is None:
        write_record(out_dir, stem, record)
    elif record_failures:
        write_record(out_dir, stem, {**record, "prompt": None, "error": frontend_error})
        outcome.error += " (recorded)"
    return outcome


@dataclass
class RunResult:
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


async def record_all(args: argparse.Namespace, files: list[Path]) -> RunResult:
    run = RunResult()
    comfy_url = args.comfy_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        versions = await server_versions(session, comfy_url)
        known = set(json.loads(args.object_info.read_text())) if args.object_info else None
        if known is None:
            known = await server_node_classes(session, comfy_url)
        LOG.info(
            "ComfyUI %s, templates %s, %d node classes", versions.comfyui, versions.templates, len(known)
        )

        workflows: list[WorkflowFile] = []
        stems: dict[str, Path] = {}
        for path in files:
            try:
                wf = load_workflow(path)
            except (OSError, ValueError, RecorderError) as exc:
                run.skipped.append((str(path), str(exc)))
                continue
            missing = missing_classes(wf.data, known)
            if missing and not args.include_unknown:
                run.skipped.append((wf.source, "unknown node classes: " + ", ".join(missing)))
                continue
            if (args.out / f"{path.stem}.json").resolve() == path.resolve():
                raise RecorderError(f"--out would overwrite the workflow {path} with its record")
            if path.stem in stems:
                raise RecorderError(
                    f"two workflows would write {path.stem}.json: {stems[path.stem]} and {path}"
                )
            stems[path.stem] = path
            workflows.append(wf)
        if not workflows:
            return run

        args.out.mkdir(parents=True, exist_ok=True)
        async with chromium_page(session, args.chromium) as page:
            fresh = True
            for number, wf in enumerate(workflows, 1):
                if fresh or args.reload_each:
                    errors = await open_editor(page, comfy_url, args.page_timeout)
                    run.page_errors.extend(e for e in errors if e not in run.page_errors)
                    fresh = False
                started = time.monotonic()
                outcome = await record_one(
                    page, wf, versions, args.out, args.settle_ms, args.timeout, args.record_failures
                )
                run.outcomes.append(outcome)
                LOG.info(
                    "[%d/%d] %s: %s (%.1fs, %d console errors)",
                    number,
                    len(workflows),
                    wf.source,
                    outcome.error or "recorded",
                    time.monotonic() - started,
                    len(outcome.console_errors),
                )
                # After a failure the page may be in any state: start the next workflow on a fresh one.
                fresh = outcome.error is not None
    return run


# --------------------------------------------------------------------------------------------
# Command line


def _per_workflow(outcomes: list[Outcome], attr: str, title: str, limit: int = 10) -> list[str]:
    hits = [o for o in outcomes if getattr(o, attr)]
    lines = [f"{title}: {len(hits)} workflows" + (":" if hits else "")]
    for o in hits:
        items: list[str] = getattr(o, attr)
        lines.append(f"  {o.source} ({len(items)})")
        lines += [f"    {item[:300]}" for item in items[:limit]]
        if len(items) > limit:
            lines.append(f"    ... {len(items) - limit} more")
    return lines


def summary_lines(run: RunResult) -> list[str]:
    recorded = [o for o in run.outcomes if o.error is None]
    failed = [o for o in run.outcomes if o.error is not None]
    lines = [f"recorded {len(recorded)}, failed {len(failed)}, skipped {len(run.skipped)}"]
    for o in failed:
        lines.append(f"  FAILED {o.source}: {o.error}")
    if run.skipped:
        lines.append("skipped:")
        lines += [f"  {source}: {reason}" for source, reason in run.skipped]
    if run.page_errors:
        lines.append("console errors while opening the page (not in any record):")
        lines += [f"  {e[:300]}" for e in run.page_errors]
    lines += _per_workflow(run.outcomes, "console_errors", "console errors (saved in the records)")
    lines += _per_workflow(run.outcomes, "warnings", "load warnings")
    lines += _per_workflow(run.outcomes, "nondeterministic", "values with {a|b} choices or %date:")
    lines += _per_workflow(run.outcomes, "changes", "node types / widget values the frontend changed on load")
    lines += _per_workflow(run.outcomes, "toasts", "toasts after loading")
    dialogs: dict[str, list[str]] = {}
    for o in run.outcomes:
        for title in sorted(set(o.dialogs)):
            dialogs.setdefault(title, []).append(o.stem)
    lines.append(f"dialogs shown while loading: {len(dialogs)} kinds" + (":" if dialogs else ""))
    for title, stems in sorted(dialogs.items()):
        shown = (
            ", ".join(stems) if len(stems) <= 12 else ", ".join(stems[:12]) + f", ... {len(stems) - 12} more"
        )
        lines.append(f"  {title!r}: {len(stems)} workflows: {shown}")
    # Posts and uploads that loading made (HEAD requests are the missing-model dialog's size checks).
    posts = [o for o in run.outcomes if any(not r.startswith("HEAD ") for r in o.requests)]
    lines.append(f"non-GET requests other than HEAD: {len(posts)} workflows" + (":" if posts else ""))
    for o in posts:
        lines.append(f"  {o.source}: " + "; ".join(r for r in o.requests if not r.startswith("HEAD ")))
    failed_loads = [o for o in run.outcomes if o.network_errors]
    lines.append(f"resources that failed to load (not in the records): {len(failed_loads)} workflows")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workflows", nargs="*", type=Path, help="UI-format workflow JSON files")
    parser.add_argument(
        "--from-dir", action="append", type=Path, default=[], help="record every *.json in DIR"
    )
    parser.add_argument("--comfy-url", required=True, help="a running ComfyUI, e.g. http://127.0.0.1:8288")
    parser.add_argument("--out", required=True, type=Path, help="folder for the <stem>.json records")
    parser.add_argument(
        "--chromium", default="/usr/bin/chromium", help="Chromium binary (default: %(default)s)"
    )
    parser.add_argument(
        "--object-info", type=Path, help="check node classes against this file, not the server"
    )
    parser.add_argument(
        "--include-unknown", action="store_true", help="record workflows with unknown classes"
    )
    parser.add_argument(
        "--record-failures",
        action="store_true",
        help='also write a record ("prompt": null, "error": ...) when the frontend fails on a workflow',
    )
    parser.add_argument("--reload-each", action="store_true", help="open the page afresh for every workflow")
    parser.add_argument(
        "--settle-ms", type=int, default=300, help="wait after loading (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds per workflow (default: %(default)s)"
    )
    parser.add_argument("--page-timeout", type=float, default=180, help="seconds for the page to get ready")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    if not args.workflows and not args.from_dir:
        parser.error("give WORKFLOW.json files or --from-dir DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    files = collect_workflow_files(args.workflows, args.from_dir)
    if not files:
        LOG.warning("no workflow files found; nothing to record")
        return 0
    try:
        run = asyncio.run(record_all(args, files))
    except (RecorderError, aiohttp.ClientError, OSError) as exc:
        LOG.error("%s", exc)
        return 2
    for line in summary_lines(run):
        print(line)  # noqa: T201 - the summary is this tool's output
    if args.summary_json:
        summary = {
            "outcomes": [vars(o) for o in run.outcomes],
            "skipped": run.skipped,
            "page_errors": run.page_errors,
        }
        args.summary_json.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 1 if any(o.error for o in run.outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
