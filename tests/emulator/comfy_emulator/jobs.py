"""``/api/jobs`` as far as 19_queue_delete_clear and 21_history_and_jobs show it.

A job is a pending/running queue item or a history entry.  Interrupted prompts are ``failed`` without an
``execution_error``; ``outputs_count`` counts file outputs (``text`` outputs are not counted, 11 -> 0);
``preview_output`` is the first file output with ``nodeId`` and ``mediaType``.
"""

from __future__ import annotations

import copy
from typing import Any

from .prompt_queue import PromptQueue, QueueItem

VALID_STATUSES = ("pending", "in_progress", "completed", "failed")


def _queue_job(item: QueueItem, status: str) -> dict[str, Any]:
    return {
        "id": item.prompt_id,
        "status": status,
        "priority": item.public()[0],
        "create_time": item.extra_data.get("create_time"),
        "outputs_count": 0,
    }


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    count = 0
    preview: dict[str, Any] | None = None
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for media, items in ui.items():
            if not isinstance(items, list):
                continue
            for entry in items:
                if isinstance(entry, dict) and "filename" in entry:
                    count += 1
                    if preview is None:
                        preview = {**entry, "nodeId": node_id, "mediaType": media}
    return count, preview


def _history_job(prompt_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    number, _, _prompt, extra_data, _outputs = entry["prompt"]
    status = entry.get("status") or {}
    messages = status.get("messages", [])
    job: dict[str, Any] = {
        "id": prompt_id,
        "status": "completed" if status.get("status_str") == "success" else "failed",
        "priority": number,
        "create_time": extra_data.get("create_time"),
    }
    start = next((m[1].get("timestamp") for m in messages if m[0] == "execution_start"), None)
    if start is not None:
        job["execution_start_time"] = start
    if messages:
        job["execution_end_time"] = messages[-1][1].get("timestamp")
    error = next((m[1] for m in messages if m[0] == "execution_error"), None)
    if error is not None:
        job["execution_error"] = copy.deepcopy(error)
    count, preview = _outputs_summary(entry.get("outputs", {}))
    job["outputs_count"] = count
    if preview is not None:
        job["preview_output"] = preview
    return job


def all_jobs(queue: PromptQueue) -> list[dict[str, Any]]:
    jobs = [_queue_job(item, "pending") for item in queue.pending_items()]
    jobs += [_queue_job(item, "in_progress") for item in queue.running_items()]
    jobs += [_history_job(pid, entry) for pid, entry in queue.history.items()]
    return jobs


def list_jobs(
    queue: PromptQueue, statuses: list[str] | None, limit: int | None, offset: int, sort_order: str
) -> dict[str, Any]:
    jobs = all_jobs(queue)
    if statuses:
        jobs = [j for j in jobs if j["status"] in statuses]
    jobs.sort(key=lambda j: j.get("create_time") or 0, reverse=sort_order != "asc")
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


def job_detail(queue: PromptQueue, job_id: str) -> dict[str, Any] | None:
    if job_id in queue.history:
        entry = queue.history[job_id]
        job = _history_job(job_id, entry)
        _, _, prompt, extra_data, _ = entry["prompt"]
        job["outputs"] = copy.deepcopy(entry.get("outputs", {}))
        job["execution_status"] = copy.deepcopy(entry.get("status"))
        job["workflow"] = {"prompt": copy.deepcopy(prompt), "extra_data": copy.deepcopy(extra_data)}
        return job
    for item, status in [(i, "pending") for i in queue.pending_items()] + [
        (i, "in_progress") for i in queue.running_items()
    ]:
        if item.prompt_id == job_id:
            job = _queue_job(item, status)
            job["workflow"] = {
                "prompt": copy.deepcopy(item.prompt),
                "extra_data": copy.deepcopy(item.extra_data),
            }
            return job
    return None
