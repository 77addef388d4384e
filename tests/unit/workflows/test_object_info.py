"""Node definitions as the editor builds nodes from them, read once per ComfyUI boot."""

from __future__ import annotations

import asyncio
from typing import Any

from comfy_serverless.workflows.object_info import ObjectInfoCache
from tests.support.reference import object_info, object_info_raw


async def test_definitions_are_fetched_once_per_boot_and_again_after_a_restart() -> None:
    boot = 1
    fetches = 0

    async def fetch() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0)
        return {"KSampler": object_info_raw()["KSampler"]} if boot == 1 else object_info_raw()

    cache = ObjectInfoCache(fetch, lambda: boot)
    assert cache.current() is None
    first, second = await asyncio.gather(cache.get(), cache.get())
    assert first is second and fetches == 1
    assert "CLIPTextEncode" not in first and cache.current() is first
    boot = 2  # ComfyUI restarted, maybe with other custom nodes
    assert cache.current() is None
    again = await cache.get()
    assert fetches == 2 and "CLIPTextEncode" in again


def test_inputs_follow_input_order_and_extensions_add_upload_and_preview_widgets() -> None:
    info = object_info()
    ksampler = info.get("KSampler")
    assert ksampler is not None
    assert [s.name for s in ksampler.inputs][:4] == ["model", "seed", "steps", "cfg"]
    load_image = info.get("LoadImage")
    assert load_image is not None and [s.name for s in load_image.inputs] == ["image", "upload"]
    assert load_image.inputs[1].type == "IMAGEUPLOAD"
    load_audio = info.get("LoadAudio")
    assert load_audio is not None and [s.name for s in load_audio.inputs] == ["audio", "audioUI", "upload"]
    resize = info.get("ResizeImageMaskNode")
    assert resize is not None and resize.outputs[0].type == "*"
    assert info.get("NoSuchNode") is None and "NoSuchNode" not in info
