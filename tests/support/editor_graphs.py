"""Hand-made editor graphs (tests/fixtures/editor_graphs/) and what the real frontend made of them
(tests/fixtures/frontend_prompts/graphs/, recorded with scripts/record_frontend_prompts.py)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from comfy_serverless.workflows.editor import editor_to_prompt

from .reference import object_info

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GRAPHS = FIXTURES / "editor_graphs"
RECORDINGS = FIXTURES / "frontend_prompts" / "graphs"


def graph(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAPHS / f"{stem}.json").read_text(encoding="utf-8"))
    return data


def recording(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDINGS / f"{stem}.json").read_text(encoding="utf-8"))
    return data


def recorded(stem: str) -> list[str]:
    """Stems of the graphs matching ``stem`` (a glob) that have a recording."""
    return sorted(p.stem for p in GRAPHS.glob(f"{stem}.json") if (RECORDINGS / p.name).exists())


def convert(workflow: dict[str, Any], *, now: dt.datetime | None = None, seed: int = 0) -> dict[str, Any]:
    """The converter's prompt for ``workflow`` with ComfyUI 0.8.0's node definitions."""
    return editor_to_prompt(workflow, object_info(), now=now, rng=random.Random(seed))


def what_runs(prompt: dict[str, Any]) -> dict[str, str]:
    """Each node's class and inputs as JSON text, so 1 and true or 8 and 8.5 never compare equal
    (``_meta`` and key order do not change what runs)."""
    return {
        node_id: json.dumps([node["class_type"], node["inputs"]], sort_keys=True, ensure_ascii=False)
        for node_id, node in prompt.items()
    }
