"""How ``run`` shows a job's progress: a live bar on a terminal (rich), plain lines when the output is
a file or a pipe, nothing (notices on standard error) with ``--json`` when standard error is not a
terminal either."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.text import Text

from ..client import JobStatus
from ..client.models import IN_QUEUE


def describe(status: JobStatus) -> str:
    """One status in words: "in queue", "waiting for ComfyUI", "node 3 (KSampler), step 12/30, 48.9%"."""
    if status.status == IN_QUEUE:
        return "in queue"
    if status.done:
        return status.status.lower().replace("_", " ")
    if status.progress is None:
        return "running"
    if status.progress.stage == "waiting_for_comfyui":
        return "waiting for ComfyUI to start"
    if status.progress.stage == "queued":
        return "queued in ComfyUI"
    return str(status.progress)


class Display:
    """Shows nothing; notices go to standard error."""

    def notice(self, text: str) -> None:
        sys.stderr.write(f"comfy-serverless: {text}\n")

    def submitted(self, job_id: str) -> None:
        return None

    def update(self, status: JobStatus) -> None:
        return None

    def blocking(self) -> None:
        """The server gives no progress: the job runs inside one status request (before submitted)."""
        return None

    def finish(self, status: str | None) -> None:
        return None


class LineDisplay(Display):
    """One line per change, for logs and pipes."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.job_id = ""
        self._last = ""
        self._left_queue = False

    def _line(self, text: str) -> None:
        if text != self._last:
            self._last = text
            self.stream.write(f"job {self.job_id}: {text}\n" if self.job_id else f"{text}\n")
            self.stream.flush()

    def notice(self, text: str) -> None:
        self.stream.write(f"{text}\n")
        self.stream.flush()

    def submitted(self, job_id: str) -> None:
        self.job_id = job_id
        self._line("submitted")

    def update(self, status: JobStatus) -> None:
        if status.done:
            return
        if not self._left_queue and status.status != IN_QUEUE and status.observed_queue_s is not None:
            self._left_queue = True
            self._line(f"left the queue after {status.observed_queue_s:.1f} s")
        self._line(describe(status))


class _PercentColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{task.percentage:5.1f}%", style="progress.percentage")


class _StepColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        step, steps = task.fields.get("step"), task.fields.get("steps")
        return Text(f"step {step}/{steps}" if step is not None and steps else "")


class _QueueColumn(ProgressColumn):
    """The time the job waited in RunPod's queue: counting while it still waits."""

    def render(self, task: Task) -> Text:
        queue_s = task.fields.get("queue_s")
        if queue_s is not None:
            return Text(f"queue {queue_s:.1f}s", style="progress.elapsed")
        since = task.fields.get("queued_since")
        if since is not None:
            return Text(f"queue {time.monotonic() - since:.0f}s", style="progress.elapsed")
        return Text("")


class BarDisplay(Display):
    """A live bar: state or node and class, step/steps, percent, time in the queue, time elapsed."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            _StepColumn(),
            BarColumn(),
            _PercentColumn(),
            _QueueColumn(),
            TextColumn("[progress.elapsed]{task.elapsed:.0f}s"),
            console=console,
            refresh_per_second=8,
        )
        self.task: TaskID | None = None
        self._queued_since: float | None = None
        self._blocking = False

    def notice(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def submitted(self, job_id: str) -> None:
        self.progress.start()
        self.progress.console.print(f"submitted job {job_id}", highlight=False, markup=False)
        if self._blocking:
            self.task = self.progress.add_task("running (no progress from this server)", total=None)
            return
        self._queued_since = time.monotonic()
        self.task = self.progress.add_task(
            "in queue", total=100, queued_since=self._queued_since, queue_s=None
        )

    def update(self, status: JobStatus) -> None:
        if self.task is None:
            return
        if status.status != IN_QUEUE:
            self._queued_since = None
        description = describe(status)
        completed: float | None = 100.0 if status.status == "COMPLETED" else None
        step = steps = None
        progress = status.progress
        if progress is not None and progress.stage == "running":
            step, steps = progress.step, progress.steps
            if progress.node_id:
                description = f"node {progress.node_id}" + (
                    f" ({progress.class_type})" if progress.class_type else ""
                )
            if progress.percent is not None:
                completed = progress.percent
        self.progress.update(
            self.task,
            description=description,
            total=100.0 if completed is not None else None,
            completed=completed,
            step=step,
            steps=steps,
            queued_since=self._queued_since,
            queue_s=None if self._blocking else status.observed_queue_s,
        )
        self.progress.refresh()

    def blocking(self) -> None:
        self._blocking = True

    def finish(self, status: str | None) -> None:
        if self.task is not None and status is not None:
            self.progress.update(self.task, description=status.lower().replace("_", " "))
        self.progress.stop()


def make_display(json_mode: bool) -> Display:
    """A bar on a terminal; lines when standard output is not one; with ``--json`` a bar on standard
    error when that is a terminal, else nothing."""
    if json_mode:
        return BarDisplay(Console(file=sys.stderr)) if sys.stderr.isatty() else Display()
    if sys.stdout.isatty():
        return BarDisplay(Console(file=sys.stdout))
    return LineDisplay(sys.stdout)
