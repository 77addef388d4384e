"""Emulated ComfyUI versions ("profiles") and their install roots.

A profile is chosen by the ``main.py`` that starts the emulator, exactly as a ComfyUI version is chosen by
``COMFYUI_DIR``:

* ``tests/emulator/main.py`` -> profile ``"0.8.0"`` (the recordings in ``comfyui-reference``);
* ``tests/emulator/versions/0.38/main.py`` -> profile ``"0.38"`` (ComfyUI 0.38.1, built from the newer
  ComfyUI source, Comfy-Org/ComfyUI, read file by file; each behaviour cites its file, commit and line).

``COMFY_EMULATOR_PROFILE`` overrides the choice.  Each root holds a ``comfyui_version.py`` (the version
``/system_stats`` and the log report) and a ``comfy/cli_args.py`` (the flags that version accepts; the
worker reads its text to pick optional flags, the emulator builds its parser from it).  Both files are the
emulator's own, not ComfyUI's code.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

EMULATOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE_ENV = "COMFY_EMULATOR_PROFILE"
DEFAULT_PROFILE = "0.8.0"

# profile name -> install root (the folder a worker would name in COMFYUI_DIR)
ROOTS: dict[str, str] = {
    "0.8.0": EMULATOR_DIR,
    "0.38": os.path.join(EMULATOR_DIR, "versions", "0.38"),
}

# requirements.txt pins each version reports in /system_stats.  0.8.0: 01_meta_endpoints.  Newer:
# requirements.txt @077bd30fac (spec section 8: frontend 1.53.6, templates 0.11.73, embedded docs 0.5.12,
# comfy-kitchen 0.2.36, comfy-aimdo 0.5.5).
PACKAGES: dict[str, dict[str, str]] = {
    "0.8.0": {
        "comfyui-frontend-package": "1.35.9",
        "comfyui-workflow-templates": "0.7.67",
    },
    "0.38": {
        "comfyui-frontend-package": "1.53.6",
        "comfyui-workflow-templates": "0.11.73",
        "comfyui-embedded-docs": "0.5.12",
        "comfy-kitchen": "0.2.36",
        "comfy-aimdo": "0.5.5",
    },
}


def _load_module(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    root: str
    flags: dict[str, str]
    exclusive: tuple[tuple[str, ...], ...]

    def at_least(self, version: str) -> bool:
        """True when the emulated ComfyUI is ``version`` or newer (``profile.at_least("0.38")``)."""
        return _version_key(self.version) >= _version_key(version)

    @property
    def packages(self) -> dict[str, str]:
        return PACKAGES[self.name]

    def accepts(self, flag: str) -> bool:
        return flag in self.flags


def profile_names() -> list[str]:
    return list(ROOTS)


def load_profile(name: str | None = None) -> Profile:
    """The profile named ``name`` (``COMFY_EMULATOR_PROFILE`` wins), read from its install root."""
    chosen = os.environ.get(PROFILE_ENV) or name or DEFAULT_PROFILE
    if chosen not in ROOTS:
        raise SystemExit(f"unknown emulator profile {chosen!r}; known: {', '.join(ROOTS)}")
    root = ROOTS[chosen]
    tag = chosen.replace(".", "_")
    version_module = _load_module(os.path.join(root, "comfyui_version.py"), f"_emulated_version_{tag}")
    flags_module = _load_module(os.path.join(root, "comfy", "cli_args.py"), f"_emulated_cli_args_{tag}")
    flags: Any = getattr(flags_module, "FLAGS", {})
    exclusive: Any = getattr(flags_module, "EXCLUSIVE", ())
    return Profile(
        name=chosen,
        version=str(version_module.__version__),
        root=root,
        flags=dict(flags),
        exclusive=tuple(tuple(group) for group in exclusive),
    )
