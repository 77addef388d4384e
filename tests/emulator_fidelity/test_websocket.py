"""WebSocket handshake (02), reconnect mid-run (23) and binary frames (11, 26, 27)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct

from PIL import Image

from .support import (
    Client,
    WSRecorder,
    recorded_binary,
    recorded_ws,
    transcript,
    unique_number,
    with_color,
    workflow,
)

FEATURES = {
    "supports_preview_metadata": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
}


async def test_handshake_with_feature_flags(client: Client) -> None:
    """02: status (with sid = clientId) then the server's feature_flags, in that order, same bytes."""
    rec, cid = await client.ws(
        first_message={"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    )
    await rec.wait_for(lambda m: m.type == "feature_flags")
    assert rec.types() == ["status", "feature_flags"]
    assert rec.messages[0].data == {"status": {"exec_info": {"queue_remaining": 0}}, "sid": cid}
    assert rec.messages[1].data == FEATURES
    sizes = [e["bytes"] for e in transcript("02_ws_handshake")["events"] if e["kind"] == "ws_recv"]
    assert [len(m.raw) for m in rec.messages] == sizes[:2]


async def test_handshake_without_client_id_and_late_feature_flags(client: Client) -> None:
    """02: no clientId -> a server-made 32-hex sid; feature_flags only answered as the FIRST message."""
    rec, _ = await client.ws(client_id=None)
    assert re.fullmatch(r"[0-9a-f]{32}", rec.messages[0].data["sid"])
    late, _ = await client.ws()
    assert late.ws is not None
    await late.ws.send_json({"type": "hello", "data": {}})
    await late.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    await asyncio.sleep(0.2)
    assert late.types() == ["status"]


async def test_binary_text_frame_layout(client: Client) -> None:
    """11: event 3, u32 node-id length, node id, text -- byte for byte."""
    rec, _ = await client.run(with_color(workflow("text_output")))
    (frame,) = rec.of_type("binary:TEXT")
    (recorded,) = recorded_binary("11_text_output_and_binary_text")
    expected = b"\x00\x00\x00\x03" + struct.pack(">I", 1) + b"2" + recorded["text"].encode()
    assert frame.raw == expected
    assert frame.raw[:16].hex() == recorded["first_16_bytes_hex"]
    assert len(frame.raw) == recorded["total_bytes"]


async def test_binary_text_frames_are_broadcast(client: Client) -> None:
    """PROTOCOL.md: TEXT frames go to every socket, not only to the prompt's client."""
    observer, _ = await client.ws()
    rec, cid = await client.ws()
    posted = await client.post_prompt(with_color(workflow("text_output")), cid)
    await rec.wait_done(posted["prompt_id"])
    await observer.wait_for(lambda m: m.type == "binary:TEXT")
    assert "executing" not in observer.types()


async def test_reconnect_mid_run(client: Client) -> None:
    """23: reconnect with the same clientId while node 3 runs -> status (with sid, queue 1) then
    {"node": "3"} without prompt_id; messages sent while disconnected are lost."""
    client.emu.faults.set(time_scale=0.02, node_delay_on_node={"3": 0.8})
    first, cid = await client.ws()
    prompt = workflow("long_chain")
    prompt["2"]["inputs"]["seed"] = unique_number()
    prompt["1"]["inputs"]["width"] = prompt["1"]["inputs"]["height"] = 256  # keep real Pillow work small
    posted = await client.post_prompt(prompt, cid)
    await first.wait_executing("2")
    await first.close()
    await asyncio.sleep(0.4)  # node 2 finishes and node 3 starts while nobody listens
    second = WSRecorder(client.session, client.emu.ws_url(cid))
    await second.connect()
    await second.wait_done(posted["prompt_id"])
    await second.close()
    events = transcript("23_ws_reconnect_mid_run")["events"]
    reopen = [i for i, e in enumerate(events) if e["kind"] == "ws_open"][1]
    expected = [
        e["json"]["type"] for e in events[reopen:] if e["kind"] == "ws_recv" and e["opcode"] == "text"
    ]
    assert second.types() == expected
    assert second.messages[0].data == {"status": {"exec_info": {"queue_remaining": 1}}, "sid": cid}
    assert second.messages[1].data == {"node": "3"}


async def _ksampler(client: Client, rec: WSRecorder, cid: str | None, **extra: object) -> None:
    prompt = workflow("ksampler_random_sd15")
    prompt["5"]["inputs"]["seed"] = unique_number()
    posted = await client.post_prompt(prompt, cid, **extra)
    await rec.wait_done(posted["prompt_id"])


async def test_ksampler_legacy_preview_frames(client: Client) -> None:
    """26: preview_method in extra_data, no feature_flags -> type 1 PREVIEW_IMAGE (JPEG) after each
    progress; the loaders are cached from the previous run."""
    warm, wcid = await client.ws()
    await _ksampler(client, warm, wcid)
    rec, cid = await client.ws()
    await _ksampler(client, rec, cid, extra_data={"preview_method": "latent2rgb"})
    assert rec.types() == transcript("26_ksampler_preview_legacy_binary")["ws_message_type_sequence"]
    recorded = recorded_binary("26_ksampler_preview_legacy_binary")[0]
    for frame in rec.of_type("binary:PREVIEW_IMAGE"):
        assert frame.raw[:8] == struct.pack(">II", 1, 1)
        assert frame.raw[:12].hex() == recorded["first_16_bytes_hex"][:24]
        with Image.open(io.BytesIO(frame.raw[8:])) as img:
            assert (img.format, list(img.size)) == ("JPEG", recorded["image"]["size"])


async def test_ksampler_preview_frames_with_metadata(client: Client) -> None:
    """27: the client announced supports_preview_metadata -> type 4 frames BEFORE each progress."""
    warm, wcid = await client.ws()
    await _ksampler(client, warm, wcid)
    rec, cid = await client.ws(
        first_message={"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    )
    await rec.wait_for(lambda m: m.type == "feature_flags")
    await _ksampler(client, rec, cid, extra_data={"preview_method": "latent2rgb"})
    assert rec.types() == transcript("27_ksampler_preview_with_metadata")["ws_message_type_sequence"]
    recorded = recorded_binary("27_ksampler_preview_with_metadata")[0]
    progress_prompt = rec.of_type("progress")[0].data["prompt_id"]
    for frame in rec.of_type("binary:PREVIEW_IMAGE_WITH_METADATA"):
        event, length = struct.unpack(">II", frame.raw[:8])
        assert event == 4 and length == recorded["metadata_len_u32be"]
        meta = json.loads(frame.raw[8 : 8 + length])
        assert meta == {**recorded["metadata"], "prompt_id": progress_prompt}
        assert list(meta) == list(recorded["metadata"])
        with Image.open(io.BytesIO(frame.raw[8 + length :])) as img:
            assert (img.format, list(img.size)) == ("JPEG", recorded["image"]["size"])


async def test_no_previews_without_preview_method(client: Client) -> None:
    """25: server default --preview-method none: progress 1..4/4 and no binary frames."""
    rec, cid = await client.ws()
    await _ksampler(client, rec, cid)
    assert [(p.data["value"], p.data["max"]) for p in rec.of_type("progress")] == [
        (i, 4) for i in range(1, 5)
    ]
    assert not [m for m in rec.messages if m.kind == "binary"]
    assert [m["value"] for m in recorded_ws("25_ksampler_no_preview", "progress")] == [1, 2, 3, 4]
