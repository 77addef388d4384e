"""Fault switches: a JSON object in the file named by ``COMFY_EMULATOR_FAULTS_FILE``.

The file is re-read (cheaply, by ``os.stat``) at boot, at each prompt start, at each node start and on
the HTTP routes that have switches, so a test can flip faults while the emulator runs, and faults survive
restarts of the emulator process.  Every key is documented in ``tests/emulator/README.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

log = logging.getLogger("comfy_emulator")

ENV_VAR = "COMFY_EMULATOR_FAULTS_FILE"


class FaultStore:
    def __init__(self, path: str | None) -> None:
        self.path = path or None
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        """Current faults (re-read only when the file changed)."""
        if not self.path:
            return {}
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp = None
            self._data = {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    text = fh.read()
                data = json.loads(text) if text.strip() else {}
                if not isinstance(data, dict):
                    raise ValueError("faults file must hold a JSON object")
            except (OSError, ValueError) as exc:
                log.warning("[emulator] ignoring unreadable faults file %s: %s", self.path, exc)
                return self._data
            self._stamp = stamp
            self._data = data
        return self._data

    def value(self, key: str, default: Any = None) -> Any:
        return self.get().get(key, default)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Rewrite the file atomically (used by one-shot faults: crash_once, boot_fail_times, drops)."""
        if not self.path:
            return
        current = dict(self.get())
        new = change(dict(current))
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".faults-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(new, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._stamp = None
        self.get()

    def remove_keys(self, *keys: str) -> None:
        def drop(data: dict[str, Any]) -> dict[str, Any]:
            for key in keys:
                data.pop(key, None)
            return data

        self.update(drop)

    # ------------------------------------------------------------------ helpers for node-level switches
    def matches_node(self, prefix: str, node_id: str, class_type: str) -> bool:
        """``{prefix}_on_class`` / ``{prefix}_on_node`` may be a string or a list of strings."""
        data = self.get()
        for key, wanted in ((f"{prefix}_on_class", class_type), (f"{prefix}_on_node", node_id)):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, str) and value == wanted:
                return True
            if isinstance(value, list) and wanted in [str(v) for v in value]:
                return True
        return False

    def time_scale(self, default: float) -> float:
        value = self.get().get("time_scale")
        if isinstance(value, (int, float)) and value >= 0:
            return float(value)
        return default
