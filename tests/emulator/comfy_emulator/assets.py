"""The assets system of the newer ComfyUI (profile "0.38"), as far as a client or a supervisor sees it.

* Start-up (main.py @02018c7eb5 ``start_comfyui``/``setup_database``, spec section 3): unless
  ``--disable-assets``, the database ``<user dir>/comfyui.db`` (or ``--database-url sqlite:///<path>``) is
  locked through ``<path>.lock`` with ``flock`` (the ``filelock`` package on Linux; the OS drops the lock
  when the process dies, even on SIGKILL).  A held lock is waited for up to 5 s, then start-up stops with
  ``ASSETS_STARTUP_FAILED: in_use`` and the fix-it lines, exit code 1, before ``Starting server``.
  ``sqlite:///:memory:`` takes no lock.  The fault ``assets_startup_failed: "<kind>"`` makes start-up
  fail with another kind (messages from main.py ``database_failure_message``).
* Outputs (``comfy_execution/asset_enrichment.py`` @228da55822): every file entry of ``executed`` and
  ``/history`` whose file exists inside its folder gets an ``id``; plain images also get ``preview_id``
  (their own id).  Other media would get ``preview_id`` from a generated preview, which the emulator does
  not make.  The emulator keeps one id per file (its asset reference), so a cached replay names the same
  id again.
* ``/upload/image`` answers with an ``asset`` object (server.py @002c3fb9a5 ``image_upload``).  Its
  ``asset_hash`` is ``blake3:<hex>`` in ComfyUI; the emulator has no blake3 package and puts a BLAKE2b-256
  digest there (same form, not the same value).
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import logging
import os
import sys
import time
import uuid
from typing import Any

from .folders import FolderPaths, content_type_for

log = logging.getLogger("comfy_emulator")

LOCK_WAIT_S = 5.0  # app/database/db.py @01275f3234 _LOCK_WAIT_SECONDS
WITHOUT_ASSETS = "Or start ComfyUI without the assets system: --disable-assets"
OWN_DATABASE = "Or give this ComfyUI its own database: --database-url sqlite:///path/to/another.db"
KINDS = (
    "missing_packages",
    "unsupported_url",
    "in_use",
    "locked",
    "newer_revision",
    "path_blocked",
    "not_writable",
    "corrupt",
    "other",
)
# What the underlying error says for the kinds that quote it (sqlite3 / alembic wording; emulated).
_DETAILS = {
    "locked": "database is locked",
    "newer_revision": "Can't locate revision identified by 'ffffffffffff'",
    "path_blocked": "[Errno 17] File exists",
    "not_writable": "attempt to write a readonly database",
    "corrupt": "database disk image is malformed",
    "other": "emulated failure",
}


class AssetsStartupFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def database_path(url: str | None, user_dir: str) -> str | None:
    """The database file (None: in memory).  Default ``<user dir>/comfyui.db``: db.py ``get_database_url``
    follows --user-directory in the newer version.  Raises ``unsupported_url`` for other URL schemes."""
    if url is None:
        return os.path.join(user_dir, "comfyui.db")
    if url in ("sqlite://", "sqlite:///:memory:"):
        return None
    if url.startswith("sqlite:///"):
        return os.path.abspath(url[len("sqlite:///") :])
    raise AssetsStartupFailed(
        "unsupported_url",
        "--database-url must start with sqlite:///, like sqlite:///path/to/comfyui.db, or be left out "
        f"to use the default database.\n{WITHOUT_ASSETS}",
    )


def failure_message(kind: str, location: str, url_given: bool) -> str:
    """The lines after ``ASSETS_STARTUP_FAILED: <kind>`` (main.py @02018c7eb5 database_failure_message)."""
    if kind == "missing_packages":
        return (
            "The assets system needs packages that could not be imported: blake3.\n"
            "Please install the updated requirements.txt file by running:\n"
            f"{sys.executable} -m pip install -r requirements.txt\n"
            "If you are on the portable package you can run: update\\update_comfyui.bat to solve this "
            f"problem.\n{WITHOUT_ASSETS}"
        )
    if kind == "unsupported_url":
        return (
            "--database-url must start with sqlite:///, like sqlite:///path/to/comfyui.db, or be left out "
            f"to use the default database.\n{WITHOUT_ASSETS}"
        )
    detail = _DETAILS.get(kind, "emulated failure")
    if kind == "in_use":
        lines = [
            f"Another ComfyUI is already using this database: '{location}'.",
            "Close the other ComfyUI and start this one again.",
        ]
    elif kind == "locked":
        lines = [
            f"The asset database '{location}' is locked by another program ({detail}).",
            "Close any program that has it open, such as another ComfyUI or a database viewer, and start again.",
        ]
    elif kind == "newer_revision":
        lines = [
            f"The asset database '{location}' was last used by a newer version of ComfyUI ({detail}).",
            "Update ComfyUI, or move that file aside and start again to create a new database.",
        ]
    elif kind == "path_blocked":
        lines = [
            f"A file is in the way of the folder for the asset database '{location}' ({detail}).",
            "Move that file, or choose another folder.",
        ]
    elif kind == "not_writable":
        lines = [
            f"ComfyUI can't create, open or write the asset database '{location}' ({detail}).",
            "Make sure its folder is a writable directory, the database path is a writable file (or "
            "doesn't exist yet), and no other program has it open.",
        ]
    elif kind == "corrupt":
        lines = [
            f"The asset database '{location}' is corrupt ({detail}).",
            "Move that file aside, or delete it, and start again: ComfyUI creates a new database and "
            "rebuilds the asset catalog by rescanning your files.",
        ]
    else:
        lines = [
            f"Could not open or upgrade the asset database '{location}': {detail}",
            "If the database is damaged, move that file aside and start again: ComfyUI creates a new "
            "database and rebuilds the asset catalog by rescanning your files. Run with --verbose DEBUG "
            "for the full error.",
        ]
    if kind in ("in_use", "locked") and not url_given:
        lines.append(OWN_DATABASE)
    return "\n".join([*lines, WITHOUT_ASSETS])


class DatabaseLock:
    """An exclusive ``flock`` on ``<database>.lock``, held for the life of the process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        self._fd = fd
        return True

    def acquire(self, wait_s: float) -> bool:
        if self.try_acquire():
            return True
        log.info("Database lock is held; waiting up to %gs for it to be released", LOCK_WAIT_S)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.try_acquire():
                return True
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def start_assets(
    user_dir: str, database_url: str | None, forced_kind: Any, wait_s: float
) -> DatabaseLock | None:
    """Open (lock) the asset database or raise AssetsStartupFailed.  ``forced_kind``: fault switch."""
    try:
        path = database_path(database_url, user_dir)
    except AssetsStartupFailed:
        raise
    location = path if path is not None else str(database_url)
    if isinstance(forced_kind, str) and forced_kind:
        raise AssetsStartupFailed(
            forced_kind, failure_message(forced_kind, location, database_url is not None)
        )
    if path is None:
        return None  # in-memory database: no file, no lock (db.py _init_memory_db)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise AssetsStartupFailed(
            "path_blocked", failure_message("path_blocked", location, database_url is not None)
        ) from exc
    lock = DatabaseLock(path + ".lock")
    try:
        acquired = lock.acquire(wait_s)
    except OSError as exc:
        raise AssetsStartupFailed(
            "not_writable", failure_message("not_writable", location, database_url is not None)
        ) from exc
    if not acquired:
        raise AssetsStartupFailed("in_use", failure_message("in_use", location, database_url is not None))
    return lock


def database_in_use(user_dir: str, database_url: str | None) -> str | None:
    """With --disable-assets ComfyUI only probes the lock (main.py ``warn_if_database_in_use``): the path
    of a database another process holds, else None."""
    try:
        path = database_path(database_url, user_dir)
    except AssetsStartupFailed:
        return None
    if path is None or not os.path.exists(path + ".lock"):
        return None
    probe = DatabaseLock(path + ".lock")
    try:
        if probe.try_acquire():
            probe.release()
            return None
    except OSError:
        return None
    return path


IN_USE_WARNING = """
________________________________________________________________________
WARNING WARNING WARNING WARNING WARNING

Another ComfyUI is already using this install's asset database:
  {path}
This ComfyUI was started with --disable-assets, so it doesn't use that database and will start anyway.
________________________________________________________________________
""".strip()


# --------------------------------------------------------------------------- asset references
class AssetRegistry:
    """Ids of the files the emulated assets system knows (uploads and outputs), one per file path."""

    def __init__(self, folders: FolderPaths) -> None:
        self.folders = folders
        self._ids: dict[str, str] = {}
        self._by_hash: dict[str, str] = {}

    def asset_id(self, abs_path: str) -> str:
        key = os.path.realpath(abs_path)
        if key not in self._ids:
            self._ids[key] = str(uuid.uuid4())
        return self._ids[key]

    def resolve_output(self, entry: dict[str, Any]) -> str | None:
        """asset_enrichment.py ``_resolve_output_path``: inside its base directory and on disk."""
        kind = entry.get("type")
        base = self.folders.directory_by_type(kind if isinstance(kind, str) else None)
        filename = entry.get("filename")
        subfolder = entry.get("subfolder") or ""
        if base is None or not isinstance(filename, str) or not isinstance(subfolder, str):
            return None
        path = os.path.abspath(os.path.join(base, subfolder, filename))
        try:
            if os.path.commonpath([base, path]) != base:
                return None
        except ValueError:
            return None
        return path if os.path.isfile(path) else None

    def register_outputs(self, output_ui: dict[str, Any]) -> dict[str, Any]:
        """A copy of a node's ui with ``id`` (and ``preview_id`` for plain images) on each file entry;
        old ids are dropped first, as a cached replay does (``register_cached_outputs``)."""
        enriched = copy.deepcopy(output_ui)
        for entries in enriched.values():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict) or "filename" not in entry or "type" not in entry:
                    continue
                entry.pop("id", None)
                entry.pop("preview_id", None)
                path = self.resolve_output(entry)
                if path is None:
                    continue
                entry["id"] = self.asset_id(path)
                if (content_type_for(path) or "").startswith("image/"):
                    entry["preview_id"] = entry["id"]
        return enriched

    def register_upload(self, abs_path: str, name: str, upload_type: str) -> dict[str, Any]:
        with open(abs_path, "rb") as fh:
            data = fh.read()
        digest = "blake3:" + hashlib.blake2b(data, digest_size=32).hexdigest()
        self._by_hash[digest] = abs_path
        return {
            "id": self.asset_id(abs_path),
            "name": name,
            "asset_hash": digest,
            "size": len(data),
            "mime_type": content_type_for(name) or "application/octet-stream",
            "tags": [upload_type],
        }

    def path_for_hash(self, digest: str) -> str | None:
        path = self._by_hash.get(digest)
        return path if path is not None and os.path.isfile(path) else None
