"""The worker core as a service: ComfyUI supervisor, client and job runner in one long-lived event loop
of their own.

Front doors (the RunPod handler today) hand jobs over from whatever loop they run on; the core's loop
starts at process start, so ComfyUI boots before the first job arrives, and the one HTTP session and
WebSocket to ComfyUI outlive every job. Cancelling the front door's await cancels the job in the core.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from typing import Any

from .comfy.client import ComfyClient
from .comfy.launch import ComfyProcess, comfy_folders, reset_folders
from .comfy.process import ComfySupervisor
from .comfy.validation import ModelHint
from .delivery.storage import StorageConfig, StoreCache
from .jobs.runner import JobRunner, ProgressReport
from .jobs.warmup import WarmupReport, run_warmup
from .logs import job_id_var
from .media.files import ComfyFiles
from .media.inputs import InputFetcher
from .provisioning import (
    ModelSearchPaths,
    VolumeReport,
    build_startup_summary,
    count_model_files,
    diagnose_volume,
    explain_missing_model,
    parse_custom_node_log,
    read_extra_model_paths,
)
from .settings import Settings
from .workflows.templates import TemplateCatalog

log = logging.getLogger(__name__)


class Worker:
    """Owns the core loop thread and everything that lives on it."""

    def __init__(
        self,
        settings: Settings,
        *,
        model_hint: ModelHint | None = None,
        prestarted: ComfyProcess | None = None,
    ):
        self.settings = settings
        self.prestarted = prestarted
        self.model_paths = ModelSearchPaths(
            comfyui_models_dir=settings.comfyui_dir / "models" if settings.comfyui_dir else None,
            volume_root=settings.runpod_volume_path if settings.runpod_volume_path.exists() else None,
            extra=read_extra_model_paths(settings.comfyui_extra_model_paths)
            if settings.comfyui_extra_model_paths
            else {},
        )
        self.volume: VolumeReport | None = None
        self.model_hint = model_hint or self._explain_missing_model
        self._summary_task: asyncio.Task[None] | None = None
        self._volume_task: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="comfy-serverless-core", daemon=True)
        self._started = threading.Event()
        self.supervisor: ComfySupervisor | None = None
        self.runner: JobRunner | None = None
        #: How the WARMUP job went (None until it ran, or without WARMUP).
        self.warmup: WarmupReport | None = None

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._setup())
        self._started.set()
        self.loop.run_forever()

    async def _setup(self) -> None:
        settings = self.settings
        folders = comfy_folders(settings)
        if not settings.attach_mode and self.prestarted is None:
            reset_folders(folders)
        elif settings.attach_mode and {"input", "output", "temp"} - folders.keys():
            log.warning(
                "Attached to %s without COMFYUI_INPUT_DIR/COMFYUI_OUTPUT_DIR/COMFYUI_TEMP_DIR: outputs are "
                "downloaded through /view and job files cannot be removed from ComfyUI's disk",
                settings.base_url,
            )
        client = ComfyClient(settings.base_url, request_timeout=settings.comfyui_request_timeout)
        self.supervisor = ComfySupervisor(
            settings, client, folders if not settings.attach_mode else None, prestarted=self.prestarted
        )
        # boto3 reads its data files when a client is made: in a thread, while ComfyUI boots.
        stores = StoreCache()
        storage = StorageConfig.from_settings(settings, public_base_url=settings.s3_public_base_url)
        if storage is not None:
            await asyncio.to_thread(stores.get, storage)
        # Reading the template files is disk work: off the loop that will carry ComfyUI's socket.
        templates = await asyncio.to_thread(
            TemplateCatalog.load, [settings.builtin_templates_dir, settings.templates_dir]
        )
        log.info("Templates: %s", ", ".join(templates.names()) or "none")
        files = ComfyFiles(client, folders, settings.worker_data_dir / "scratch")
        await asyncio.to_thread(files.reset_scratch)
        self.runner = JobRunner(
            settings,
            self.supervisor,
            files,
            fetcher=InputFetcher(
                limit=settings.max_input_bytes,
                timeout=settings.input_download_timeout,
                allow_private=settings.allow_private_input_urls,
                allowed_hosts=settings.input_url_allowed_hosts,
            ),
            storage=storage,
            stores=stores,
            model_hint=self.model_hint,
            templates=templates,
        )
        self.supervisor.on_ready = self._log_startup_summary
        self.supervisor.start()
        # While ComfyUI boots, check the network volume once, so model errors can point at its layout.
        # In the background: walking a large volume must not hold up the worker taking its first job.
        self._volume_task = asyncio.get_running_loop().create_task(self._diagnose_volume())

    async def _diagnose_volume(self) -> None:
        self.volume = await asyncio.to_thread(diagnose_volume, self.settings.runpod_volume_path)
        if not self.volume.ok:
            log.warning("%s", self.volume.render())

    def _explain_missing_model(self, class_type: str, input_name: str, value: object) -> str | None:
        volume = self.volume if self.volume is not None and not self.volume.ok else None
        return explain_missing_model(
            str(value), input_name=input_name, class_type=class_type, paths=self.model_paths, volume=volume
        )

    def _log_startup_summary(self) -> None:
        supervisor = self.supervisor
        assert supervisor is not None
        if supervisor.boots > 1:
            return

        async def report() -> None:
            try:
                stats = await supervisor.client.system_stats()
            except Exception as exc:  # the summary is informative; never let it break the worker
                log.warning("Could not read /system_stats for the start-up summary: %s", exc)
                stats = {}
            if self.settings.warmup:
                self.warmup = await self._warm_up(self.settings.warmup)
            if self._volume_task is not None:
                await self._volume_task  # the summary includes the volume diagnosis
            folders = await asyncio.to_thread(count_model_files, self.model_paths)
            log.info(
                "%s",
                build_startup_summary(
                    system_stats=stats,
                    custom_nodes=parse_custom_node_log(supervisor.boot_log) if supervisor.managed else None,
                    model_folders=folders,
                    volume=self.volume,
                    boot_seconds=supervisor.last_boot_seconds,
                    warmup=self.warmup.summary_line() if self.warmup is not None else None,
                ),
            )

        self._summary_task = asyncio.get_running_loop().create_task(report())

    async def _warm_up(self, spec: str) -> WarmupReport:
        """Run the WARMUP job like any other (jobs arriving meanwhile queue behind it in ComfyUI),
        its outputs removed unsent."""
        runner = self.runner
        assert runner is not None
        token = job_id_var.set("warmup")
        try:
            return await run_warmup(
                spec,
                runner.templates.names(),
                lambda job_input: runner.run("warmup", job_input, deliver_outputs=False),
            )
        finally:
            job_id_var.reset(token)

    def start(self) -> None:
        """Start the core loop and ComfyUI's boot; returns once both are under way."""
        self._thread.start()
        self._started.wait()

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run_job(
        self,
        job_id: str,
        raw_input: Any,
        on_progress: ProgressReport | None = None,
        *,
        storage: StorageConfig | None = None,
    ) -> dict[str, Any]:
        """Run a job on the core loop from any other loop. Cancelling this await cancels the job.
        ``storage``: the job's own bucket and credentials for its uploads and s3:// inputs."""
        assert self.runner is not None
        job = self.runner.run(job_id, raw_input, on_progress, storage=storage)
        return await asyncio.wrap_future(self._submit(job))

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ComfyUI is ready (for tools and benchmarks); raises the boot error."""
        assert self.supervisor is not None
        self._submit(self.supervisor.ensure_ready()).result(timeout)

    def stop(self) -> None:
        """Stop ComfyUI and the core loop."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            # The start-up summary and the volume walk only inform; a worker stopping during its
            # boot must not wait for them or leave them failing on closed thread pools.
            for task in (self._summary_task, self._volume_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self.runner is not None:
                await self.runner.close()
            if self.supervisor is not None:
                await self.supervisor.close()

        try:
            self._submit(shutdown()).result(30)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.warning("Worker shutdown did not finish cleanly: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
