"""Where a job's files live in ComfyUI's folders, how they are read, and how they are removed."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..comfy.client import ComfyClient
from .outputs import OutputFile

log = logging.getLogger(__name__)


class ComfyFiles:
    """ComfyUI's input/output/temp folders as the worker sees them.

    When the folders are on this machine (always in managed mode) outputs are read straight from disk
    and removed after delivery; otherwise they are downloaded through /view and cannot be removed."""

    def __init__(self, client: ComfyClient, folders: dict[str, Path]):
        self.client = client
        self.folders = {kind: path.resolve() for kind, path in folders.items()}

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

    def size_of(self, file: OutputFile) -> int | None:
        path = self.path_of(file)
        if path is None:
            return None
        try:
            return path.stat().st_size
        except OSError:
            return None

    async def read(self, file: OutputFile) -> bytes:
        path = self.path_of(file)
        if path is not None:
            return path.read_bytes()
        return await self.client.view(file.filename, file.subfolder, file.folder_type)

    def free_bytes(self, kind: str) -> int | None:
        root = self.folders.get(kind)
        if root is None:
            return None
        try:
            return shutil.disk_usage(root).free
        except OSError:
            return None

    def remove(self, job_folder: str, files: Iterable[OutputFile]) -> None:
        """Delete the job's folders and every file ComfyUI reported for it (temp previews included)."""
        for file in files:
            path = self.path_of(file)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for root in self.folders.values():
            folder = root / job_folder
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            elif folder.exists():
                with contextlib.suppress(OSError):
                    os.unlink(folder)
