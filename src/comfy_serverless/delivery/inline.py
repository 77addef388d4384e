"""Output files as base64 text for the job result, read from disk piece by piece.

The encoded text is written into one buffer of its exact final size, then turned into a ``str`` once:
the peak is about 2.7 times the file (the buffer and the string, 4/3 of the file each) and the file
itself is never whole in memory.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

#: Bytes read per step: a multiple of 3, so every step encodes to whole base64 quads without padding.
#: Small, so the read buffer and each step's encoded piece add little next to the result itself even
#: for a 1 MB file (measured no slower than larger steps: benchmarks/outputs.py).
CHUNK = 3 * (64 * 1024 // 3)


def base64_len(size: int) -> int:
    """Length of the padded base64 text of ``size`` bytes."""
    return 4 * ((size + 2) // 3)


@dataclass(frozen=True, slots=True)
class EncodedFile:
    """A file as base64, with what was read."""

    data: str
    size_bytes: int
    sha256: str


def _fill(file: io.BufferedReader, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; returns how much was read."""
    filled = 0
    while filled < len(view):
        count = file.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def encode_file_sync(path: Path, chunk_size: int = CHUNK) -> EncodedFile:
    """:func:`encode_file` without the thread. ``chunk_size`` is rounded down to a multiple of 3."""
    step = max(3, chunk_size - chunk_size % 3)
    digest = hashlib.sha256()
    with path.open("rb") as file:
        size = path.stat().st_size
        out = bytearray(base64_len(size))
        buffer = bytearray(step)
        view = memoryview(buffer)
        read = written = 0
        while True:
            count = _fill(file, view)
            if not count:
                break
            read += count
            if read > size:
                raise OSError(f"{path.name} grew while it was being read")
            piece = view[:count]
            digest.update(piece)
            encoded = binascii.b2a_base64(piece, newline=False)
            out[written : written + len(encoded)] = encoded
            written += len(encoded)
            if count < step:
                break
        if read != size:
            raise OSError(f"{path.name} shrank while it was being read")
    text = out.decode("ascii")
    del out
    return EncodedFile(data=text, size_bytes=size, sha256=digest.hexdigest())


async def encode_file(path: Path, chunk_size: int = CHUNK) -> EncodedFile:
    """A file's bytes as base64 text (in a thread), with its size and SHA-256. Raises OSError when the
    file cannot be read or changes size while it is read."""
    return await asyncio.to_thread(encode_file_sync, path, chunk_size)
