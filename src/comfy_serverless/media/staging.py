"""Stage a job's input files on local disk: base64, ``data:`` URIs, http(s) URLs and ``s3://`` objects.

Downloads run concurrently (bounded), each within the fetcher's timeout and size cap, and are streamed
to disk in pieces, never held whole in memory. Every file write and delete runs in a thread, off the
event loop that also carries ComfyUI's WebSocket. On any failure, or a cancel, every file and folder
already made is removed before the error goes on; the error names the job field at fault.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ParamSpec, Protocol, TypeVar

from ..aio import gather_bounded, in_thread
from ..errors import DiskFullError, InputStagingError, InvalidInputError, JobError, seconds_text
from .inputs import InputFetcher, decode_base64, decode_data_uri, size_error
from .signatures import content_mismatch

_P = ParamSpec("_P")
_T = TypeVar("_T")

_FIELD_OF_NAME = ("url", "data", "image")


@dataclass(frozen=True, slots=True)
class InputSource:
    """One input file a job brings."""

    #: Where the value is in the job, for errors: "images[0].image", "inputs[1].url", "image" (a
    #: template parameter).
    field: str
    #: The stored name relative to the job's input folder; may include a subfolder ("masks/m.png").
    name: str
    #: base64, a data: URI, an http(s) URL, or s3://bucket/key.
    value: str
    #: Check that the content fits the name's extension (a ``.png`` must hold a PNG). Off for names the
    #: worker made up, or to keep accepting what loaders read anyway (PIL opens a JPEG named .png).
    check_type: bool = True


@dataclass(frozen=True, slots=True)
class StagedFile:
    """An input file on local disk."""

    source: InputSource
    #: A local file holding exactly the bytes.
    path: Path
    size: int


class S3Reader(Protocol):
    """Reads ``s3://`` inputs with the job's or the worker's storage credentials.

    ``download`` writes the object to ``dest`` (already created, empty, owned by the stager: overwrite
    it in place, do not rename another file onto it), at most ``limit`` bytes, and returns its size. Its
    errors should be JobErrors naming ``field`` (no such bucket or key, access denied, too large)."""

    async def download(self, bucket: str, key: str, dest: Path, *, limit: int, field: str) -> int: ...


class _Written:
    """The files and folders one staging made, to remove them all on failure. Used from threads."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def create(self, path: Path) -> BinaryIO:
        missing: list[Path] = []
        parent = path.parent
        while parent != self.dest and not parent.is_dir():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            self.dirs.append(folder)
        file = path.open("xb")  # never a file that was there before, nor through a link
        self.files.append(path)
        return file

    def write_all(self, path: Path, decode: Callable[[], bytes]) -> int:
        data = decode()
        with self.create(path) as file:
            file.write(data)
        return len(data)

    def remove(self) -> None:
        for path in self.files:
            with suppress(OSError):
                path.unlink(missing_ok=True)
        for folder in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            with suppress(OSError):
                folder.rmdir()


def _name_ref(source: InputSource) -> str:
    """The entry's name as a user finds it in the job: "inputs[2].name 'clip.mp4'"."""
    prefix, dot, last = source.field.rpartition(".")
    if dot and last in _FIELD_OF_NAME:
        return f"{prefix}.name {PurePosixPath(source.name).name!r}"
    return f"{source.field} (stored as {source.name!r})"


def _plan(sources: Sequence[InputSource], dest: Path) -> list[Path]:
    """Where each source goes; refuses names that leave the folder or collide."""
    paths: list[Path] = []
    taken: dict[str, str] = {}
    folders: dict[str, str] = {}
    for source in sources:
        parts = source.name.split("/")
        if (
            not source.name
            or source.name.startswith("/")
            or any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts)
        ):
            raise InvalidInputError(
                f"{_name_ref(source)} must be a file name, optionally below relative folders, inside "
                "the job's input folder",
                details={"field": source.field},
            )
        if source.name in taken:
            raise InvalidInputError(
                f"{source.field} is stored as {source.name!r}, as {taken[source.name]} is",
                details={"field": source.field},
            )
        taken[source.name] = source.field
        for depth in range(1, len(parts)):
            folders.setdefault("/".join(parts[:depth]), source.field)
        paths.append(dest.joinpath(*parts))
    for name, field in taken.items():
        if name in folders:
            raise InvalidInputError(
                f"{field} is stored as {name!r}, which {folders[name]} needs as a folder",
                details={"field": field},
            )
    return paths


def _parse_s3(value: str, field: str) -> tuple[str, str]:
    bucket, _, key = value[len("s3://") :].partition("/")
    if not bucket or not key:
        raise InvalidInputError(
            f"{field}: {value.split('?', 1)[0]!r} is not an S3 object; write s3://bucket/path/to/key",
            details={"field": field},
        )
    return bucket, key


async def _storage_error(source: InputSource, dest: Path, exc: OSError) -> JobError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = await in_thread(shutil.disk_usage, dest)
        return DiskFullError(
            f"{source.field} ({source.name}) could not be stored: the worker's disk is full "
            f"({free.free / 1e6:.0f} MB free)",
            details={"field": source.field, "free_bytes": free.free},
        )
    return InputStagingError(
        f"{source.field} ({source.name}) could not be stored: {exc.strerror or exc}",
        details={"field": source.field},
    )


async def _stage_one(
    source: InputSource, path: Path, written: _Written, fetcher: InputFetcher, s3: S3Reader | None
) -> int:
    value, field, limit = source.value, source.field, fetcher.limit
    head = value[:16].lower()
    if head.startswith("data:"):
        return await in_thread(written.write_all, path, lambda: decode_data_uri(value, field, limit))
    if head.startswith(("http://", "https://")):
        file = await in_thread(written.create, path)
        try:

            async def write(chunk: bytes) -> None:
                try:
                    await in_thread(file.write, chunk)
                except OSError as exc:
                    raise await _storage_error(source, written.dest, exc) from None

            return await fetcher.download(value, field, write)
        finally:
            await in_thread(file.close)
    if head.startswith("s3://"):
        if s3 is None:
            raise InvalidInputError(
                f"{field}: s3:// inputs need storage credentials: the worker's S3 settings "
                "(S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, ...) or the job's s3Config",
                details={"field": field},
            )
        bucket, key = _parse_s3(value, field)
        await in_thread(lambda: written.create(path).close())
        try:
            async with asyncio.timeout(fetcher.timeout):
                await s3.download(bucket, key, path, limit=limit, field=field)
        except TimeoutError:
            raise InvalidInputError(
                f"{field}: reading s3://{bucket}/{key} did not finish within {seconds_text(fetcher.timeout)} s",
                details={"field": field, "reason": "timeout"},
            ) from None
        size = (await in_thread(path.stat)).st_size
        if size > limit:
            raise size_error(field, size, limit)
        if not size:
            raise InvalidInputError(f"{field}: s3://{bucket}/{key} is empty", details={"field": field})
        return size
    if "://" in value[:32]:
        scheme = value.split("://", 1)[0]
        raise InvalidInputError(
            f"{field}: {scheme}:// URLs are not supported; use base64, a data: URI, an http(s) URL or "
            "s3://bucket/key",
            details={"field": field},
        )
    return await in_thread(written.write_all, path, lambda: decode_base64(value, field, limit))


async def _stage_checked(
    source: InputSource, path: Path, written: _Written, fetcher: InputFetcher, s3: S3Reader | None
) -> StagedFile:
    try:
        size = await _stage_one(source, path, written, fetcher, s3)
        mismatch = await in_thread(content_mismatch, source.name, path) if source.check_type else None
    except OSError as exc:
        raise await _storage_error(source, written.dest, exc) from None
    if mismatch is not None:
        raise InvalidInputError(
            f"{_name_ref(source)} {mismatch}", details={"field": source.field, "reason": "content_type"}
        )
    return StagedFile(source, path, size)


async def stage_inputs(
    sources: Sequence[InputSource],
    dest: Path,
    *,
    fetcher: InputFetcher,
    s3: S3Reader | None,
    concurrency: int = 4,
) -> list[StagedFile]:
    """Write each source to ``dest / source.name``, at most ``concurrency`` at a time; returns the
    files in the order of ``sources``.

    Errors are JobErrors naming the field (InvalidInputError for what the job sent: undecodable, empty,
    too large, unreachable, refused URL, HTTP error, timeout, content that does not fit its name;
    DiskFullError or InputStagingError when the disk cannot take it). On any failure or cancel, every
    file and folder this call made is removed first; ``dest`` itself is created if missing and kept."""
    if not sources:
        return []
    paths = _plan(sources, dest)
    await in_thread(dest.mkdir, parents=True, exist_ok=True)
    written = _Written(dest)

    async def one(planned: tuple[InputSource, Path]) -> StagedFile:
        return await _stage_checked(planned[0], planned[1], written, fetcher, s3)

    try:
        return await gather_bounded(list(zip(sources, paths, strict=True)), one, concurrency)
    except BaseException:
        await in_thread(written.remove)
        raise
