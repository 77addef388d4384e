"""One job end to end: validate, stage inputs, queue, follow, collect, deliver, clean up.

Knows nothing of RunPod: it takes the job's id and raw input, reports progress through a callback and
returns the result or raises a JobError. Timeouts and cancellation stop the prompt in ComfyUI too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..aio import to_the_end
from ..comfy.client import (
    ComfyClient,
    ComfyConnectionError,
    ComfyHTTPError,
    ProgressSnapshot,
    PromptOutcome,
    PromptTracker,
    RejectedPrompt,
)
from ..comfy.failures import FailureKind, classify_failure
from ..comfy.process import ComfySupervisor
from ..comfy.validation import ModelHint, describe_rejection
from ..delivery.archive import archive_outputs
from ..delivery.results import LocalOutput, convert_outputs, deliver, native_result, worker_comfyui_result
from ..delivery.storage import S3Store, StorageConfig, StoreCache
from ..errors import (
    ComfyUnavailableError,
    DiskFullError,
    ExecutionError,
    GpuFaultError,
    InputStagingError,
    InvalidInputError,
    JobError,
    JobTimeoutError,
    OutOfMemoryError,
    OutputError,
    WorkflowValidationError,
    seconds_text,
)
from ..logs import job_id_var
from ..media.files import ComfyFiles
from ..media.inputs import InputFetcher
from ..media.outputs import OutputFile, OutputText, collect_outputs
from ..media.staging import InputSource, StagedFile, stage_inputs
from ..settings import OutputFormat, Settings
from ..workflows.build import build_prompt
from ..workflows.editor import is_editor_workflow
from ..workflows.object_info import ObjectInfo, ObjectInfoCache
from ..workflows.params import seeds_used
from ..workflows.templates import MediaFile, TemplateCatalog
from .schema import JobInput, parse_job_input
from .workflow import PreparedWorkflow, prepare_workflow, strip_job_folder

log = logging.getLogger(__name__)

ProgressReport = Callable[[dict[str, Any]], None]
_DISK_FULL_MARKERS = ("No space left on device", "[Errno 28]", "ENOSPC")


@dataclass(slots=True)
class _JobState:
    """What one job has done so far; read when it must explain where a timeout caught it."""

    job_folder: str
    stage: str = "starting"
    tracker: PromptTracker | None = None
    prepared: PreparedWorkflow | None = None
    files: list[OutputFile] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)
    template: str | None = None
    abandoned: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: Every prompt the job queued (a retry after running out of memory queues a second one).
    prompt_ids: list[str] = field(default_factory=list)
    #: Why and where the prompt was run a second time, for the result.
    retried: dict[str, Any] | None = None


def _input_sources(job: JobInput, media: list[MediaFile]) -> list[InputSource]:
    """Every file the job brings: ``images`` (worker-comfyui's list; loaders open images by content,
    so a JPEG named .png keeps working), ``inputs`` (checked: the content must fit the name) and the
    files of a template's media parameters (named by the worker, so not checked either)."""
    sources = [
        InputSource(f"images[{i}].image", im.name, im.image, check_type=False)
        for i, im in enumerate(job.images)
    ]
    for i, item in enumerate(job.inputs):
        field_name = f"inputs[{i}].url" if item.url is not None else f"inputs[{i}].data"
        sources.append(InputSource(field_name, item.stored_name, item.url or item.data or ""))
    sources += [InputSource(m.parameter, m.name, m.source, check_type=False) for m in media]
    return sources


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class JobRunner:
    """Runs jobs against one ComfyUI. Safe to use from several concurrent jobs."""

    def __init__(
        self,
        settings: Settings,
        supervisor: ComfySupervisor,
        files: ComfyFiles,
        *,
        fetcher: InputFetcher,
        storage: StorageConfig | None = None,
        stores: StoreCache | None = None,
        model_hint: ModelHint | None = None,
        templates: TemplateCatalog | None = None,
    ):
        self.settings = settings
        self.supervisor = supervisor
        self.client: ComfyClient = supervisor.client
        self.files = files
        self.fetcher = fetcher
        #: The worker's own storage (S3_* settings); a job's s3Config takes its place for that job.
        self.storage = storage
        self.stores = stores or StoreCache()
        self.model_hint = model_hint
        self.templates = templates or TemplateCatalog()
        self.node_definitions = ObjectInfoCache(self.client.object_info, lambda: self.supervisor.boots)
        self._known_input_names: dict[str, set[str]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # --- the job -----------------------------------------------------------------------------------

    async def run(
        self,
        job_id: str,
        raw_input: Any,
        on_progress: ProgressReport | None = None,
        *,
        storage: StorageConfig | None = None,
        deliver_outputs: bool = True,
    ) -> dict[str, Any]:
        """Run one job; returns its result or raises JobError. ``storage`` is the job's own bucket and
        credentials, used instead of the worker's for its uploads and s3:// inputs. Without
        ``deliver_outputs`` (the warm-up) the outputs are counted and removed, never encoded or sent."""
        job_id_var.set(job_id)
        started = time.monotonic()
        job = parse_job_input(raw_input)
        timeout = self._timeout_of(job)
        state = _JobState(job_folder=f"job-{uuid.uuid4().hex[:16]}")
        report = on_progress or (lambda _: None)
        try:
            async with asyncio.timeout(timeout):
                result = await self._run(job_id, job, state, report, storage, deliver_outputs)
        except TimeoutError:
            self._abandon(state)
            raise JobTimeoutError(
                f"Job timed out after {seconds_text(timeout)} s {self._where(state)}"
                + ("; the prompt was interrupted in ComfyUI" if state.abandoned else ""),
                details={"timeout": timeout, "stage": state.stage, **self._position(state)},
            ) from None
        except asyncio.CancelledError:
            log.info("Job cancelled %s", self._where(state))
            self._abandon(state)
            raise
        except JobError:
            self._abandon(state)
            raise
        except Exception as exc:
            self._abandon(state)
            log.exception("Unexpected failure %s", self._where(state))
            raise JobError(
                f"The worker failed unexpectedly {self._where(state)}: {type(exc).__name__}: {exc}",
                details={"exception_type": type(exc).__name__},
            ) from exc
        finally:
            if not state.abandoned:
                # Shielded: a cancelled job still leaves nothing behind before its cancel goes on.
                await to_the_end(self._clean_up(state))
        state.timings["total_ms"] = _ms(time.monotonic() - started)
        result["timings"] = {**state.timings, **result.get("timings", {})}
        log.info("Job done in %.1f ms with %d output(s)", state.timings["total_ms"], len(state.files))
        return result

    def _timeout_of(self, job: JobInput) -> float:
        timeout = job.timeout or self.settings.job_timeout_default
        if timeout > self.settings.job_timeout_max:
            raise InvalidInputError(
                f"timeout: {seconds_text(timeout)} s is more than the {seconds_text(self.settings.job_timeout_max)} s this worker "
                "allows (JOB_TIMEOUT_MAX)",
                details={"field": "timeout", "maximum": self.settings.job_timeout_max},
            )
        return timeout

    async def _run(
        self,
        job_id: str,
        job: JobInput,
        state: _JobState,
        report: ProgressReport,
        storage: StorageConfig | None,
        deliver_outputs: bool = True,
    ) -> dict[str, Any]:
        state.timings["comfyui_wait_ms"] = 0.0
        if job.template is not None or (job.workflow is not None and is_editor_workflow(job.workflow)):
            # Converting an editor workflow needs the running ComfyUI's node definitions.
            await self._wait_for_comfyui(state, report)
        state.stage = "building the prompt"
        built = await build_prompt(
            workflow=job.workflow,
            params=job.params,
            template=job.template,
            template_values=job.template_values(),
            templates=self.templates,
            object_info=self.object_info,
            known_inputs=self._known_inputs,
        )
        state.template = built.template
        sources = _input_sources(job, built.media)
        store = await self._store(storage)
        stored = {source.name: f"{state.job_folder}/{source.name}" for source in sources}
        state.prepared = prepare_workflow(built.prompt, job_folder=state.job_folder, uploaded=stored)
        state.seeds = seeds_used(built.prompt)

        # Inputs download while ComfyUI may still be booting: straight into its input folder when that
        # is on this machine, else into the job's scratch folder, uploaded once ComfyUI answers.
        state.stage = "loading inputs"
        t_inputs = time.monotonic()
        here = self.files.input_folder
        staged = await stage_inputs(
            sources,
            (here / state.job_folder)
            if here is not None
            else self.files.job_scratch(state.job_folder) / "inputs",
            fetcher=self.fetcher,
            s3=store,
            concurrency=self.settings.input_download_concurrency,
        )
        loading = time.monotonic() - t_inputs

        await self._wait_for_comfyui(state, report)

        if here is None and staged:
            state.stage = "uploading inputs"
            t_upload = time.monotonic()
            await asyncio.gather(*(self._upload(file, state.job_folder) for file in staged))
            loading += time.monotonic() - t_upload
        state.timings["upload_ms"] = _ms(loading)

        outcome, queued_at, warnings = await self._execute(job, state, report)
        state.timings["queue_wait_ms"] = _ms((outcome.started_at or outcome.finished_at) - queued_at)
        state.timings["execution_ms"] = _ms(outcome.finished_at - (outcome.started_at or outcome.finished_at))

        state.stage = "collecting outputs"
        t_out = time.monotonic()
        ui_outputs = outcome.outputs if outcome.from_history else await self._history_outputs(state)
        files_out, texts = collect_outputs(ui_outputs)
        state.files = files_out
        if deliver_outputs:
            result = await self._deliver(job_id, job, state, files_out, texts, warnings, store)
        else:
            result = {"outputs": len(files_out) + len(texts), "warnings": warnings}
        state.timings["output_encoding_ms"] = _ms(time.monotonic() - t_out)
        if state.retried is not None:
            result["retried"] = state.retried
        return result

    async def _wait_for_comfyui(self, state: _JobState, report: ProgressReport) -> None:
        started = time.monotonic()
        if not self.supervisor.is_ready:
            state.stage = "waiting for ComfyUI to start"
            report({"stage": "waiting_for_comfyui"})
        await self.supervisor.ensure_ready()
        state.timings["comfyui_wait_ms"] = round(
            state.timings.get("comfyui_wait_ms", 0.0) + _ms(time.monotonic() - started), 2
        )

    async def object_info(self) -> ObjectInfo:
        """ComfyUI's node definitions, read once per ComfyUI boot (a restart may bring other nodes)."""
        await self.supervisor.ensure_ready()
        try:
            return await self.node_definitions.get()
        except ComfyConnectionError as exc:
            raise self._unavailable("reading its node definitions (/object_info)", exc) from exc

    async def _known_inputs(self, classes: set[str]) -> dict[str, set[str]]:
        """Input names ComfyUI knows for these classes (optional inputs are often left out of saved
        workflows): from the node definitions when already read this boot, else asked per class."""
        info = self.node_definitions.current()
        if info is not None:
            return {c: d.input_names for c in classes if (d := info.get(c)) is not None}
        missing = classes - self._known_input_names.keys()
        if missing:
            await self.supervisor.ensure_ready()
            for class_type in missing:
                inputs = await self._class_inputs(class_type)
                if inputs is not None:
                    self._known_input_names[class_type] = set(inputs)
        return {c: self._known_input_names[c] for c in classes if c in self._known_input_names}

    async def _upload(self, file: StagedFile, job_folder: str) -> None:
        """Hand a staged input to an attached ComfyUI whose input folder is not on this machine."""
        where, name = file.source.field, file.source.name
        folder, _, base = f"{job_folder}/{name}".rpartition("/")
        try:
            stored = await self.client.upload_input(file.path, base, folder)
        except ComfyHTTPError as exc:
            raise InputStagingError(
                f"ComfyUI refused {where} ({name}): HTTP {exc.status}"
                + (" (its disk may be full)" if exc.status >= 500 else ""),
                details={"field": where, "status": exc.status},
            ) from exc
        except ComfyConnectionError as exc:
            raise self._unavailable(f"uploading {where} ({name})", exc) from exc
        if stored != f"{job_folder}/{name}":
            raise InputStagingError(
                f"ComfyUI stored {where} as {stored!r} instead of {job_folder}/{name}",
                details={"field": where},
            )

    async def _execute(
        self, job: JobInput, state: _JobState, report: ProgressReport
    ) -> tuple[PromptOutcome, float, list[str]]:
        """Run the prompt; once more, with ComfyUI's models and cache freed, when a node ran out of
        memory (a model left loaded by an earlier job, or cached outputs, can be what tipped it over)."""
        prepared = state.prepared
        assert prepared is not None
        outcome, queued_at, warnings = await self._run_prompt(job, state, report)
        if outcome.status == "error" and classify_failure(outcome.failure) is FailureKind.OUT_OF_MEMORY:
            failure = outcome.failure
            assert failure is not None
            node_type = failure.node_type or prepared.class_types.get(failure.node_id or "", "?")
            state.retried = {
                "reason": "out_of_memory",
                "node_id": failure.node_id,
                "node_type": node_type,
                "error": f"{failure.exception_type}: {failure.exception_message.strip()}",
            }
            log.warning(
                "Node %s (%s) ran out of memory; freeing ComfyUI's models and cache and running the "
                "workflow once more",
                failure.node_id,
                node_type,
            )
            state.stage = "freeing memory"
            await self._free_memory()
            report({"stage": "retrying", "reason": "out_of_memory"})
            outcome, queued_at, warnings = await self._run_prompt(job, state, report)
        if outcome.status == "error":
            raise await self._execution_error(outcome, prepared, retried=state.retried is not None)
        if outcome.status == "interrupted":
            node = outcome.interrupted.node_id if outcome.interrupted else None
            raise ExecutionError(
                f"ComfyUI interrupted the workflow at node {node} "
                f"({prepared.class_types.get(str(node), '?')}) without the worker asking for it",
                details={"node_id": node},
            )
        return outcome, queued_at, warnings

    async def _free_memory(self) -> None:
        try:
            await self.client.free_memory()
        except ComfyHTTPError as exc:
            # The retry may still fit: ComfyUI itself unloads its models after an out-of-memory error.
            log.warning("ComfyUI refused to free memory (POST /free): %s", exc)
        except ComfyConnectionError as exc:
            raise self._unavailable("freeing memory after an out-of-memory error", exc) from exc

    async def _run_prompt(
        self, job: JobInput, state: _JobState, report: ProgressReport
    ) -> tuple[PromptOutcome, float, list[str]]:
        """Queue the prepared prompt and follow it to its end (success, failure or interruption)."""
        prepared = state.prepared
        assert prepared is not None
        prompt_id = str(uuid.uuid4())
        state.prompt_ids.append(prompt_id)
        total = len(prepared.prompt)
        state.tracker = tracker = self.client.track(
            prompt_id, self._progress_forwarder(prepared, total, report)
        )
        extra: dict[str, Any] = {}
        key = job.comfy_org_api_key or self.settings.comfy_org_api_key
        if key is not None:
            extra["api_key_comfy_org"] = key.get_secret_value()
        state.stage = "queueing the workflow"
        queued_at = time.monotonic()
        try:
            answer = await self.client.queue_prompt(prepared.prompt, prompt_id, extra)
        except ComfyConnectionError as exc:
            raise self._unavailable("queueing the workflow", exc) from exc
        if isinstance(answer, RejectedPrompt):
            self.client.forget(prompt_id)
            state.tracker = None
            state.prompt_ids.remove(prompt_id)  # never queued: nothing to delete from the history
            await self._fill_long_choice_lists(answer.node_errors, prepared)
            # Model hints walk the model folders: in a thread, off the loop.
            raise await asyncio.to_thread(
                describe_rejection,
                answer.error,
                answer.node_errors,
                prepared.prompt,
                model_hint=self.model_hint,
            )
        warnings: list[str] = []
        if answer.node_errors:
            rejection = await asyncio.to_thread(
                describe_rejection,
                {},
                answer.node_errors,
                prepared.prompt,
                model_hint=self.model_hint,
                partial=True,
            )
            if not job.allow_partial:
                raise WorkflowValidationError(
                    rejection.message
                    + "; nothing was returned (send allow_partial: true to keep the valid branches)",
                    details=rejection.details,
                )
            warnings.append(rejection.message)
        state.stage = "queued in ComfyUI"
        report({"stage": "queued"})
        try:
            outcome = await tracker.wait()
        except ComfyConnectionError as exc:
            raise self._unavailable("running the workflow", exc) from exc
        finally:
            if tracker.done:
                self.client.forget(prompt_id)
        return outcome, queued_at, warnings

    async def _class_inputs(self, class_type: str) -> dict[str, Any] | None:
        """{input name: spec} of a node class (required and optional) from /object_info/<class>, asked
        each time: choice lists follow the model files on disk. None when ComfyUI does not answer."""
        try:
            info = (await self.client.object_info(class_type)).get(class_type) or {}
        except ComfyConnectionError:
            return None
        spec = info.get("input") or {}
        return {**(spec.get("required") or {}), **(spec.get("optional") or {})}

    async def _fill_long_choice_lists(self, node_errors: dict[str, Any], prepared: PreparedWorkflow) -> None:
        """ComfyUI leaves out choice lists longer than 20 from "value not in list" errors (often the model
        files); ask /object_info for them so the error can still say what is available."""
        for node_id, node_error in node_errors.items():
            class_type = prepared.class_types.get(str(node_id))
            for item in (node_error or {}).get("errors") or ():
                extra = item.get("extra_info") if isinstance(item, dict) else None
                if (
                    not isinstance(extra, dict)
                    or item.get("type") != "value_not_in_list"
                    or extra.get("input_config")
                ):
                    continue
                if class_type is None or not extra.get("input_name"):
                    continue
                config = (await self._class_inputs(class_type) or {}).get(extra["input_name"])
                if config is not None:
                    extra["input_config"] = config

    def _progress_forwarder(
        self, prepared: PreparedWorkflow, total: int, report: ProgressReport
    ) -> Callable[[ProgressSnapshot], None]:
        def forward(snapshot: ProgressSnapshot) -> None:
            fraction = snapshot.value / snapshot.max if snapshot.value is not None and snapshot.max else 0.0
            done = min(snapshot.nodes_done, total)
            report(
                {
                    "stage": "running",
                    "node_id": snapshot.node,
                    "class_type": prepared.class_types.get(snapshot.node or "", None),
                    "step": snapshot.value,
                    "steps": snapshot.max,
                    "nodes_done": done,
                    "nodes_total": total,
                    "percent": round(min(100.0, 100.0 * (done + fraction) / max(total, 1)), 1),
                }
            )

        return forward

    async def _execution_error(
        self, outcome: PromptOutcome, prepared: PreparedWorkflow, *, retried: bool = False
    ) -> JobError:
        failure = outcome.failure
        if failure is None:
            return ExecutionError("ComfyUI reported the workflow as failed without saying why")
        node_type = failure.node_type or prepared.class_types.get(failure.node_id or "", "?")
        details: dict[str, Any] = {
            "node_id": failure.node_id,
            "node_type": node_type,
            "exception_type": failure.exception_type,
            "exception_message": failure.exception_message,
            "traceback": "".join(failure.traceback),
        }
        message = failure.exception_message.strip()
        hint = await asyncio.to_thread(self._missing_file_hint, failure.node_id, node_type, message, prepared)
        if hint:
            details["hint"] = hint
            message = f"{message.rstrip('.')}. {hint}"
        if any(marker in message for marker in _DISK_FULL_MARKERS):
            free = await self.files.free_bytes("output")
            if free is not None:
                details["free_bytes"] = free
            return DiskFullError(
                f"Node {failure.node_id} ({node_type}) ran out of disk space: {failure.exception_type}: {message}",
                details=details,
            )
        kind = classify_failure(failure)
        if kind is FailureKind.GPU_FAULT:
            # The CUDA context is lost: every later prompt on this GPU fails the same way. RunPod
            # replaces the worker; where nobody does (local, HTTP service), a fresh ComfyUI starts.
            # Awaited (the old process is stopped and the new boot begun before this job answers), so
            # a job arriving right after cannot reach the broken ComfyUI.
            await to_the_end(
                self.supervisor.restart(f"CUDA reported an unrecoverable error in node {failure.node_id}")
            )
            return GpuFaultError(
                f"Node {failure.node_id} ({node_type}) failed: {failure.exception_type}: {message}. "
                "This GPU cannot run anything more; the worker asks to be replaced",
                details=details,
                refresh_worker=True,
            )
        if kind is FailureKind.OUT_OF_MEMORY:
            details["retried"] = retried
            return OutOfMemoryError(
                f"Node {failure.node_id} ({node_type}) ran out of memory"
                + (
                    " again after the worker freed ComfyUI's models and cache and ran it once more"
                    if retried
                    else ""
                )
                + f": {failure.exception_type}: {message}. Lower the resolution, batch size or frame count, "
                "or use a GPU with more memory",
                details=details,
            )
        return ExecutionError(
            f"Node {failure.node_id} ({node_type}) failed: {failure.exception_type}: {message}",
            details=details,
        )

    def _missing_file_hint(
        self, node_id: str | None, class_type: str, message: str, prepared: PreparedWorkflow
    ) -> str | None:
        """A loader that failed at run time because its file is missing (ComfyUI versions that do not
        validate the file list up front) gets the same advice as a "not in list" validation error."""
        if self.model_hint is None or node_id is None or "not found" not in message.lower():
            return None
        inputs = prepared.prompt.get(node_id, {}).get("inputs", {})
        for name, value in inputs.items():
            if isinstance(value, str) and value and value in message:
                return self.model_hint(class_type, name, value)
        return None

    async def _history_outputs(self, state: _JobState) -> dict[str, dict[str, Any]]:
        assert state.tracker is not None
        try:
            entry = await self.client.history(state.tracker.prompt_id)
        except ComfyConnectionError as exc:
            raise self._unavailable("reading the workflow's outputs", exc) from exc
        outputs = (entry or {}).get("outputs") or {}
        return {str(k): v for k, v in outputs.items() if isinstance(v, dict)}

    # --- delivery ----------------------------------------------------------------------------------

    async def _deliver(
        self,
        job_id: str,
        job: JobInput,
        state: _JobState,
        files: list[OutputFile],
        texts: list[OutputText],
        warnings: list[str],
        store: S3Store | None,
    ) -> dict[str, Any]:
        state.stage = "delivering outputs"
        wanted = [
            f
            for f in files
            if f.folder_type == "output" or (job.include_temp_outputs and f.folder_type == "temp")
        ]
        try:
            local, missing = await self.files.localize(wanted, state.job_folder)
        except ComfyHTTPError as exc:
            raise OutputError(
                f"ComfyUI would not hand over an output through /view: HTTP {exc.status}",
                details={"status": exc.status},
            ) from exc
        except ComfyConnectionError as exc:
            raise self._unavailable("handing over the outputs", exc) from exc
        warnings.extend(
            f"node {f.node_id} reported {f.filename}, but the file is not on disk" for f in missing
        )
        outputs = [
            LocalOutput(f.output, f.path, f.size, strip_job_folder(f.output.subfolder, state.job_folder))
            for f in local
        ]
        if job.output_format is not None:
            outputs = await convert_outputs(
                outputs,
                job.output_format.format,
                job.output_format.quality,
                keep_metadata=self.settings.output_keep_metadata,
                dest_dir=self.files.job_scratch(state.job_folder) / "converted",
            )
        items = await deliver(
            outputs,
            texts,
            mode=job.delivery or self.settings.delivery.value,
            store=store,
            job_id=job_id,
            limit=self.settings.max_inline_bytes,
        )
        if self.settings.output_archive_dir is not None:
            await archive_outputs(self.settings.output_archive_dir, job_id, outputs, texts)
        assert state.tracker is not None
        seeds = state.seeds or None
        if self.settings.output_format is OutputFormat.WORKER_COMFYUI:
            return worker_comfyui_result(items, seeds=seeds, warnings=warnings)
        return native_result(state.tracker.prompt_id, items, seeds=seeds, warnings=warnings)

    async def _store(self, storage: StorageConfig | None) -> S3Store | None:
        """The store a job's uploads and s3:// inputs use: its own s3Config, else the worker's S3
        settings, else none. Clients are made (in a thread: boto3 reads files) once per credential set."""
        config = storage or self.storage
        if config is None:
            return None
        if config.origin == "job" and config.endpoint_url is not None:
            # A job's endpoint is an address the worker connects to on the caller's word: the same
            # rules as URL inputs (public, or allowed by INPUT_URL_ALLOWED_HOSTS).
            await self.fetcher.check_endpoint(config.endpoint_url, "s3Config.endpointUrl")
        return await asyncio.to_thread(self.stores.get, config)

    # --- failure paths -----------------------------------------------------------------------------

    def _unavailable(self, doing: str, exc: ComfyConnectionError) -> JobError:
        cause = exc.__cause__
        if isinstance(cause, JobError):
            return cause
        return ComfyUnavailableError(
            f"ComfyUI stopped answering while {doing}: {exc}. Last ComfyUI log lines:\n{self.supervisor.tail()}",
            details={"log_tail": self.supervisor.tail(40)},
        )

    def _position(self, state: _JobState) -> dict[str, Any]:
        tracker = state.tracker
        if tracker is None or tracker.current_node is None or state.prepared is None:
            return {}
        return {
            "node_id": tracker.current_node,
            "class_type": state.prepared.class_types.get(tracker.current_node),
            "step": tracker.value,
            "steps": tracker.max,
        }

    def _where(self, state: _JobState) -> str:
        position = self._position(state)
        if position and state.tracker is not None and state.tracker.running:
            step = f", step {position['step']}/{position['steps']}" if position["steps"] else ""
            return f"while ComfyUI was running node {position['node_id']} ({position['class_type']}){step}"
        return f"while {state.stage}"

    def _abandon(self, state: _JobState) -> None:
        """Stop the job's prompt in ComfyUI; its files are removed once it has stopped."""
        tracker = state.tracker
        if tracker is None or tracker.done:
            if tracker is not None:
                self.client.forget(tracker.prompt_id)
            return
        state.abandoned = True
        self.supervisor.abandon(tracker, after=lambda: self._in_background(self._clean_up(state)))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _clean_up(self, state: _JobState) -> None:
        """Remove the job's inputs, outputs and scratch files from disk, and its entry from ComfyUI's
        history (in the background: the result need not wait for it)."""
        await self.files.remove(state.job_folder, state.files)
        if state.prompt_ids:
            self._in_background(self._forget_history(state.prompt_ids))

    async def _forget_history(self, prompt_ids: list[str]) -> None:
        try:
            await self.client.delete_history(prompt_ids)
        except ComfyHTTPError as exc:
            log.warning(
                "ComfyUI refused to delete prompt(s) %s from its history: %s", ", ".join(prompt_ids), exc
            )
        except ComfyConnectionError:
            pass  # ComfyUI is gone; its history went with it

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        await self.fetcher.close()
