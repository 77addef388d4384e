"""Read-only endpoints of 01_meta_endpoints, and the node catalogue (object_info.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from .support import REFERENCE, EmulatorProcess, recorded_http

OBJECT_INFO = REFERENCE / "transcripts" / "object_info.json"


def _recorded(path: str) -> dict[str, Any]:
    (event,) = recorded_http("01_meta_endpoints", path=path)
    response: dict[str, Any] = event["response"]
    return response


def _recording_machine(make_emulator: Callable[..., EmulatorProcess]) -> EmulatorProcess:
    """An emulator whose model folders hold what the recording machine had (upscaler + configs)."""
    catalogue = json.loads(OBJECT_INFO.read_text())
    configs = catalogue["CheckpointLoader"]["input"]["required"]["config_name"][0]
    return make_emulator(
        models={"upscale_models": ["tiny_random_compact_x2.safetensors"], "configs": configs}
    )


async def test_meta_endpoints(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = _recording_machine(make_emulator)
    base = emu.base_url
    for path in (
        "/models",
        "/models/checkpoints",
        "/models/loras",
        "/models/vae",
        "/models/upscale_models",
        "/embeddings",
        "/features",
        "/prompt",
        "/object_info/SaveImage",
        "/object_info/LoadImage",
        "/object_info/NoSuchNode",
        "/queue",
        "/api/jobs/00000000-0000-0000-0000-000000000000",
        "/history/00000000-0000-0000-0000-000000000000",
        "/settings",
        "/users",
    ):
        expected = _recorded(path)
        async with session.get(base + path) as resp:
            body = await resp.read()
            assert resp.status == expected["status"], path
            assert resp.headers["Content-Type"] == expected["headers"]["Content-Type"], path
            assert json.loads(body) == expected["json"], path
            assert len(body) == expected["body_bytes"], path
    async with session.get(base + "/models/does_not_exist") as resp:
        assert resp.status == 404 and await resp.read() == b""
    async with session.get(base + "/nonexistent_route") as resp:
        assert resp.status == 404
    async with session.get(base + "/") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")


async def test_system_stats_shape(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(extra_args=["--cpu"])
    expected = _recorded("/system_stats")["json"]
    async with session.get(emu.base_url + "/system_stats") as resp:
        stats = await resp.json()
    async with session.get(emu.base_url + "/api/system_stats") as resp:
        assert resp.status == 200
    assert list(stats) == list(expected)
    assert list(stats["system"]) == list(expected["system"])
    assert list(stats["devices"][0]) == list(expected["devices"][0])
    assert stats["system"]["comfyui_version"] == "0.8.0"
    assert stats["system"]["argv"][0] == "main.py" and "--cpu" in stats["system"]["argv"]
    assert stats["devices"][0]["type"] == "cpu" and stats["devices"][0]["name"] == "cpu"
    gpu = make_emulator()
    async with session.get(gpu.base_url + "/system_stats") as resp:
        device = (await resp.json())["devices"][0]
    assert device["type"] == "cuda" and list(device) == list(expected["devices"][0])


async def test_object_info_is_the_recorded_catalogue(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    """With the recording machine's files in place, GET /object_info is byte for byte the recorded one
    (568 nodes, 602,629 bytes)."""
    emu = _recording_machine(make_emulator)
    async with session.get(emu.base_url + "/object_info") as resp:
        body = await resp.read()
    assert body == OBJECT_INFO.read_bytes()
    assert len(body) == _recorded("/object_info")["body_bytes"]


async def test_object_info_lists_real_model_files(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(
        models={
            "checkpoints": ["b.safetensors", "sub/a.ckpt", "notes.txt"],
            "loras": ["style.safetensors"],
            "vae": ["kl.pt"],
            "vae_approx": ["taesd_encoder.pth", "taesd_decoder.pth"],
            "clip": ["legacy_clip.safetensors"],
            "text_encoders": ["t5.safetensors"],
            "unet": ["flux.safetensors"],
        }
    )
    async with session.get(emu.base_url + "/object_info") as resp:
        info = await resp.json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "b.safetensors",
        "sub/a.ckpt",
    ]
    assert info["LoraLoader"]["input"]["required"]["lora_name"][0] == ["style.safetensors"]
    assert info["VAELoader"]["input"]["required"]["vae_name"][0] == ["kl.pt", "taesd", "pixel_space"]
    assert info["CLIPLoader"]["input"]["required"]["clip_name"][0] == [
        "legacy_clip.safetensors",
        "t5.safetensors",
    ]
    assert info["UNETLoader"]["input"]["required"]["unet_name"][0] == ["flux.safetensors"]
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == []
    async with session.get(emu.base_url + "/models/checkpoints") as resp:
        assert await resp.json() == ["b.safetensors", "sub/a.ckpt"]
    async with session.get(emu.base_url + "/object_info/CheckpointLoaderSimple") as resp:
        single = await resp.json()
    assert single["CheckpointLoaderSimple"] == info["CheckpointLoaderSimple"]


async def test_unknown_route_and_cors(
    make_emulator: Callable[..., EmulatorProcess], session: aiohttp.ClientSession
) -> None:
    emu = make_emulator(extra_args=["--enable-cors-header"])
    expected = _recorded("/nonexistent_route")
    async with session.get(emu.base_url + "/nonexistent_route") as resp:
        assert resp.status == 404 and await resp.read() == b""
        assert resp.headers["Content-Type"] == expected["headers"]["Content-Type"]
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with session.options(emu.base_url + "/prompt") as resp:
        assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
