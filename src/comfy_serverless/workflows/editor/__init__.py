"""Editor (UI-format) workflows to API prompts, exactly as ComfyUI's frontend converts them.

The reference is comfyui-frontend-package 1.35.9 (what ComfyUI 0.8.0 pins): its ``graphToPrompt``
is the only specification of how an editor graph becomes the prompt ComfyUI runs. Each module mirrors
one family of its rules; :func:`editor_to_prompt` runs them in the frontend's order. Where the
frontend would send something broken (a class this ComfyUI lacks, a value only a browser can make),
the conversion stops with an error that names the node instead.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

from ..object_info import ObjectInfo
from .errors import ConversionError
from .loader import Loader

__all__ = ["ConversionError", "editor_to_prompt", "is_editor_workflow"]


def is_editor_workflow(workflow: Mapping[str, Any]) -> bool:
    """An editor file keeps its nodes and links in lists; an API prompt maps node ids to nodes."""
    return isinstance(workflow.get("nodes"), list) or isinstance(workflow.get("links"), list)


def editor_to_prompt(
    workflow: Mapping[str, Any],
    object_info: ObjectInfo,
    *,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> dict[str, dict[str, Any]]:
    """The API prompt ComfyUI's editor would queue for ``workflow``.

    ``object_info`` describes the running ComfyUI's node classes. ``now`` dates ``%date:...%``
    patterns in save nodes' file names (default: the local time); ``rng`` resolves ``{a|b}`` dynamic
    prompt choices (default: a fresh random generator)."""
    if not isinstance(workflow.get("nodes"), list):
        raise ConversionError("the editor workflow has no `nodes` list", field="workflow.nodes")
    loader = Loader(object_info, now=now, rng=rng)
    loader.load(dict(workflow))
    return loader.to_prompt()
