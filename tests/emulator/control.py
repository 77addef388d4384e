"""Test-facing control API of the emulator (re-exported from ``comfy_emulator.control``):
``Faults`` writes the fault file, ``start_emulator`` runs the emulator as a subprocess on a free port
and waits for it.  Add ``tests/emulator`` to ``sys.path`` to import it as ``control``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comfy_emulator.control import (
    PROFILE_ROOTS,
    EmulatorBootError,
    EmulatorProcess,
    Faults,
    free_port,
    start_emulator,
)

__all__ = ["PROFILE_ROOTS", "EmulatorBootError", "EmulatorProcess", "Faults", "free_port", "start_emulator"]
