"""WebSocket frames recorded from ComfyUI 0.8.0 parse into the typed events the tracker uses."""

from __future__ import annotations

import json
import struct

from comfy_serverless.comfy import events
from comfy_serverless.comfy.client import PromptTracker
from tests.support.reference import transcript, ws_texts


def test_every_recorded_text_frame_of_a_run_parses_or_is_deliberately_ignored() -> None:
    kinds = set()
    for message in ws_texts("15_progress_upscale"):
        parsed = events.parse_text(json.dumps(message))
        if message["type"] in ("progress_state",):
            assert parsed is None
        else:
            assert parsed is not None, message
            kinds.add(type(parsed).__name__)
    assert {
        "Status",
        "ExecutionStart",
        "ExecutionCached",
        "Executing",
        "Progress",
        "Executed",
        "ExecutionSuccess",
    } <= kinds


def test_runtime_error_message_carries_node_and_exception() -> None:
    error = next(m for m in ws_texts("14_runtime_error") if m["type"] == "execution_error")
    parsed = events.parse_text(json.dumps(error))
    assert isinstance(parsed, events.ExecutionFailed)
    assert parsed.node_type == "ImageToMask" and parsed.exception_type and parsed.traceback


def test_reconnect_executing_without_prompt_id() -> None:
    parsed = events.parse_text('{"type":"executing","data":{"node":"3"}}')
    assert parsed == events.Executing(None, "3")


def test_binary_text_frame_layout() -> None:
    frame = struct.pack(">II", 3, 1) + b"2" + b"width: 48, height: 40\n batch size: 3"
    assert events.parse_binary(frame) == events.TextPreview("2", "width: 48, height: 40\n batch size: 3")


def test_binary_preview_with_metadata_layout() -> None:
    meta = json.dumps({"node_id": "3", "prompt_id": "p", "image_type": "image/jpeg"}).encode()
    frame = struct.pack(">II", 4, len(meta)) + meta + b"\xff\xd8jpeg"
    parsed = events.parse_binary(frame)
    assert parsed == events.ImagePreview("image/jpeg", b"\xff\xd8jpeg", "p", "3")


def test_malformed_frames_are_ignored() -> None:
    assert events.parse_text("not json") is None
    assert events.parse_text('{"type":"progress","data":{"value":"x"}}') is None
    assert events.parse_binary(b"\x00") is None


async def test_tracker_follows_the_recorded_cached_rerun() -> None:
    """04_cached_rerun, second run: every node cached, `executed` re-sent, then the end."""
    messages = list(ws_texts("04_cached_rerun"))
    starts = [i for i, m in enumerate(messages) if m["type"] == "execution_start"]
    second = messages[starts[1] : starts[2]]
    prompt_id = second[0]["data"]["prompt_id"]
    tracker = PromptTracker(prompt_id)
    for message in second:
        parsed = events.parse_text(json.dumps(message))
        if parsed is not None:
            tracker.feed(parsed)
    outcome = await tracker.wait()
    assert outcome.status == "success"
    assert outcome.cached_nodes == {"1", "2"}
    first_run = next(m for m in messages[: starts[1]] if m["type"] == "executed")
    # The cached run reports the first run's file again: no new file is written.
    assert outcome.outputs["2"] == first_run["data"]["output"]
    assert transcript("04_cached_rerun")["ws_message_type_sequence"].count("execution_start") == 3
