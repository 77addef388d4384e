"""Small helpers shared by the integration tests."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

TINY = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16744448},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "tiny"}},
}


def tiny(prefix: str = "tiny", width: int = 64, color: int = 16744448) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def png_b64(width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 200, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode_image(item: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(item["data"])))
    image.load()
    return image


def assert_completed(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["status"] == "COMPLETED", answer.get("error", answer)
    output: dict[str, Any] = answer["output"]
    return output


def assert_failed(answer: dict[str, Any], *fragments: str) -> str:
    assert answer["status"] == "FAILED", answer
    error: str = answer["error"]
    for fragment in fragments:
        assert fragment in error, f"{fragment!r} not in error: {error!r}"
    return error


def assert_rgb_close(actual: tuple[int, ...], expected: tuple[int, int, int]) -> None:
    """Pixels within 1 of the expected value: real ComfyUI works in float32 and truncates."""
    assert all(abs(a - e) <= 1 for a, e in zip(actual[:3], expected, strict=True)), (actual, expected)
