"""A completed job's result: its outputs (inline base64 or uploaded URLs, read the same way), seeds,
warnings and timings.

Both result shapes of the worker are read: the native one (``{"status": "success", "outputs": [...],
"prompt_id", "seeds", "timings", "warnings"}``) and worker-comfyui's (``{"images": [{"filename", "type":
"base64" | "s3_url", "data"}], "texts"}``). Every file's bytes are checked against the ``size_bytes`` and
``sha256`` the worker reported (when it did) before they are returned or written; a mismatch raises
:class:`~.errors.OutputIntegrityError` and writes nothing. Files are saved as ``{node_id}_{filename}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import mimetypes
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .core import Blocking, Endpoint, Flow, HttpRequest, call
from .errors import OutputDownloadFailed, OutputIntegrityError
from .models import JobStatus

T = TypeVar("T")
OutT = TypeVar("OutT", bound="OutputInfo")

_UNSAFE = re.compile(r"[^\w.\- ]+")
_MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio", "text": "text"}
_DOWNLOAD_READ_TIMEOUT = 120.0

SyncRunner = Callable[[Flow[Any]], Any]
AsyncRunner = Callable[[Flow[Any]], Awaitable[Any]]


def safe_file_name(name: str) -> str:
    """A file name that stays in the folder it is saved to: no folders, no leading dots, no
    characters file systems refuse."""
    cleaned = _UNSAFE.sub("_", name.replace("/", "_").replace("\\", "_")).strip(" ")
    cleaned = cleaned.lstrip(".")
    return cleaned or "output"


@dataclass(frozen=True)
class OutputInfo:
    """One output as the worker described it. ``data`` is base64 for inline files; ``url`` points at an
    uploaded one; texts have ``text``."""

    index: int
    type: str
    node_id: str | None = None
    filename: str | None = None
    subfolder: str = ""
    mime: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    data: str | None = field(default=None, repr=False)
    url: str | None = None
    text: str | None = None
    bucket: str | None = None
    key: str | None = None
    animated: bool = False
    temp: bool = False

    @property
    def inline(self) -> bool:
        """The bytes came with the result (no download needed)."""
        return self.url is None

    @property
    def label(self) -> str:
        """How messages name it: "output x.png of node 9"."""
        name = self.filename or self.type
        return f"output {name}" + (f" of node {self.node_id}" if self.node_id else "")

    @property
    def save_name(self) -> str:
        """``{node_id}_{filename}``; a text without a file name is ``{node_id}_text.txt``."""
        name = self.filename or ("text.txt" if self.type == "text" else f"output{self.index}")
        return safe_file_name(f"{self.node_id}_{name}" if self.node_id else name)

    def check(self, size: int, sha256: str) -> None:
        """Raise OutputIntegrityError unless ``size`` and ``sha256`` match what the worker reported."""
        if self.size_bytes is not None and size != self.size_bytes:
            raise OutputIntegrityError(
                f"{self.label} is {size} bytes, but the worker reported {self.size_bytes} (a truncated "
                "or altered download)"
            )
        if self.sha256 is not None and sha256 != self.sha256.lower():
            raise OutputIntegrityError(
                f"{self.label} does not match the sha256 the worker reported (a corrupted or altered download)"
            )

    def inline_bytes(self) -> bytes:
        """The bytes of an inline output (base64 ``data`` or ``text``), checked."""
        if self.data is not None:
            try:
                content = base64.b64decode(self.data, validate=True)
            except (binascii.Error, ValueError):
                raise OutputIntegrityError(f"{self.label} is not valid base64") from None
        elif self.text is not None:
            content = self.text.encode("utf-8")
        else:
            raise OutputIntegrityError(f"{self.label} has neither data nor a url")
        self.check(len(content), hashlib.sha256(content).hexdigest())
        return content


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _native_item(index: int, item: Mapping[str, Any]) -> OutputInfo:
    node_id = item.get("node_id")
    kind = _str(item.get("type")) or "file"
    text = _str(item.get("text"))
    return OutputInfo(
        index=index,
        type=kind,
        node_id=str(node_id) if node_id is not None else None,
        filename=_str(item.get("filename")),
        subfolder=_str(item.get("subfolder")) or "",
        mime=_str(item.get("mime")),
        size_bytes=_int(item.get("size_bytes")),
        sha256=_str(item.get("sha256")),
        # A text item repeats itself as base64 data; its text is what counts.
        data=None if text is not None else _str(item.get("data")),
        url=_str(item.get("url")),
        text=text,
        bucket=_str(item.get("bucket")),
        key=_str(item.get("key")),
        animated=item.get("animated") is True,
        temp=item.get("temp") is True,
    )


def _worker_comfyui_item(index: int, item: Mapping[str, Any]) -> OutputInfo:
    filename = _str(item.get("filename"))
    mime = mimetypes.guess_type(filename or "")[0]
    kind = _MEDIA_KINDS.get((mime or "").split("/")[0], "file")
    value = _str(item.get("data"))
    uploaded = item.get("type") == "s3_url"
    return OutputInfo(
        index=index,
        type=kind,
        filename=filename,
        mime=mime,
        data=None if uploaded else value,
        url=value if uploaded else None,
    )


def parse_outputs(output: Any) -> list[OutputInfo]:
    """The outputs of a completed job's ``output``, in the worker's order (files, then texts)."""
    if not isinstance(output, Mapping):
        return []
    items: list[OutputInfo] = []
    if isinstance(output.get("outputs"), list):
        for item in output["outputs"]:
            if isinstance(item, Mapping):
                items.append(_native_item(len(items), item))
        return items
    for item in output.get("images") or []:
        if isinstance(item, Mapping):
            items.append(_worker_comfyui_item(len(items), item))
    for text in output.get("texts") or []:
        if isinstance(text, str):
            items.append(OutputInfo(index=len(items), type="text", mime="text/plain", text=text))
    return items


def unique_names(outputs: list[OutputInfo]) -> list[str]:
    """Each output's save name, made distinct (``_2``, ``_3`` before the extension on a clash)."""
    taken: set[str] = set()
    names: list[str] = []
    for output in outputs:
        name = output.save_name
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            stem, suffix = name, ""
        counter = 1
        while name in taken:
            counter += 1
            name = f"{stem}_{counter}{dot}{suffix}"
        taken.add(name)
        names.append(name)
    return names


# --- fetching --------------------------------------------------------------------------------------


def _destination(dest: str | os.PathLike[str], default_name: str) -> Path:
    path = Path(dest)
    if path.is_dir() or str(dest).endswith((os.sep, "/")):
        return path / default_name
    return path


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    partial.write_bytes(content)
    partial.replace(path)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _settle(partial: Path, path: Path) -> None:
    partial.replace(path)


def _prepare_folder(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)


def fetch_flow(endpoint: Endpoint, output: OutputInfo, into: Path | None) -> Flow[bytes | None]:
    """The output's bytes (``into`` None) or the output written to ``into`` (returns None), checked
    against its size and sha256 first. URLs are fetched without the API key, with the client's
    retries; a download goes to a temporary file next to ``into`` that is renamed only once checked."""
    if output.url is None:
        content = output.inline_bytes()
        if into is None:
            return content
        yield Blocking(_write_file, (into, content))
        return None
    partial = into.with_name(f".{into.name}.{uuid.uuid4().hex[:8]}.part") if into is not None else None
    if into is not None:
        yield Blocking(_prepare_folder, (into,))
    request = HttpRequest(
        method="GET",
        url=output.url,
        operation=f"download of {output.label}",
        auth=False,
        connect_timeout=endpoint.connect_timeout,
        read_timeout=_DOWNLOAD_READ_TIMEOUT,
        into=partial,
    )
    answer = yield from call(request, endpoint.retry)
    if answer.status != 200:
        if partial is not None:
            yield Blocking(_discard, (partial,))
        expiry = " (presigned URLs expire: S3_URL_EXPIRY on the worker)" if answer.status == 403 else ""
        raise OutputDownloadFailed(
            f"downloading {output.label} failed: HTTP {answer.status}{expiry}",
            operation=request.operation,
            status_code=answer.status,
        )
    if partial is None:
        output.check(len(answer.body), hashlib.sha256(answer.body).hexdigest())
        return answer.body
    assert into is not None and answer.sha256 is not None
    try:
        output.check(answer.size, answer.sha256)
    except OutputIntegrityError:
        yield Blocking(_discard, (partial,))
        raise
    yield Blocking(_settle, (partial, into))
    return None


class Output(OutputInfo):
    """An output of the synchronous client."""

    _runner: SyncRunner
    _endpoint: Endpoint

    @classmethod
    def wrap(cls, info: OutputInfo, endpoint: Endpoint, runner: SyncRunner) -> Output:
        output = cls(**{f.name: getattr(info, f.name) for f in dataclasses.fields(info)})
        object.__setattr__(output, "_runner", runner)
        object.__setattr__(output, "_endpoint", endpoint)
        return output

    def bytes(self) -> bytes:
        """The file's bytes (downloaded if it was uploaded), checked against its size and sha256."""
        content: bytes = self._runner(fetch_flow(self._endpoint, self, None))
        return content

    def save(self, dest: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Write the file to ``dest``: a folder (an existing one, or a path ending in ``/``) receives it
        as ``{node_id}_{filename}``; anything else is the file's path. Returns where it went."""
        path = _destination(dest, name or self.save_name)
        self._runner(fetch_flow(self._endpoint, self, path))
        return path


class AsyncOutput(OutputInfo):
    """An output of the asyncio client: the same as :class:`Output`, awaited."""

    _runner: AsyncRunner
    _endpoint: Endpoint

    @classmethod
    def wrap(cls, info: OutputInfo, endpoint: Endpoint, runner: AsyncRunner) -> AsyncOutput:
        output = cls(**{f.name: getattr(info, f.name) for f in dataclasses.fields(info)})
        object.__setattr__(output, "_runner", runner)
        object.__setattr__(output, "_endpoint", endpoint)
        return output

    async def bytes(self) -> bytes:
        content: bytes = await self._runner(fetch_flow(self._endpoint, self, None))
        return content

    async def save(self, dest: str | os.PathLike[str], *, name: str | None = None) -> Path:
        path = _destination(dest, name or self.save_name)
        await self._runner(fetch_flow(self._endpoint, self, path))
        return path


# --- results ---------------------------------------------------------------------------------------


def _float_map(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {
        str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


@dataclass(frozen=True)
class ResultBase(Generic[OutT]):
    """A completed job. ``outputs`` in the worker's order; ``timings`` the worker's own (ms:
    ``queue_wait_ms`` in ComfyUI's queue, ``execution_ms``, ``total_ms``, ...); ``delay_ms`` and
    ``execution_ms`` RunPod's (queue and cold start, and run time); ``observed_queue_s`` and
    ``observed_s`` the client's own measures (see :class:`~.models.JobStatus`)."""

    job_id: str
    outputs: list[OutT]
    prompt_id: str | None
    seeds: dict[str, int]
    warnings: list[str]
    timings: dict[str, float]
    delay_ms: float | None
    execution_ms: float | None
    observed_queue_s: float | None
    observed_s: float | None
    output: Any = field(repr=False)
    status: JobStatus = field(repr=False)

    @property
    def files(self) -> list[OutT]:
        """Outputs that are files (not texts)."""
        return [output for output in self.outputs if output.type != "text"]

    @property
    def images(self) -> list[OutT]:
        return [output for output in self.outputs if output.type == "image"]

    @property
    def texts(self) -> list[str]:
        return [output.text for output in self.outputs if output.text is not None]

    def by_node(self, node_id: str) -> list[OutT]:
        return [output for output in self.outputs if output.node_id == str(node_id)]


def _result_fields(status: JobStatus) -> dict[str, Any]:
    output = status.output if isinstance(status.output, Mapping) else {}
    seeds = output.get("seeds")
    warnings = output.get("warnings", output.get("errors"))
    return {
        "job_id": status.job_id,
        "prompt_id": _str(output.get("prompt_id")),
        "seeds": {str(k): v for k, v in seeds.items() if _int(v) is not None}
        if isinstance(seeds, Mapping)
        else {},
        "warnings": [w for w in warnings if isinstance(w, str)] if isinstance(warnings, list) else [],
        "timings": _float_map(output.get("timings")),
        "delay_ms": status.delay_ms,
        "execution_ms": status.execution_ms,
        "observed_queue_s": status.observed_queue_s,
        "observed_s": status.observed_s,
        "output": status.output,
        "status": status,
    }


@dataclass(frozen=True)
class JobResult(ResultBase[Output]):
    """A completed job, for the synchronous client."""

    @classmethod
    def build(cls, status: JobStatus, endpoint: Endpoint, runner: SyncRunner) -> JobResult:
        outputs = [Output.wrap(info, endpoint, runner) for info in parse_outputs(status.output)]
        return cls(outputs=outputs, **_result_fields(status))

    def save_all(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write every file output (texts too) into ``folder`` as ``{node_id}_{filename}``."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        names = unique_names(list(self.outputs))
        return [output.save(Path(folder) / name) for output, name in zip(self.outputs, names, strict=True)]


@dataclass(frozen=True)
class AsyncJobResult(ResultBase[AsyncOutput]):
    """A completed job, for the asyncio client."""

    @classmethod
    def build(cls, status: JobStatus, endpoint: Endpoint, runner: AsyncRunner) -> AsyncJobResult:
        outputs = [AsyncOutput.wrap(info, endpoint, runner) for info in parse_outputs(status.output)]
        return cls(outputs=outputs, **_result_fields(status))

    async def save_all(self, folder: str | os.PathLike[str]) -> list[Path]:
        await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
        names = unique_names(list(self.outputs))
        return [
            await output.save(Path(folder) / name) for output, name in zip(self.outputs, names, strict=True)
        ]


__all__ = [
    "AsyncJobResult",
    "AsyncOutput",
    "JobResult",
    "Output",
    "OutputInfo",
    "fetch_flow",
    "parse_outputs",
    "safe_file_name",
    "unique_names",
]
