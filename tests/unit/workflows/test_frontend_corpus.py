"""The converter against ComfyUI's own frontend, on the official templates.

``tests/fixtures/frontend_prompts/templates/`` holds what the real frontend (comfyui-frontend-package
1.35.9 in ComfyUI 0.8.0, headless Chromium; ``scripts/record_frontend_prompts.py``) made of each of
the 205 templates of comfyui-workflow-templates 0.7.67 that use only ComfyUI 0.8.0's core nodes. The
templates themselves come from that package (a test dependency). A template matches when every node
has the same class_type and inputs; ``_meta`` and key order do not change what runs.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.workflows.editor import editor_to_prompt
from tests.support.editor_graphs import what_runs
from tests.support.emulator_validation import problems_besides_missing_models
from tests.support.reference import object_info

RECORDINGS = Path(__file__).resolve().parents[2] / "fixtures" / "frontend_prompts" / "templates"
RECORDED = sorted(RECORDINGS.glob("*.json"))

# Templates whose prompt the frontend itself builds broken; the converter reproduces it, and the
# validation below expects exactly the frontend's own errors for them.
FRONTEND_BROKEN = {
    # Saved when `seed` still had a control_after_generate companion; 0.8.0 declares it without one,
    # so every later saved value lands one widget too early (steps = "randomize").
    "api_moonvalley_video_to_video_motion_transfer",
    "api_moonvalley_video_to_video_pose_control",
    # A SaveImage whose `images` input is not connected.
    "gsc_starter_1",
}


def _recording(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _template(recording: dict[str, Any]) -> dict[str, Any]:
    package, _, name = recording["source"].partition("/")
    data: dict[str, Any] = json.loads((importlib.resources.files(package) / "templates" / name).read_text())
    return data


def _convert(recording: dict[str, Any]) -> dict[str, Any]:
    now = dt.datetime.fromisoformat(recording["recorded_at"].replace("Z", "+00:00"))
    return editor_to_prompt(_template(recording), object_info(), now=now)


def test_the_corpus_is_the_205_core_templates() -> None:
    assert len(RECORDED) == 205
    first = _recording(RECORDED[0])
    assert (first["comfyui_version"], first["frontend_version"], first["templates_version"]) == (
        "0.8.0",
        "1.35.9",
        "0.7.67",
    )


def test_every_template_converts_exactly_as_the_frontend_does(capsys: pytest.CaptureFixture[str]) -> None:
    mismatched: list[str] = []
    for path in RECORDED:
        recording = _recording(path)
        if what_runs(_convert(recording)) != what_runs(recording["prompt"]):
            mismatched.append(path.stem)
    with capsys.disabled():
        matched = len(RECORDED) - len(mismatched)
        sys.stdout.write(f"\n{matched} of {len(RECORDED)} official templates match the frontend exactly\n")
    assert mismatched == []


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_template_matches_the_frontend_node_for_node(path: Path) -> None:
    recording = _recording(path)
    ours = what_runs(_convert(recording))
    theirs = what_runs(recording["prompt"])
    assert sorted(ours) == sorted(theirs)
    for node_id in theirs:
        assert ours[node_id] == theirs[node_id], node_id


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_converted_template_passes_comfyuis_validation_but_for_missing_models(
    path: Path, tmp_path: Path
) -> None:
    recording = _recording(path)
    problems = problems_besides_missing_models(_convert(recording), tmp_path / "ours")
    if path.stem in FRONTEND_BROKEN:
        assert problems, "expected the frontend's own errors"
        assert problems == problems_besides_missing_models(recording["prompt"], tmp_path / "frontend")
    else:
        assert problems == []
