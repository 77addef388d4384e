"""``metadata`` on output file entries (profile "0.38"), whatever the assets system says.

newer: ``comfy_execution/media_enrichment.py`` (``enrich_output_with_media_metadata``, spec section 5)
reads each output file that exists inside its folder and attaches ``metadata``; its docstring names
``kind``/``width``/``height``, plus ``duration``/``fps``/``frame_count`` for videos.  The extractor itself
(``app/assets/services/media_metadata.py``) was not readable, so these details are the emulator's
choices, not confirmed: ``kind`` is ``"image"`` or ``"video"``; ``width``/``height``/``frame_count`` are
ints, ``fps``/``duration`` floats; audio and other files get no ``metadata`` (the enrichment leaves an
entry alone when the extractor returns nothing).  Images are measured with Pillow; the emulator's video
files carry their geometry in a note it wrote itself (``nodes/media.py``), which is read back here.
"""

from __future__ import annotations

import os
import re
from typing import Any

from PIL import Image

from .folders import FolderPaths, content_type_for

_VIDEO_NOTE = re.compile(rb"emulated video (\d+)x(\d+) (\d+) frames @ ([0-9.eE+-]+) fps")


def resolve_entry(entry: Any, folders: FolderPaths) -> str | None:
    """A file entry's real path when it lies inside its folder and exists (symlinks resolved)."""
    if not isinstance(entry, dict) or "filename" not in entry or "type" not in entry:
        return None
    filename, subfolder, kind = entry["filename"], entry.get("subfolder", ""), entry["type"]
    if not isinstance(filename, str) or not isinstance(subfolder, str) or not isinstance(kind, str):
        return None
    base = folders.directory_by_type(kind)
    if base is None:
        return None
    base_real = os.path.realpath(base)
    path = os.path.realpath(os.path.join(base_real, subfolder, filename))
    try:
        if os.path.commonpath([base_real, path]) != base_real:
            return None
    except ValueError:
        return None
    return path if os.path.isfile(path) else None


def extract(path: str) -> dict[str, Any] | None:
    mime = content_type_for(path) or ""
    if mime.startswith("image/"):
        with Image.open(path) as img:
            return {"kind": "image", "width": int(img.width), "height": int(img.height)}
    if mime.startswith("video/"):
        with open(path, "rb") as fh:
            head = fh.read(4096)
        match = _VIDEO_NOTE.search(head)
        if match is None:
            return None
        width, height, frames = (int(match.group(i)) for i in (1, 2, 3))
        fps = float(match.group(4))
        return {
            "kind": "video",
            "width": width,
            "height": height,
            "duration": frames / fps if fps > 0 else 0.0,
            "fps": fps,
            "frame_count": frames,
        }
    return None


def enrich(output_ui: dict[str, Any], folders: FolderPaths) -> dict[str, Any]:
    """A new ui dict; entries that get ``metadata`` are copied, an existing ``metadata`` is kept, and any
    failure leaves the entry as it was (best effort, like ComfyUI)."""
    out: dict[str, Any] = {}
    for key, entries in output_ui.items():
        if not isinstance(entries, list):
            out[key] = entries
            continue
        new_entries = []
        for entry in entries:
            try:
                if isinstance(entry, dict) and "metadata" not in entry:
                    path = resolve_entry(entry, folders)
                    media = extract(path) if path is not None else None
                    if media:
                        entry = {**entry, "metadata": media}
            except (OSError, ValueError):
                pass
            new_entries.append(entry)
        out[key] = new_entries
    return out
