"""The one start-up log block: GPU, ComfyUI version, custom nodes, model folders and the volume.

Everything here is read from what ComfyUI already reports (``GET /system_stats`` and its boot log),
so the worker never imports torch itself: ComfyUI's own start pays the CUDA initialisation once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .volume import FolderCount, VolumeReport

_IMPORT_HEADER = "Import times for custom nodes:"
_PRESTARTUP_HEADER = "Prestartup times for custom nodes:"
_TIME_LINE = re.compile(
    r"(?P<seconds>\d+(?:\.\d+)?) seconds(?P<failed> \((?:IMPORT|PRESTARTUP) FAILED\))?: (?P<path>.+?)\s*$"
)
_CANNOT_IMPORT = re.compile(r"Cannot import (?P<path>.+?) module for custom nodes: (?P<error>.*)$")


@dataclass(frozen=True)
class CustomNode:
    """One custom node module from ComfyUI's boot log."""

    name: str
    path: str
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class CustomNodeReport:
    """Custom nodes ComfyUI loaded, and those that failed (import or prestartup)."""

    loaded: tuple[CustomNode, ...] = ()
    failed: tuple[CustomNode, ...] = ()
    seen: bool = False  # whether the log held an "Import times for custom nodes" block at all


def parse_custom_node_log(lines: Iterable[str]) -> CustomNodeReport:
    """Read ComfyUI's boot log lines ("Import times for custom nodes:", "(IMPORT FAILED)", ...).

    Lines may carry prefixes (timestamps, log levels); only the text after them is read.
    """
    errors: dict[str, str] = {}
    loaded: dict[str, CustomNode] = {}
    failed: dict[str, CustomNode] = {}
    section: str | None = None
    seen = False
    for raw in lines:
        line = raw.rstrip("\n")
        if _IMPORT_HEADER in line:
            section, seen = "import", True
            continue
        if _PRESTARTUP_HEADER in line:
            section = "prestartup"
            continue
        cannot = _CANNOT_IMPORT.search(line)
        if cannot:
            errors[cannot.group("path").strip()] = cannot.group("error").strip()
            continue
        match = _TIME_LINE.search(line) if section else None
        if match is None:
            if section and not line.strip():
                section = None
            continue
        path = match.group("path").strip()
        node = CustomNode(PurePath(path).name, path, float(match.group("seconds")))
        if match.group("failed"):
            failed[path] = node
        elif section == "import":
            loaded[path] = node
    failed_nodes = tuple(CustomNode(n.name, n.path, n.seconds, errors.get(n.path)) for n in failed.values())
    loaded_nodes = tuple(n for p, n in loaded.items() if p not in failed)
    return CustomNodeReport(loaded_nodes, failed_nodes, seen)


def _gib(value: Any) -> str:
    try:
        return f"{float(value) / 2**30:.1f} GiB"
    except (TypeError, ValueError):
        return "?"


def describe_devices(system_stats: Mapping[str, Any] | None) -> list[str]:
    """One line per device from ``/system_stats``'s ``devices``: name, type and VRAM."""
    if not system_stats:
        return ["GPU: unknown (ComfyUI /system_stats not available)"]
    devices = system_stats.get("devices") or []
    lines = []
    for device in devices:
        if not isinstance(device, Mapping):
            continue
        kind = str(device.get("type", "?"))
        label = "GPU" if kind not in ("cpu",) else "Device"
        lines.append(
            f"{label}: {device.get('name', '?')} ({kind}), VRAM {_gib(device.get('vram_total'))} total, "
            f"{_gib(device.get('vram_free'))} free"
        )
    if not lines:
        return ["GPU: none reported by ComfyUI"]
    if all("(cpu)" in line for line in lines):
        lines.append("WARNING: ComfyUI runs on the CPU: no CUDA device was found or --cpu was given")
    return lines


def build_startup_summary(
    *,
    system_stats: Mapping[str, Any] | None,
    custom_nodes: CustomNodeReport | None,
    model_folders: Sequence[FolderCount],
    volume: VolumeReport | None = None,
    boot_seconds: float | None = None,
    warmup: str | None = None,
) -> str:
    """The start-up block the worker logs once ComfyUI answers.

    ``system_stats`` is ComfyUI's ``GET /system_stats`` body; ``custom_nodes`` comes from
    :func:`parse_custom_node_log` over ComfyUI's boot output; ``model_folders`` from
    :func:`comfy_serverless.provisioning.count_model_files`; ``volume`` from
    :func:`comfy_serverless.provisioning.diagnose_volume`; ``warmup`` is the warm-up job's line.
    """
    lines = ["===== comfy-serverless start-up ====="]
    system = (system_stats or {}).get("system") or {}
    version = system.get("comfyui_version", "unknown")
    boot = f", ready after {boot_seconds:.1f} s" if boot_seconds is not None else ""
    lines.append(
        f"ComfyUI {version}{boot}; PyTorch {system.get('pytorch_version', 'unknown')}; "
        f"Python {str(system.get('python_version', 'unknown')).split(' ')[0]}"
    )
    lines.extend(describe_devices(system_stats))
    if warmup is not None:
        lines.append(warmup)

    if custom_nodes is None or (not custom_nodes.seen and not custom_nodes.failed):
        lines.append("Custom nodes: none reported in ComfyUI's boot log")
    else:
        names = ", ".join(n.name for n in custom_nodes.loaded) or "-"
        lines.append(f"Custom nodes loaded ({len(custom_nodes.loaded)}): {names}")
        if custom_nodes.failed:
            lines.append(f"Custom nodes FAILED ({len(custom_nodes.failed)}):")
            lines.extend(
                f"  - {n.name}: {n.error or 'import error, see the traceback above'}"
                for n in custom_nodes.failed
            )

    found = [f for f in model_folders if f.files]
    if found:
        lines.append("Model folders (files ComfyUI lists):")
        lines.extend(f"  {f.folder:<22} {f.files:>5}  {f.path}" for f in found)
    else:
        lines.append("Model folders: no model files found in the image or on the volume")

    if volume is not None:
        lines.append(f"Network volume: {volume.headline}")
        lines.extend(f"  {line}" for line in volume.detail_lines())
    lines.append("=" * len(lines[0]))
    return "\n".join(lines)
