"""/upload/image (05_upload_and_invert) and /view (20_view_variants) against the transcripts."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from PIL import Image

from .support import Client, EmulatorProcess, png_bytes, recorded_http, with_color, workflow


async def _upload(
    session: aiohttp.ClientSession, base: str, fields: dict[str, str], file: tuple[str, bytes] | None
) -> tuple[int, str | None, bytes]:
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    if file is not None:
        form.add_field("image", file[1], filename=file[0], content_type="image/png")
    async with session.post(base + "/upload/image", data=form) as resp:
        return resp.status, resp.headers.get("Content-Type"), await resp.read()


async def test_upload_variants_match_transcript(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator()
    base = emu.base_url
    original = png_bytes(color=(10, 20, 30))
    different = png_bytes(color=(40, 50, 60))
    steps: list[tuple[str, dict[str, str], tuple[str, bytes] | None]] = [
        ("upload (overwrite=true)", {"overwrite": "true"}, ("anchor_input.png", original)),
        (
            "same name, same bytes, no overwrite -> dedup by hash, same name",
            {},
            ("anchor_input.png", original),
        ),
        (
            "same name, different bytes, no overwrite -> renamed 'anchor_input (1).png'",
            {},
            ("anchor_input.png", different),
        ),
        (
            "upload into subfolder",
            {"subfolder": "anchors_sub", "type": "input", "overwrite": "1"},
            ("sub_input.png", original),
        ),
        ("path traversal subfolder -> 400", {"subfolder": "../../etc"}, ("evil.png", original)),
        ("no file field -> 400", {"overwrite": "true"}, None),
    ]
    for label, fields, file in steps:
        (recorded,) = recorded_http("05_upload_and_invert", label=label)
        status, content_type, body = await _upload(session, base, fields, file)
        assert status == recorded["response"]["status"], label
        if "json" in recorded["response"]:
            assert content_type == recorded["response"]["headers"]["Content-Type"]
            assert await _json(body) == recorded["response"]["json"], label
        else:
            assert body == b"", label
    assert (emu.input_dir / "anchor_input.png").read_bytes() == original
    assert (emu.input_dir / "anchor_input (1).png").read_bytes() == different
    assert (emu.input_dir / "anchors_sub" / "sub_input.png").is_file()
    assert not (emu.root / "etc").exists()

    # LoadImage lists the top-level input files only (05: the subfolder file is not listed)
    (recorded,) = recorded_http("05_upload_and_invert", label="LoadImage options now list uploaded files")
    async with session.get(base + "/object_info/LoadImage") as resp:
        assert await resp.json() == recorded["response"]["json"]

    # the uploaded file can be viewed and loaded, also from the subfolder (06)
    async with session.get(
        base + "/view", params={"filename": "anchor_input.png", "type": "input", "subfolder": ""}
    ) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
        assert await resp.read() == original
    client = Client(emu, session)
    prompt = workflow("load_invert")
    _, history = await client.run(prompt)
    out = history["outputs"]["3"]["images"][0]
    with Image.open(emu.output_dir / out["filename"]) as img:
        assert img.size == (64, 48) and img.getpixel((0, 0)) == (245, 235, 225)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "anchors_sub/sub_input.png"}},
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": "sub/anchor_from_subfolder"},
        },
    }
    _, history = await client.run(prompt)
    assert history["outputs"]["2"]["images"] == [
        {"filename": "anchor_from_subfolder_00001_.png", "subfolder": "sub", "type": "output"}
    ]
    await client.close()


async def _json(body: bytes) -> Any:
    return json.loads(body)


async def test_upload_to_other_types_and_unknown_type(client: Client) -> None:
    resp = await client.upload(png_bytes(), "typed.png", type="temp", overwrite="true")
    assert resp.status == 200
    async with client.session.get(
        client.base + "/view", params={"filename": "typed.png", "type": "temp"}
    ) as r:
        assert r.status == 200
    resp = await client.upload(png_bytes(), "typed.png", type="bogus")
    assert resp.status == 500  # ComfyUI has no branch for it either


async def test_view_variants_match_transcript(client: Client) -> None:
    """20: preview=webp;50 / jpeg;90, channel=rgb / a, 404/400/403 cases, ``name [input]``, /api twin."""
    assert (await client.upload(png_bytes(), "anchor_input.png", overwrite="true")).status == 200
    _, history = await client.run(with_color(workflow("tiny_image")))
    name = history["outputs"]["2"]["images"][0]["filename"]
    recorded_name = "anchor_tiny_00003_.png"
    for event in recorded_http("20_view_variants"):
        request = event["request"]
        if not request["path"].endswith("/view"):
            continue
        params = {k: (name if v == recorded_name else v) for k, v in request.get("query", {}).items()}
        expected = event["response"]
        async with client.session.get(client.base + request["path"], params=params) as resp:
            body = await resp.read()
            assert resp.status == expected["status"], (event["label"], params)
            if expected["status"] != 200:
                assert body == b""
                continue
            assert resp.headers["Content-Type"] == expected["headers"]["Content-Type"]
            disposition = expected["headers"]["Content-Disposition"].replace(recorded_name, name)
            assert resp.headers["Content-Disposition"] == disposition
        info = expected["binary"]
        with Image.open(io.BytesIO(body)) as img:
            assert (img.format, list(img.size), img.mode) == (
                info["pil_format"],
                info["size"],
                info["mode"],
            ), params


async def test_view_serves_each_media_type_with_its_content_type(client: Client) -> None:
    """08/09/10: webp, mp4, webm, flac, opus, mp3 come back with the recorded content types."""
    expected_types = {
        ".webp": "image/webp",
        ".mp4": "video/mp4",
        ".webm": "video/webm",
        ".flac": "audio/flac",
        ".opus": "audio/ogg",
        ".mp3": "audio/mpeg",
        ".png": "image/png",
    }
    seen = set()
    for name in ("animated_webp_png", "video", "audio"):
        prompt = workflow(name) if name == "audio" else with_color(workflow(name))
        _, history = await client.run(prompt)
        for out in history["outputs"].values():
            for entry in out.get("images", []) + out.get("audio", []):
                ext = entry["filename"][entry["filename"].rindex(".") :]
                async with client.session.get(client.base + "/view", params=entry) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"] == expected_types[ext]
                    assert resp.headers["Content-Disposition"] == f'filename="{entry["filename"]}"'
                seen.add(ext)
    assert seen == set(expected_types)
