"""The ComfyUI server's life: start the child process, know when it is ready, notice when it dies,
restart it, and stop prompts that were abandoned by a timeout or a cancel.

In attach mode (``COMFYUI_URL``) there is no child: readiness is probed and nothing is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ComfyCrashedError, ComfyUnavailableError, seconds_text
from ..settings import Settings
from .client import ComfyClient, ComfyConnectionError, ComfyHTTPError, PromptTracker
from .compat import ServerFeatures, detect_features, explain_boot_failure, stop_prompt
from .launch import ComfyProcess, LaunchError, describe_exit, launch

log = logging.getLogger(__name__)

_PROBE_INTERVAL = 0.5


class ComfySupervisor:
    """Owns ComfyUI's availability for every job of the worker."""

    def __init__(
        self,
        settings: Settings,
        client: ComfyClient,
        folders: dict[str, Path] | None = None,
        *,
        prestarted: ComfyProcess | None = None,
    ):
        self.settings = settings
        self.client = client
        self.folders = folders or {}
        self.process: ComfyProcess | None = None
        self._prestarted = prestarted  # spawned by __main__ before the heavy imports
        self.boots = 0
        self.failed_boots = 0
        self.last_boot_seconds: float | None = None
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] | None = None
        self._ready_hint = asyncio.Event()
        self._boot_task: asyncio.Task[None] | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self._expected_exit: set[int] = set()
        self._closing = False
        self.on_ready: Callable[[], None] | None = None
        #: What the running ComfyUI offers (read after each boot: a restart may bring another one).
        self.features = ServerFeatures()
        #: A boot failure that a restart cannot mend (a broken assets database): reported to every job.
        self._lasting_failure: ComfyUnavailableError | None = None

    @property
    def managed(self) -> bool:
        return not self.settings.attach_mode

    @property
    def is_ready(self) -> bool:
        return self._ready is not None and self._ready.done() and self._ready.exception() is None

    @property
    def boot_log(self) -> list[str]:
        """Every line ComfyUI printed during its current boot."""
        return self.process.boot_log if self.process is not None else []

    def tail(self, lines: int = 15) -> str:
        """The last lines ComfyUI printed, for error messages."""
        return "\n".join(list(self.process.log_tail)[-lines:]) if self.process is not None else ""

    # --- boot --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin booting ComfyUI (or probing it in attach mode) without waiting."""
        if self._boot_task is not None and not self._boot_task.done():
            return
        self._ready = self._loop.create_future()
        self._ready_hint.clear()
        self._boot_task = asyncio.create_task(self._boot(self._ready), name="comfyui-boot")

    async def ensure_ready(self) -> None:
        """Wait until ComfyUI can take a prompt: booted, no abandoned prompt still stopping.

        Raises ComfyUnavailableError when the boot failed; a later call tries again, and after
        COMFYUI_MAX_RESTARTS failures in a row the error asks RunPod to replace the worker."""
        while self._draining:
            await asyncio.wait(set(self._draining))
        if self._lasting_failure is not None:
            raise self._lasting_failure
        if self._ready is None or (self._ready.done() and self._ready.exception() is not None):
            if self.failed_boots >= max(self.settings.comfyui_max_restarts, 1) and self._ready is not None:
                raise ComfyUnavailableError(
                    f"ComfyUI failed to start {self.failed_boots} times in a row; this worker is being "
                    f"replaced. Last ComfyUI log lines:\n{self.tail()}",
                    details={"failed_boots": self.failed_boots, "log_tail": self.tail(40)},
                    refresh_worker=True,
                )
            self.start()
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def _boot(self, ready: asyncio.Future[None]) -> None:
        started = time.monotonic()
        self.boots += 1
        try:
            if self.managed:
                await self._boot_managed(started)
            else:
                await self._wait_until_answering(started, None)
            self.client.start_listener()
            self.features = await detect_features(self.client)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.client.ws_connected.wait(), timeout=10)
        except ComfyUnavailableError as exc:
            self.failed_boots += 1
            exc.refresh_worker = self.failed_boots >= max(self.settings.comfyui_max_restarts, 1)
            log.error("%s", exc.message)
            ready.set_exception(exc)
            ready.exception()  # retrieved here; jobs re-raise it from ensure_ready
            return
        except asyncio.CancelledError:
            if not ready.done():
                ready.set_exception(ComfyUnavailableError("ComfyUI start was cancelled"))
                ready.exception()
            raise
        self.failed_boots = 0
        self.last_boot_seconds = time.monotonic() - started
        if self.process is not None:
            self.process.booted = True
        log.info("ComfyUI is ready after %.2f s", self.last_boot_seconds)
        ready.set_result(None)
        if self.on_ready is not None:
            self.on_ready()

    async def _boot_managed(self, started: float) -> None:
        process, self._prestarted = self._prestarted, None
        if process is None:
            try:
                process = launch(self.settings, self.folders)
            except LaunchError as exc:
                raise ComfyUnavailableError(
                    str(exc), details={"comfyui_dir": str(self.settings.comfyui_dir)}
                ) from exc
        self.process = process
        exited: asyncio.Future[int] = self._loop.create_future()

        def on_exit(code: int) -> None:
            self._loop.call_soon_threadsafe(self._on_process_exit, process, code, exited)

        process.pump(lambda: self._loop.call_soon_threadsafe(self._ready_hint.set), on_exit)
        await self._wait_until_answering(started, exited)

    async def _wait_until_answering(self, started: float, exited: asyncio.Future[int] | None) -> None:
        """Wait for /system_stats to answer. The ready line in ComfyUI's log wakes this at once; a
        slow probe covers ComfyUI builds that print something else."""
        deadline = started + self.settings.comfyui_boot_timeout
        while True:
            if exited is not None and exited.done():
                failure = explain_boot_failure(self.boot_log)
                details: dict[str, object] = {"exit_code": exited.result(), "log_tail": self.tail(40)}
                if failure is not None:
                    details["reason"] = failure.code
                error = ComfyUnavailableError(
                    f"ComfyUI {describe_exit(exited.result())} while starting"
                    + (f": {failure.reason}" if failure is not None else "")
                    + f". Last ComfyUI log lines:\n{self.tail()}",
                    details=details,
                )
                if failure is not None and failure.lasting:
                    # Starting again would only fail the same way, job after job.
                    self._lasting_failure = error
                raise error
            with contextlib.suppress(ComfyConnectionError):
                await self.client.system_stats(within=5)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self.process is not None and self.managed:
                    self._expected_exit.add(self.process.pid)
                    self.process.kill()
                raise ComfyUnavailableError(
                    f"ComfyUI did not become ready within {seconds_text(self.settings.comfyui_boot_timeout)} s "
                    f"(COMFYUI_BOOT_TIMEOUT). Last ComfyUI log lines:\n{self.tail()}",
                    details={"boot_timeout": self.settings.comfyui_boot_timeout, "log_tail": self.tail(40)},
                )
            waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._ready_hint.wait())]
            if exited is not None:
                waiters.append(exited)  # type: ignore[arg-type]
            await asyncio.wait(
                waiters, timeout=min(_PROBE_INTERVAL, remaining), return_when="FIRST_COMPLETED"
            )
            waiters[0].cancel()
            self._ready_hint.clear()

    # --- crash and restart -------------------------------------------------------------------------

    def _on_process_exit(self, process: ComfyProcess, code: int, exited: asyncio.Future[int]) -> None:
        if not exited.done():
            exited.set_result(code)
        if process is not self.process:
            return
        expected = process.pid in self._expected_exit or self._closing
        self._expected_exit.discard(process.pid)
        if expected:
            return
        was_ready = self.is_ready
        running = [t for t in self.client.in_flight if t.running]
        where = ""
        if running and running[0].current_node is not None:
            where = f" while running node {running[0].current_node}"
        message = f"ComfyUI {describe_exit(code)}{where}. Last ComfyUI log lines:\n{self.tail()}"
        log.error("%s", message)
        self.client.fail_all(
            ComfyCrashedError(message, details={"exit_code": code, "log_tail": self.tail(40)})
        )
        if was_ready:
            # Restart before the next job arrives; that job waits for this boot.
            log.info("Restarting ComfyUI after it %s", describe_exit(code))
            self.start()

    async def restart(self, reason: str) -> None:
        """Kill ComfyUI and boot it again (managed mode), failing whatever was in flight."""
        if not self.managed:
            log.error(
                "ComfyUI needs a restart (%s) but is attached through COMFYUI_URL; not restarting", reason
            )
            return
        log.warning("Restarting ComfyUI: %s", reason)
        if self._boot_task is not None and not self._boot_task.done():
            self._boot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._boot_task
        if self.process is not None:
            self._expected_exit.add(self.process.pid)
            await asyncio.to_thread(self.process.terminate, 5.0)
        self.client.fail_all(ComfyCrashedError(f"ComfyUI was restarted: {reason}"))
        self.start()

    # --- abandoned prompts -------------------------------------------------------------------------

    def abandon(self, tracker: PromptTracker, after: Callable[[], None] | None = None) -> None:
        """Stop a prompt whose job timed out or was cancelled, without making the job wait.

        The prompt is removed from the queue and interrupted (18_interrupt_targeted: only the named
        prompt stops; 17_interrupt_global: at the next node boundary). The next job waits for it to
        stop; if it has not stopped after COMFYUI_INTERRUPT_GRACE seconds ComfyUI is restarted."""
        if tracker.done:
            self.client.forget(tracker.prompt_id)
            if after is not None:
                after()
            return
        task = asyncio.create_task(self._drain(tracker, after), name=f"drain-{tracker.prompt_id}")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, tracker: PromptTracker, after: Callable[[], None] | None) -> None:
        prompt_id = tracker.prompt_id
        try:
            try:
                if await stop_prompt(self.client, self.features, prompt_id, lambda: tracker.running):
                    # Removed before it started: no message will ever end it (19_queue_delete_clear).
                    tracker.fail(ComfyCrashedError(f"prompt {prompt_id} was removed from the queue"))
                    log.info("Abandoned prompt %s removed from the queue before it ran", prompt_id)
                    return
            except ComfyHTTPError as exc:
                # Nothing will stop it: waiting out the grace period would only hold up the next job.
                log.error("ComfyUI refused to stop abandoned prompt %s: %s", prompt_id, exc)
                if not tracker.done:
                    await self.restart(f"it refused to stop prompt {prompt_id} (HTTP {exc.status})")
                return
            except ComfyConnectionError:
                pass  # gone: the crash watch reports it
            try:
                await asyncio.wait_for(tracker.wait(), timeout=self.settings.comfyui_interrupt_grace)
                log.info("Abandoned prompt %s stopped", prompt_id)
            except TimeoutError:
                await self.restart(
                    f"prompt {prompt_id} did not stop within {seconds_text(self.settings.comfyui_interrupt_grace)} s "
                    "of being interrupted (COMFYUI_INTERRUPT_GRACE)"
                )
            except Exception as exc:  # the prompt ended some other way (crash, restart)
                log.info("Abandoned prompt %s ended: %s", prompt_id, exc)
        finally:
            self.client.forget(prompt_id)
            if after is not None:
                after()

    # --- shutdown ----------------------------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        for task in list(self._draining):
            task.cancel()
        if self._boot_task is not None:
            self._boot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._boot_task
        await self.client.close()
        if self.process is not None:
            try:
                await asyncio.to_thread(self.process.terminate, 10.0)
            except RuntimeError:
                # Called from atexit: interpreter exit has already closed the thread pools (seen on
                # Python 3.12 in the image), so wait on this loop's thread; nothing else runs now.
                self.process.terminate(10.0)
