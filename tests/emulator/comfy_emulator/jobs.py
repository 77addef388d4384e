"""``/api/jobs``: 19_queue_delete_clear and 21_history_and_jobs for 0.8.0, the newer jobs module for the
"0.38" profile.

A job is a pending/running queue item or a history entry.  ``outputs_count`` counts file outputs (``text``
outputs are not counted, 11 -> 0); ``preview_output`` is the first previewable file output (an ``output``
one preferred) with ``nodeId`` and ``mediaType``.  Keys whose value is None are left out (ComfyUI's
``prune_dict``).

0.8.0 (``comfy_execution/jobs.py`` of 0.8.0): interrupted prompts are ``failed``; pending/running jobs have
no ``workflow`` even in ``GET /api/jobs/{id}`` (``get_job`` L219-225).

newer (``comfy_execution/jobs.py`` @172be43857, spec section 6): interrupted prompts are ``cancelled``;
``previewable_outputs_count``; pending/running jobs carry ``workflow`` in ``GET /api/jobs/{id}``
(``normalize_queue_item(..., include_workflow=True)``); bare 3D file names in outputs become file entries;
the preview prefers saved media, then other media, then text files, then raw text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .prompt_queue import PromptQueue, QueueItem

STATUSES_080 = ("pending", "in_progress", "completed", "failed")
STATUSES_NEW = ("pending", "in_progress", "completed", "failed", "cancelled")
VALID_STATUSES = STATUSES_080

PREVIEWABLE_080 = frozenset({"images", "video", "audio"})
PREVIEWABLE_NEW = frozenset({"images", "video", "audio", "3d", "text"})
THREE_D_080 = (".obj", ".fbx", ".gltf", ".glb")
THREE_D_NEW = (".obj", ".fbx", ".gltf", ".glb", ".usdz")
TEXT_FILES = (".txt", ".md", ".json")
TEXT_PREVIEW_MAX = 1024


def valid_statuses(newer: bool) -> tuple[str, ...]:
    return STATUSES_NEW if newer else STATUSES_080


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if v is not None}


def _workflow_id(extra_data: dict[str, Any]) -> Any:
    pnginfo = extra_data.get("extra_pnginfo") or {}
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def _queue_job(item: QueueItem, status: str, newer: bool, include_workflow: bool = False) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": item.prompt_id,
        "status": status,
        "priority": item.public()[0],
        "create_time": item.extra_data.get("create_time"),
        "outputs_count": 0,
    }
    if newer:
        job["previewable_outputs_count"] = 0
    job["workflow_id"] = _workflow_id(item.extra_data)
    job = _prune(job)
    if include_workflow:
        job["workflow"] = {
            "prompt": copy.deepcopy(item.prompt),
            "extra_data": copy.deepcopy(item.extra_data),
        }
    return job


def _is_previewable(media: str, item: dict[str, Any], newer: bool) -> bool:
    if media in (PREVIEWABLE_NEW if newer else PREVIEWABLE_080):
        return True
    fmt = str(item.get("format", "") or "")
    if fmt.startswith(("video/", "audio/")):
        return True
    name = str(item.get("filename", "")).lower()
    if name.endswith(THREE_D_NEW if newer else THREE_D_080):
        return True
    return newer and name.endswith(TEXT_FILES)


def _normalize_item(item: Any) -> dict[str, Any] | None:
    """newer: a bare 3D file name becomes a file entry (jobs.py ``normalize_output_item``)."""
    if isinstance(item, str) and item.lower().endswith(THREE_D_NEW):
        return {"filename": item, "type": "output", "subfolder": "", "mediaType": "3d"}
    if isinstance(item, dict):
        return item
    return None


def _summary_080(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    count = 0
    preview: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for media, items in ui.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if preview is None and _is_previewable(media, item, False):
                    entry = {**item, "nodeId": node_id, "mediaType": media}
                    if item.get("type") == "output":
                        preview = entry
                    elif fallback is None:
                        fallback = entry
    return count, preview or fallback


def _summary_new(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None, int]:
    count = 0
    previewable = 0
    preview: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    text_file: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for media, items in ui.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for raw in items:
                item = _normalize_item(raw)
                if item is None:
                    if media == "text" and preview is None and text is None and raw is not None:
                        value = str(raw[0] if isinstance(raw, (list, tuple)) and raw else raw)
                        content: dict[str, Any] = {"content": value[:TEXT_PREVIEW_MAX]}
                        if len(value) > TEXT_PREVIEW_MAX:
                            content["truncated"] = True
                        text = {**content, "nodeId": node_id, "mediaType": media}
                    continue
                count += 1
                if not _is_previewable(media, item, True):
                    continue
                previewable += 1
                if preview is not None:
                    continue
                entry = {**item, "nodeId": node_id}
                entry.setdefault("mediaType", media)
                if media == "text" or str(item.get("filename", "")).lower().endswith(TEXT_FILES):
                    text_file = text_file or entry
                elif item.get("type") == "output":
                    preview = entry
                elif fallback is None:
                    fallback = entry
    return count, preview or fallback or text_file or text, previewable


def _normalize_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            out[node_id] = ui
            continue
        node: dict[str, Any] = {}
        for media, items in ui.items():
            if media == "animated" or not isinstance(items, list):
                node[media] = items
                continue
            node[media] = [(_normalize_item(item) or item) for item in items if item is not None]
        out[node_id] = node
    return out


def _history_job(prompt_id: str, entry: dict[str, Any], newer: bool) -> dict[str, Any]:
    number, _, _prompt, extra_data, _outputs = entry["prompt"]
    status_info = entry.get("status") or {}
    status_str = status_info.get("status_str")
    start = end = error = None
    interrupted = False
    for message in status_info.get("messages", []):
        if not (isinstance(message, (list, tuple)) and len(message) >= 2 and isinstance(message[1], dict)):
            continue
        event, data = message[0], message[1]
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = copy.deepcopy(data)
            elif event == "execution_interrupted":
                interrupted = True
    status = "completed"
    if status_str == "error":
        status = "cancelled" if newer and interrupted else "failed"
    outputs = entry.get("outputs", {})
    job: dict[str, Any] = {
        "id": prompt_id,
        "status": status,
        "priority": number,
        "create_time": extra_data.get("create_time"),
        "execution_start_time": start,
        "execution_end_time": end,
        "execution_error": error,
    }
    if newer:
        count, preview, previewable = _summary_new(outputs)
        job.update(outputs_count=count, previewable_outputs_count=previewable, preview_output=preview)
    else:
        count, preview = _summary_080(outputs)
        job.update(outputs_count=count, preview_output=preview)
    job["workflow_id"] = _workflow_id(extra_data)
    return _prune(job)


def all_jobs(queue: PromptQueue, newer: bool = False) -> list[dict[str, Any]]:
    jobs = [_queue_job(item, "in_progress", newer) for item in queue.running_items()]
    jobs += [_queue_job(item, "pending", newer) for item in queue.pending_items()]
    jobs += [_history_job(pid, entry, newer) for pid, entry in queue.history.items()]
    return jobs


def list_jobs(
    queue: PromptQueue,
    statuses: list[str] | None,
    limit: int | None,
    offset: int,
    sort_order: str,
    *,
    newer: bool = False,
    sort_by: str = "created_at",
    workflow_id: str | None = None,
) -> dict[str, Any]:
    jobs = all_jobs(queue, newer)
    if statuses:
        jobs = [j for j in jobs if j["status"] in statuses]
    if workflow_id:
        jobs = [j for j in jobs if j.get("workflow_id") == workflow_id]
    key: Callable[[dict[str, Any]], Any]
    if sort_by == "execution_duration":

        def key(job: dict[str, Any]) -> Any:
            begin, finish = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
            return finish - begin if begin and finish else 0

    else:

        def key(job: dict[str, Any]) -> Any:
            return job.get("create_time") or 0

    jobs.sort(key=key, reverse=sort_order == "desc")
    total = len(jobs)
    page = jobs[offset:] if limit is None else jobs[offset : offset + limit]
    return {
        "jobs": page,
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(page) < total,
        },
    }


def job_detail(queue: PromptQueue, job_id: str, newer: bool = False) -> dict[str, Any] | None:
    if job_id in queue.history:
        entry = queue.history[job_id]
        job = _history_job(job_id, entry, newer)
        _, _, prompt, extra_data, _ = entry["prompt"]
        outputs = copy.deepcopy(entry.get("outputs", {}))
        job["outputs"] = _normalize_outputs(outputs) if newer else outputs
        job["execution_status"] = copy.deepcopy(entry.get("status"))
        job["workflow"] = {"prompt": copy.deepcopy(prompt), "extra_data": copy.deepcopy(extra_data)}
        return job
    for item in queue.running_items():
        if item.prompt_id == job_id:
            return _queue_job(item, "in_progress", newer, include_workflow=newer)
    for item in queue.pending_items():
        if item.prompt_id == job_id:
            return _queue_job(item, "pending", newer, include_workflow=newer)
    return None
