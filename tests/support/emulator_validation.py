"""Validate a prompt in-process with the emulator's copy of ComfyUI 0.8.0's prompt validation.

Model files are never present in tests, so "value not in list" on an input holding a model file name
is the one error callers usually allow (:func:`problems_besides_missing_models`). Input files a
loader names (LoadImage, LoadVideo, ...) are created empty in the input folder first, so they pass.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))

from comfy_emulator.catalog import INPUT_FILE_INPUTS, Catalog
from comfy_emulator.folders import FolderPaths
from comfy_emulator.validation import Validator

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


def validate(prompt: dict[str, Any], root: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the prompt-level error or None, node errors) as ComfyUI 0.8.0 reports them for ``prompt``."""
    for name in ("models", "input", "output", "temp", "user"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for node in prompt.values():
        for input_name in INPUT_FILE_INPUTS.get(node["class_type"], {}):
            value = node["inputs"].get(input_name)
            if isinstance(value, str) and value:
                target = root / "input" / value.removesuffix(" [input]")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
    folders = FolderPaths(
        str(root), str(root / "input"), str(root / "output"), str(root / "temp"), str(root / "user")
    )
    validator = Validator(Catalog(folders), folders)
    ok, error, _, node_errors = validator.validate_prompt(prompt)
    return (None if ok and not node_errors else error), node_errors


def problems_besides_missing_models(prompt: dict[str, Any], root: Path) -> list[str]:
    """Every validation error except a model file that is not installed, as readable lines."""
    error, node_errors = validate(prompt, root)
    problems: list[str] = []
    if error is not None and error.get("type") != "prompt_outputs_failed_validation":
        problems.append(f"prompt: {error.get('type')}: {error.get('message')} {error.get('details')}")
    for node_id, node_error in node_errors.items():
        for item in node_error.get("errors", []):
            received = (item.get("extra_info") or {}).get("received_value")
            if (
                item.get("type") == "value_not_in_list"
                and isinstance(received, str)
                and received.lower().endswith(MODEL_EXTENSIONS)
            ):
                continue
            problems.append(
                f"node {node_id} ({node_error.get('class_type')}): {item.get('type')}: {item.get('details')}"
            )
    return problems
