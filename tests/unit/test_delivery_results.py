"""Result items and shapes: inline items carry data, uploaded ones a URL, each with its size and hash;
too-large results fail before any file is read; converted images report their new name and type."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfy_serverless.delivery.results import (
    LocalOutput,
    convert_outputs,
    deliver,
    native_result,
    worker_comfyui_result,
)
from comfy_serverless.delivery.storage import StoredObject
from comfy_serverless.errors import OutputError, OutputTooLargeError
from comfy_serverless.media.outputs import OutputFile, OutputText


def _output(path: Path, node: str = "9", **extra: Any) -> LocalOutput:
    kind = extra.pop("kind", "image")
    mime = extra.pop("mime", "image/png")
    subfolder = extra.pop("subfolder", "")
    output = OutputFile(node, kind, path.name, "job-x/" + subfolder, "output", mime, **extra)
    return LocalOutput(output, path, path.stat().st_size, subfolder)


class _Store:
    """Records uploads; stands in for S3Store where only the keys and item fields matter."""

    bucket = "outputs"

    def __init__(self) -> None:
        self.keys: list[str] = []

    def key_for(self, job_id: str, name: str) -> str:
        return f"outputs/{job_id}/{name}"

    async def upload(self, path: Path, key: str, mime: str, *, label: str) -> StoredObject:
        self.keys.append(key)
        data = await asyncio.to_thread(path.read_bytes)
        return StoredObject(f"https://s3.test/{key}", key, len(data), hashlib.sha256(data).hexdigest())


async def test_inline_items_carry_data_size_and_hash(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG" + bytes(range(200)))
    clip = tmp_path / "b.webp"
    clip.write_bytes(b"RIFF....WEBP")
    outputs = [
        _output(png, subfolder="pics"),
        _output(clip, node="12", kind="video", mime="image/webp", animated=True),
    ]
    items = await deliver(
        outputs, [OutputText("5", "héllo")], mode="auto", store=None, job_id="j", limit=10_000
    )
    assert items[0] == {
        "node_id": "9",
        "type": "image",
        "filename": "a.png",
        "subfolder": "pics",
        "mime": "image/png",
        "data": base64.b64encode(png.read_bytes()).decode(),
        "size_bytes": 204,
        "sha256": hashlib.sha256(png.read_bytes()).hexdigest(),
    }
    assert items[1]["animated"] is True and items[1]["type"] == "video"
    assert base64.b64decode(items[1]["data"]) == clip.read_bytes()
    assert items[2] == {
        "node_id": "5",
        "type": "text",
        "filename": None,
        "mime": "text/plain",
        "text": "héllo",
        "data": base64.b64encode("héllo".encode()).decode(),
    }


async def test_uploaded_items_carry_url_key_bucket_size_and_hash(tmp_path: Path) -> None:
    first = tmp_path / "a.png"
    first.write_bytes(b"1" * 50)
    second_dir = tmp_path / "other"
    second_dir.mkdir()
    second = second_dir / "a.png"
    second.write_bytes(b"2" * 60)
    temp = OutputFile("9", "image", "a.png", "", "temp", "image/png")
    store = _Store()
    items = await deliver(
        [_output(first), LocalOutput(temp, second, 60, "")],
        [OutputText("5", "done")],
        mode="s3",
        store=store,  # type: ignore[arg-type]
        job_id="j",
        limit=10_000,
    )
    # Same node and name twice: each still gets its own object.
    assert store.keys == ["outputs/j/9-a.png", "outputs/j/9-2-a.png"]
    assert items[0]["url"] == "https://s3.test/outputs/j/9-a.png" and "data" not in items[0]
    assert items[0]["key"] == "outputs/j/9-a.png" and items[0]["bucket"] == "outputs"
    assert items[0]["size_bytes"] == 50 and items[0]["sha256"] == hashlib.sha256(b"1" * 50).hexdigest()
    assert items[1]["temp"] is True and items[1]["size_bytes"] == 60
    assert items[2]["text"] == "done" and "url" not in items[2]


async def test_a_result_too_large_fails_before_any_file_is_read(tmp_path: Path) -> None:
    never_read = tmp_path / "missing.png"  # reading it would fail differently
    output = LocalOutput(
        OutputFile("9", "image", "big.png", "", "output", "image/png"), never_read, 10**7, ""
    )
    with pytest.raises(
        OutputTooLargeError, match=r"^The outputs are 13\.3 MB as base64, more than the 2\.0 kB"
    ):
        await deliver([output], [], mode="auto", store=None, job_id="j", limit=2000)


async def test_an_unreadable_file_is_an_output_error_naming_it(tmp_path: Path) -> None:
    output = LocalOutput(
        OutputFile("9", "image", "x.png", "", "output", "image/png"), tmp_path / "gone", 10, ""
    )
    with pytest.raises(OutputError, match=r"^output x\.png of node 9 could not be read: No such file"):
        await deliver([output], [], mode="inline", store=None, job_id="j", limit=2000)


def test_native_shape() -> None:
    items = [{"type": "image", "filename": "a.png", "data": "QQ=="}]
    assert native_result("p1", items) == {"status": "success", "prompt_id": "p1", "outputs": items}
    assert native_result("p1", [], seeds={"3": 42}, warnings=["w"]) == {
        "status": "success",
        "prompt_id": "p1",
        "outputs": [],
        "seeds": {"3": 42},
        "warnings": ["w"],
    }


def test_worker_comfyui_shape() -> None:
    items = [
        {"type": "image", "filename": "a.png", "data": "QQ==", "size_bytes": 1},
        {"type": "image", "filename": "b.png", "url": "https://x/b.png", "key": "k"},
        {"type": "text", "filename": None, "text": "hi", "data": "aGk="},
    ]
    assert worker_comfyui_result(items, warnings=["node 4 failed"], seeds={"3": 1}) == {
        "images": [
            {"filename": "a.png", "type": "base64", "data": "QQ=="},
            {"filename": "b.png", "type": "s3_url", "data": "https://x/b.png"},
        ],
        "texts": ["hi"],
        "errors": ["node 4 failed"],
        "seeds": {"3": 1},
    }
    assert worker_comfyui_result(items[2:]) == {"images": [], "texts": ["hi"], "status": "success_no_images"}


async def test_converted_images_report_their_new_name_type_and_size(tmp_path: Path) -> None:
    png = tmp_path / "ComfyUI_00001_.png"
    Image.effect_noise((64, 64), 40).convert("RGB").save(png)
    audio = tmp_path / "a.flac"
    audio.write_bytes(b"fLaC")
    outputs = [_output(png, subfolder="pics"), _output(audio, kind="audio", mime="audio/flac")]
    converted = await convert_outputs(outputs, "jpeg", 80, keep_metadata=False, dest_dir=tmp_path / "c")
    image, sound = converted
    assert image.output.filename == "ComfyUI_00001_.jpg" and image.output.mime == "image/jpeg"
    assert image.path == tmp_path / "c" / "ComfyUI_00001_.jpg" and image.size == image.path.stat().st_size
    assert image.subfolder == "pics" and image.output.node_id == "9"
    assert sound is outputs[1]
    items = await deliver(converted, [], mode="inline", store=None, job_id="j", limit=10**6)
    assert items[0]["filename"] == "ComfyUI_00001_.jpg" and items[0]["mime"] == "image/jpeg"
    assert base64.b64decode(items[0]["data"])[:3] == b"\xff\xd8\xff"
