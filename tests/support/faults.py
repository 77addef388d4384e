"""The ComfyUI emulator's fault switches (tests/emulator/README.md), written to the file it reads before
each action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class Faults:
    """Writes the emulator's fault switches (tests/emulator/README.md) to its faults file."""

    def __init__(self, path: Path):
        self.path = path
        self.set()

    def set(self, **switches: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(switches))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.set()

    def read(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        return data
