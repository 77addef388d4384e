"""Inline files: the chunked encoder gives exactly base64.b64encode's text, at every chunk boundary."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from comfy_serverless.delivery.inline import CHUNK, base64_len, encode_file


def test_base64_len_is_the_padded_length() -> None:
    for size in range(40):
        assert base64_len(size) == len(base64.b64encode(b"\xff" * size))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 11, 12, 13, 23, 24, 25, 100])
async def test_small_chunks_encode_like_b64encode(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "out.bin"
    path.write_bytes(data)
    encoded = await encode_file(path, chunk_size=12)
    assert encoded.data == base64.b64encode(data).decode("ascii")
    assert encoded.size_bytes == size
    assert encoded.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 2])
async def test_default_chunks_encode_like_b64encode(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "out.bin"
    path.write_bytes(data)
    encoded = await encode_file(path)
    assert encoded.data == base64.b64encode(data).decode("ascii")
    assert encoded.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_chunk_size_not_divisible_by_three_still_encodes_right(tmp_path: Path) -> None:
    data = os.urandom(101)
    path = tmp_path / "out.bin"
    path.write_bytes(data)
    assert (await encode_file(path, chunk_size=10)).data == base64.b64encode(data).decode("ascii")


async def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await encode_file(tmp_path / "gone.png")
