"""The prompt queue and the history, with ComfyUI's observable semantics.

* Pending prompts live in a binary heap ordered by ``number`` (then prompt_id), and GET /queue returns the
  raw heap list, not a sorted list (19_queue_delete_clear: pending ``[-36, 35, 34]``).
* ``status`` is broadcast on put, on get (both with the same count, 03) and on task_done / delete / clear.
  ``queue_remaining`` counts pending + running.
* Items are ``(number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)``; the 6th element
  (secret extra_data keys) never leaves the server.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000


@dataclass(order=True)
class QueueItem:
    number: float
    prompt_id: str
    seq: int
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)
    sensitive: dict[str, Any] = field(compare=False, default_factory=dict)

    def public(self) -> list[Any]:
        """The 5-element list GET /queue and /history show (sensitive data removed)."""
        number: Any = int(self.number) if isinstance(self.number, int) else self.number
        return [number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._heap: list[QueueItem] = []
        self._seq = itertools.count()
        self.running: dict[int, QueueItem] = {}
        self._task_ids = itertools.count()
        self.history: dict[str, dict[str, Any]] = {}
        self._cond = asyncio.Condition()
        self._on_change = on_change
        self.flags: dict[str, Any] = {}

    # ------------------------------------------------------------------ queue
    def remaining(self) -> int:
        return len(self._heap) + len(self.running)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.remaining()}}

    async def put(
        self,
        number: float,
        prompt_id: str,
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
        outputs: list[str],
        sensitive: dict[str, Any],
    ) -> None:
        item = QueueItem(number, prompt_id, next(self._seq), prompt, extra_data, outputs, sensitive)
        async with self._cond:
            heapq.heappush(self._heap, item)
            self._on_change()
            self._cond.notify_all()

    async def get(self) -> tuple[int, QueueItem]:
        async with self._cond:
            while not self._heap:
                await self._cond.wait()
            item = heapq.heappop(self._heap)
            task_id = next(self._task_ids)
            self.running[task_id] = item
            self._on_change()
            return task_id, item

    async def wait_for_flag_or_item(self, wait_s: float | None = None) -> None:
        async with self._cond:
            if self._heap or self.flags:
                return
            try:
                await asyncio.wait_for(self._cond.wait(), wait_s)
            except TimeoutError:
                return

    def task_done(self, task_id: int, history_result: dict[str, Any], status: dict[str, Any] | None) -> None:
        item = self.running.pop(task_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        self.history[item.prompt_id] = {
            "prompt": item.public(),
            "outputs": {},
            "status": status,
        }
        self.history[item.prompt_id].update(history_result)
        self._on_change()

    def current_queue(self) -> tuple[list[list[Any]], list[list[Any]]]:
        running = [copy.deepcopy(item.public()) for item in self.running.values()]
        pending = [copy.deepcopy(item.public()) for item in self._heap]
        return running, pending

    def pending_items(self) -> list[QueueItem]:
        return list(self._heap)

    def running_items(self) -> list[QueueItem]:
        return list(self.running.values())

    def delete_pending(self, prompt_id: str) -> bool:
        for idx, item in enumerate(self._heap):
            if item.prompt_id == prompt_id:
                self._heap.pop(idx)
                heapq.heapify(self._heap)
                self._on_change()
                return True
        return False

    def wipe(self) -> None:
        self._heap = []
        self._on_change()

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value

        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags

    # ------------------------------------------------------------------ history
    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """21_history_and_jobs: ``max_items`` alone returns the *last* N entries (oldest first);
        with ``offset`` it counts from the start."""
        if prompt_id is not None:
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for i, key in enumerate(self.history):
            if i >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return copy.deepcopy(out)

    def delete_history(self, prompt_id: str) -> None:
        self.history.pop(prompt_id, None)

    def wipe_history(self) -> None:
        self.history = {}
