"""Where a job's files live in ComfyUI's folders, how outputs reach local disk, and how a job's files
are removed. Every disk operation runs in a thread: the core's event loop also carries ComfyUI's
WebSocket and every other job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..comfy.client import ComfyClient
from .outputs import OutputFile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalFile:
    """An output as a file on this machine: in ComfyUI's folder, or downloaded into the job's scratch."""

    output: OutputFile
    path: Path
    size: int


class ComfyFiles:
    """ComfyUI's input/output/temp folders as the worker sees them, and the worker's own scratch space.

    When ComfyUI's folders are on this machine (always in managed mode) inputs are written straight into
    the input folder and outputs are read from disk and removed after delivery; otherwise inputs are
    uploaded through /upload/image and outputs downloaded through /view, and ComfyUI keeps its copies."""

    def __init__(self, client: ComfyClient, folders: dict[str, Path], scratch: Path):
        self.client = client
        self.folders = {kind: path.resolve() for kind, path in folders.items()}
        self.scratch = scratch.resolve()

    @property
    def input_folder(self) -> Path | None:
        """ComfyUI's input folder when it is on this machine."""
        return self.folders.get("input")

    def reset_scratch(self) -> None:
        """Empty the scratch folder: nothing an earlier run left there may reach a new job."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True, exist_ok=True)

    def path_of(self, file: OutputFile) -> Path | None:
        """The file's path on this machine, or None if its folder is unknown or the path escapes it."""
        root = self.folders.get(file.folder_type)
        if root is None:
            return None
        path = (root / file.subfolder / file.filename).resolve()
        if not path.is_relative_to(root):
            log.warning("Ignoring output path outside the %s folder: %s", file.folder_type, path)
            return None
        return path

    async def localize(
        self, files: Iterable[OutputFile], job_folder: str
    ) -> tuple[list[LocalFile], list[OutputFile]]:
        """Every output as a local file with its real size: its path in ComfyUI's folder when that is
        here, else a download through /view into the job's scratch folder. Also returns the outputs
        ComfyUI reported but that are not on its disk."""
        found: list[LocalFile] = []
        missing: list[OutputFile] = []
        downloads = self.scratch / job_folder / "outputs"
        for index, file in enumerate(files):
            path = self.path_of(file)
            if path is None and file.folder_type not in self.folders:
                await asyncio.to_thread(downloads.mkdir, parents=True, exist_ok=True)
                target = downloads / f"{index}-{PurePosixPath(file.filename).name}"
                size = await self.client.download(file.filename, file.subfolder, file.folder_type, target)
                found.append(LocalFile(file, target, size))
                continue
            known = await asyncio.to_thread(_size_or_none, path) if path is not None else None
            if path is None or known is None:
                missing.append(file)
            else:
                found.append(LocalFile(file, path, known))
        return found, missing

    async def free_bytes(self, kind: str) -> int | None:
        root = self.folders.get(kind) if kind != "scratch" else self.scratch
        if root is None:
            return None
        try:
            return (await asyncio.to_thread(shutil.disk_usage, root)).free
        except OSError:
            return None

    def job_scratch(self, job_folder: str) -> Path:
        """The worker's private folder for one job (staged inputs in attach mode, downloads, conversions)."""
        return self.scratch / job_folder

    async def remove(self, job_folder: str, files: Iterable[OutputFile]) -> None:
        """Delete the job's folders and every file ComfyUI reported for it (temp previews included)."""
        paths = [path for file in files if (path := self.path_of(file)) is not None]
        folders = [root / job_folder for root in (*self.folders.values(), self.scratch)]
        await asyncio.to_thread(_remove_all, paths, folders)


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _remove_all(paths: list[Path], folders: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.exists() or folder.is_symlink():
            with contextlib.suppress(OSError):
                os.unlink(folder)
