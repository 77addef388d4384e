"""WebSocket message order and ``executed`` payloads compared with the recorded transcripts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .support import (
    REFERENCE,
    Client,
    executed_outputs,
    executing_nodes,
    normalize_names,
    png_bytes,
    recorded_ws,
    strip_volatile,
    transcript,
    with_color,
    workflow,
)


async def _upload_anchor_inputs(client: Client) -> None:
    assert (await client.upload(png_bytes(), "anchor_input.png", overwrite="true")).status == 200
    resp = await client.upload(png_bytes(), "sub_input.png", subfolder="anchors_sub", overwrite="1")
    assert resp.status == 200


# scenario -> (workflow, how to make it unique, single output?)
SCENARIOS: dict[str, tuple[str, str | None]] = {
    "03_tiny_image": ("tiny_image", "1"),
    "05_upload_and_invert": ("load_invert", None),
    "07_preview_image_temp": ("preview_image", "1"),
    "08_animated_webp_png": ("animated_webp_png", "1"),
    "09_video_mp4_webm": ("video", "1"),
    "10_audio": ("audio", None),
    "11_text_output_and_binary_text": ("text_output", "1"),
    "13_partially_invalid": ("partially_invalid", "1"),
    "14_runtime_error": ("runtime_error", "1"),
    "15_progress_upscale": ("progress_upscale", "1"),
    "16_long_chain": ("long_chain", "1"),
    "25_ksampler_no_preview": ("ksampler_random_sd15", None),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_message_sequence_matches_transcript(client: Client, scenario: str) -> None:
    name, color_node = SCENARIOS[scenario]
    prompt = workflow(name)
    if color_node:
        prompt = with_color(prompt, color_node)
    if name == "load_invert":
        await _upload_anchor_inputs(client)
    if name == "long_chain":  # same nodes and messages; 512^2 keeps the real Pillow work small
        prompt["1"]["inputs"]["width"] = prompt["1"]["inputs"]["height"] = 512
    rec, history = await client.run(prompt)
    expected = transcript(scenario)["ws_message_type_sequence"]
    assert rec.types() == expected

    # the same node executes at each step, and executed carries the same outputs (file names modulo
    # counters and random temp prefixes) -- for multi-output prompts the recorded order of output
    # nodes came from a Python set, so compare those as sets
    recorded_exec = [m["node"] for m in recorded_ws(scenario, "executing")]
    recorded_outputs = [normalize_names(strip_volatile(d)) for d in recorded_ws(scenario, "executed")]
    if len(recorded_outputs) <= 1 or scenario == "09_video_mp4_webm":
        assert executing_nodes(rec.messages) == recorded_exec
        assert executed_outputs(rec.messages) == recorded_outputs
    else:
        assert sorted(map(str, executing_nodes(rec.messages))) == sorted(map(str, recorded_exec))
        key = lambda d: d["node"]  # noqa: E731
        assert sorted(executed_outputs(rec.messages), key=key) == sorted(recorded_outputs, key=key)

    # history: same structure and outputs as recorded
    recorded_history = next(
        e["response"]["json"]
        for e in transcript(scenario)["events"]
        if e["kind"] == "http" and e["request"]["path"].startswith("/history/")
    )
    (recorded_entry,) = recorded_history.values()
    assert list(history) == list(recorded_entry)
    assert history["prompt"][2] == prompt
    assert sorted(history["prompt"][4]) == sorted(recorded_entry["prompt"][4])
    assert list(history["prompt"][3]) == list(recorded_entry["prompt"][3])
    assert normalize_names(history["outputs"]) == normalize_names(recorded_entry["outputs"])
    assert history["meta"] == recorded_entry["meta"]
    assert history["status"]["status_str"] == recorded_entry["status"]["status_str"]
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in recorded_entry["status"]["messages"]
    ]


async def test_outputs_are_real_files_in_the_right_folders(client: Client) -> None:
    """03/06/07/08/09/10: files exist where executed says, PNGs have the right size."""
    emu = client.emu
    prompt = with_color(workflow("tiny_image"))
    color = prompt["1"]["inputs"]["color"]
    _, history = await client.run(prompt)
    (image,) = history["outputs"]["2"]["images"]
    with Image.open(Path(emu.output_dir) / image["filename"]) as img:
        assert img.format == "PNG" and img.size == (64, 64) and img.mode == "RGB"
        assert img.getpixel((0, 0)) == ((color >> 16) & 255, (color >> 8) & 255, color & 255)

    prompt = with_color(workflow("tiny_image"))
    prompt["2"]["inputs"]["filename_prefix"] = "sub/anchor_from_subfolder"
    _, history = await client.run(prompt)
    (image,) = history["outputs"]["2"]["images"]
    assert image["subfolder"] == "sub"
    assert (Path(emu.output_dir) / "sub" / image["filename"]).is_file()

    _, history = await client.run(with_color(workflow("preview_image")))
    images = history["outputs"]["2"]["images"]
    assert [i["type"] for i in images] == ["temp", "temp"]
    for i in images:
        with Image.open(Path(emu.temp_dir) / i["filename"]) as img:
            assert img.size == (32, 32)

    _, history = await client.run(with_color(workflow("animated_webp_png")))
    with Image.open(Path(emu.output_dir) / history["outputs"]["3"]["images"][0]["filename"]) as img:
        assert img.format == "WEBP" and getattr(img, "n_frames", 1) == 4 and img.size == (64, 64)
    with Image.open(Path(emu.output_dir) / history["outputs"]["4"]["images"][0]["filename"]) as img:
        assert img.format == "PNG" and getattr(img, "n_frames", 1) == 4

    _, history = await client.run(with_color(workflow("video")))
    mp4 = history["outputs"]["5"]["images"][0]
    assert mp4["subfolder"] == "video" and mp4["filename"].endswith(".mp4")
    assert (Path(emu.output_dir) / "video" / mp4["filename"]).read_bytes()[4:12] == b"ftypisom"
    webm = history["outputs"]["6"]["images"][0]
    assert (Path(emu.output_dir) / webm["filename"]).read_bytes()[:4] == b"\x1a\x45\xdf\xa3"

    _, history = await client.run(workflow("audio"))
    magic = {".flac": b"fLaC", ".mp3": b"ID3", ".opus": b"OggS"}
    for node, out in history["outputs"].items():
        (entry,) = out["audio"]
        folder = Path(emu.temp_dir) if entry["type"] == "temp" else Path(emu.output_dir) / entry["subfolder"]
        data = (folder / entry["filename"]).read_bytes()
        ext = entry["filename"][entry["filename"].rindex(".") :]
        assert data.startswith(magic[ext]), (node, entry)


async def test_prompt_without_client_id_only_broadcasts(client: Client) -> None:
    """22: an observer socket sees status, progress_state and the binary TEXT frame, nothing else."""
    observer, _ = await client.ws()
    prompt = with_color(workflow("text_output"))
    posted = await client.post_prompt(prompt)  # no client_id
    expected = transcript("22_prompt_without_client_id")["ws_message_type_sequence"]
    await observer.wait_for(lambda m: len(observer.messages) >= len(expected))
    await asyncio.sleep(0.1)  # nothing else may follow
    assert observer.types() == expected
    history = await client.history(posted["prompt_id"])
    assert list(history["prompt"][3]) == ["create_time"]
    assert history["outputs"] == {"3": {"text": ["48"]}}


async def test_runtime_error_without_client_id(client: Client) -> None:
    """14b: no execution_error on the socket, but /history has it."""
    observer, _ = await client.ws()
    posted = await client.post_prompt(with_color(workflow("runtime_error")))
    expected = transcript("14b_runtime_error_no_client_id")["ws_message_type_sequence"]
    await observer.wait_for(lambda m: len(observer.messages) >= len(expected))
    await asyncio.sleep(0.1)  # nothing else may follow
    assert observer.types() == expected
    history = await client.history(posted["prompt_id"])
    assert history["status"]["status_str"] == "error"
    assert [m[0] for m in history["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_error",
    ]


async def test_execution_error_payload_matches_transcript(client: Client) -> None:
    """14: every field of execution_error, including the traceback and current_inputs, as recorded."""
    prompt = workflow("runtime_error")  # color 0: current_inputs shows the recorded all-zero tensor
    rec, history = await client.run(prompt)
    (error,) = [m.data for m in rec.messages if m.type == "execution_error"]
    (recorded,) = recorded_ws("14_runtime_error", "execution_error")
    mine = strip_volatile(error)
    expected = strip_volatile(recorded)
    assert sorted(mine.pop("current_outputs")) == sorted(expected.pop("current_outputs"))
    assert mine == expected
    assert list(error) == list(recorded)
    assert history["outputs"] == {} and history["meta"] == {}
    assert history["status"]["completed"] is False


async def test_progress_messages_of_upscale(client: Client) -> None:
    """15: progress 1..16/16 for node 3, each preceded by progress_state with the same value."""
    rec, _ = await client.run(with_color(workflow("progress_upscale")))
    progress = [m.data for m in rec.messages if m.type == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(i, 16, "3") for i in range(1, 17)]
    for i, m in enumerate(rec.messages):
        if m.type == "progress":
            before = rec.messages[i - 1]
            assert before.type == "progress_state"
            node3 = before.data["nodes"]["3"]
            assert (node3["value"], node3["max"], node3["state"]) == (m.data["value"], 16, "running")
    finished = [
        m.data["nodes"]["3"] for m in rec.messages if m.type == "progress_state" and "3" in m.data["nodes"]
    ]
    assert finished[-1]["state"] == "finished" and finished[-1]["value"] == 16


async def test_progress_state_payloads_match_transcript(client: Client) -> None:
    """03: progress_state carries all non-pending nodes with float 0.0/1.0 values."""
    rec, _ = await client.run(with_color(workflow("tiny_image")))
    mine = [strip_volatile(m.data) for m in rec.messages if m.type == "progress_state"]
    recorded = [strip_volatile(d) for d in recorded_ws("03_tiny_image", "progress_state")]
    assert mine == recorded
    for m in rec.messages:
        if m.type == "progress_state":
            for entry in m.data["nodes"].values():
                assert isinstance(entry["value"], float) and isinstance(entry["max"], float)


async def test_execution_order_of_mixed_outputs(client: Client) -> None:
    """09: EmptyAudio first (it feeds CreateVideo -> SaveVideo), output nodes as soon as ready."""
    rec, _ = await client.run(with_color(workflow("video")))
    assert executing_nodes(rec.messages) == ["3", "1", "2", "6", "4", "5", None]


def _shape(value: Any) -> Any:
    """ws_message_shapes.json notation: type names, dict keys sorted, lists by their first element."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return {k: _shape(value[k]) for k in sorted(value)}


def _normalized(msg_type: str, shape: Any) -> Any:
    """Keys that are node ids or input names do not belong to the shape."""
    if msg_type == "progress_state":
        return {**shape, "nodes": sorted({json.dumps(v, sort_keys=True) for v in shape["nodes"].values()})}
    if msg_type == "execution_error":
        return {**shape, "current_inputs": sorted({json.dumps(v) for v in shape["current_inputs"].values()})}
    return shape


def _fits(shape: Any, allowed: Any) -> bool:
    """Equal shapes, where an empty list fits any list shape; normalized id-keyed parts (lists of JSON
    strings) must be subsets."""
    if isinstance(shape, list) and isinstance(allowed, list):
        if shape and all(isinstance(x, str) and x[:1] in "{[" for x in shape):
            return set(shape) <= set(allowed)
        return not shape or (bool(allowed) and all(_fits(s, allowed[0]) for s in shape[:1]))
    if isinstance(shape, dict) and isinstance(allowed, dict):
        return shape.keys() == allowed.keys() and all(_fits(shape[k], allowed[k]) for k in shape)
    return bool(shape == allowed)


async def test_every_message_has_a_recorded_shape(client: Client) -> None:
    recorded = json.loads((REFERENCE / "transcripts" / "ws_message_shapes.json").read_text())["json_messages"]
    allowed: dict[str, list[Any]] = {}
    for name, info in recorded.items():
        msg_type = name.split("(")[0]
        allowed.setdefault(msg_type, []).extend(_normalized(msg_type, s) for s in info["data_shapes"])
    # node entries of progress_state: any recorded entry shape may appear in any message
    entries = sorted({e for shape in allowed["progress_state"] for e in shape["nodes"]})
    allowed["progress_state"] = [{**allowed["progress_state"][0], "nodes": entries}]
    seen: set[str] = set()
    await _upload_anchor_inputs(client)
    for name in (
        "tiny_image",
        "load_invert",
        "preview_image",
        "animated_webp_png",
        "video",
        "audio",
        "text_output",
        "runtime_error",
        "progress_upscale",
        "ksampler_random_sd15",
    ):
        prompt = workflow(name)
        rec, _ = await client.run(prompt, extra_data={"preview_method": "auto"})
        rec2, _ = await client.run(prompt)  # cached re-run
        for m in rec.messages + rec2.messages:
            if m.kind != "text":
                continue
            shape = _normalized(m.type, _shape(m.data))
            assert any(_fits(shape, a) for a in allowed[m.type]), (name, m.type, shape)
            seen.add(m.type)
    assert seen >= {
        "status",
        "execution_start",
        "execution_cached",
        "executing",
        "executed",
        "progress",
        "progress_state",
        "execution_success",
        "execution_error",
    }
