"""Animated images, video and audio nodes (08_animated_webp_png, 09_video_mp4_webm, 10_audio).

Animated WEBP/PNG are real files written by Pillow.  Video and audio files have the right extension,
folder and leading magic bytes (``ftypisom``, EBML, ``fLaC``, ``ID3``, ``OggS``) but only a token body:
nothing in the worker decodes them, and encoding real streams would need ffmpeg.
"""

from __future__ import annotations

import math
import os
import struct
import wave
from typing import Any

from ..values import Audio, Video
from .base import NodeContext, NodeError, NodeResult, frame, node
from .images import check_disk, expect_image, temp_prefix

S_PER_FRAME_PX_ENCODE = 2.0e-8  # rough video-encode cost


def _frames_for(name: str, module: str, line: int) -> list[str]:
    return [frame(f"/opt/ComfyUI/{module}", line, name, "f.write(data)")]


# --------------------------------------------------------------------------- minimal containers
def flac_bytes(sample_rate: int, channels: int, samples: int) -> bytes:
    """fLaC + a STREAMINFO block (last metadata block, no audio frames)."""
    sr = max(1, min(sample_rate, (1 << 20) - 1))
    info = struct.pack(">HH", 4096, 4096) + b"\x00\x00\x00" + b"\x00\x00\x00"
    packed = (sr << 44) | ((max(1, channels) - 1) << 41) | ((16 - 1) << 36) | (samples & ((1 << 36) - 1))
    info += packed.to_bytes(8, "big") + b"\x00" * 16
    header = bytes([0x80]) + len(info).to_bytes(3, "big")
    return b"fLaC" + header + info


def mp3_bytes(duration_s: float) -> bytes:
    """ID3v2.4 header followed by silent 128 kbit/s 44.1 kHz MPEG-1 layer III frames."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frames = max(1, math.ceil(duration_s * 44100 / 1152))
    one = b"\xff\xfb\x90\x64" + b"\x00" * (417 - 4)
    return tag + one * min(frames, 2000)


_OGG_CRC: list[int] = []


def _ogg_crc(data: bytes) -> int:
    if not _OGG_CRC:
        for i in range(256):
            r = i << 24
            for _ in range(8):
                r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
            _OGG_CRC.append(r & 0xFFFFFFFF)
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]) & 0xFFFFFFFF
    return crc


def _ogg_page(packet: bytes, seq: int, header_type: int, granule: int = 0) -> bytes:
    segments = []
    rest = len(packet)
    while rest >= 255:
        segments.append(255)
        rest -= 255
    segments.append(rest)
    head = (
        b"OggS"
        + bytes([0, header_type])
        + struct.pack("<qIII", granule, 0x5EEDC0DE, seq, 0)
        + bytes([len(segments)])
        + bytes(segments)
    )
    page = head + packet
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def opus_bytes(sample_rate: int, channels: int) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, max(1, channels), 312, sample_rate, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 6) + b"comfyE" + struct.pack("<I", 0)
    return _ogg_page(head, 0, 0x02) + _ogg_page(tags, 1, 0x00) + _ogg_page(b"", 2, 0x04)


def mp4_bytes(width: int, height: int, frames: int, fps: float) -> bytes:
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41"
    ftyp = struct.pack(">I", len(ftyp) + 4) + ftyp
    note = f"emulated video {width}x{height} {frames} frames @ {fps:g} fps".encode()
    free = struct.pack(">I", len(note) + 8) + b"free" + note
    mdat = struct.pack(">I", 8 + 64) + b"mdat" + b"\x00" * 64
    return ftyp + free + mdat


def webm_bytes(width: int, height: int, frames: int, fps: float) -> bytes:
    def element(ident: bytes, payload: bytes) -> bytes:
        return (
            ident + bytes([0x80 | len(payload)]) + payload
            if len(payload) < 127
            else ident + b"\x01" + len(payload).to_bytes(7, "big") + payload
        )

    ebml = element(
        b"\x1a\x45\xdf\xa3",
        element(b"\x42\x86", b"\x01")
        + element(b"\x42\xf7", b"\x01")
        + element(b"\x42\xf2", b"\x04")
        + element(b"\x42\xf3", b"\x08")
        + element(b"\x42\x82", b"webm")
        + element(b"\x42\x87", b"\x04")
        + element(b"\x42\x85", b"\x02"),
    )
    note = f"emulated video {width}x{height} {frames} frames @ {fps:g} fps".encode()
    segment = b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + element(b"\xec", note)
    return ebml + segment


# --------------------------------------------------------------------------- helpers
def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


async def _write_file(ctx: NodeContext, path: str, data: bytes, frames: list[str]) -> None:
    check_disk(ctx, path, frames)
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def write() -> None:
        with open(path, "wb") as fh:
            fh.write(data)

    await ctx.work(0.0, write)


def _animated_ui(file: str, subfolder: str) -> dict[str, Any]:
    return {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": [True]}


# --------------------------------------------------------------------------- animated images
@node("SaveAnimatedWEBP")
async def save_animated_webp(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["images"])
    folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(
        str(inputs.get("filename_prefix", "ComfyUI")), ctx.folders.output_dir, batch.width, batch.height
    )
    file = f"{filename}_{counter:05}_.webp"
    path = os.path.join(folder, file)
    check_disk(ctx, path, _frames_for("save_images", "comfy_extras/nodes_images.py", 190))
    fps = float(inputs.get("fps", 6.0))
    method = {"default": 4, "fastest": 0, "slowest": 6}.get(str(inputs.get("method", "default")), 4)
    frames = batch.frames

    def save() -> None:
        frames[0].save(
            path,
            save_all=True,
            append_images=frames[1:],
            duration=int(1000.0 / fps),
            loop=0,
            lossless=bool(inputs.get("lossless", True)),
            quality=int(inputs.get("quality", 80)),
            method=method,
        )

    await ctx.work(batch.width * batch.height * batch.batch * S_PER_FRAME_PX_ENCODE, save)
    return NodeResult((), _animated_ui(file, subfolder))


@node("SaveAnimatedPNG")
async def save_animated_png(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["images"])
    folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(
        str(inputs.get("filename_prefix", "ComfyUI")), ctx.folders.output_dir, batch.width, batch.height
    )
    file = f"{filename}_{counter:05}_.png"
    path = os.path.join(folder, file)
    check_disk(ctx, path, _frames_for("save_images", "comfy_extras/nodes_images.py", 240))
    fps = float(inputs.get("fps", 6.0))
    frames = batch.frames

    def save() -> None:
        frames[0].save(
            path,
            save_all=True,
            append_images=frames[1:],
            duration=int(1000.0 / fps),
            loop=0,
            compress_level=int(inputs.get("compress_level", 4)),
        )

    await ctx.work(batch.width * batch.height * batch.batch * S_PER_FRAME_PX_ENCODE, save)
    return NodeResult((), _animated_ui(file, subfolder))


# --------------------------------------------------------------------------- video
@node("CreateVideo")
async def create_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = expect_image(inputs["images"])
    audio = inputs.get("audio")
    return NodeResult(
        (Video(images, float(inputs.get("fps", 30.0)), audio if isinstance(audio, Audio) else None),)
    )


@node("GetVideoComponents")
async def get_video_components(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    video = inputs["video"]
    if not isinstance(video, Video):
        raise NodeError(
            "AttributeError", f"'{type(video).__name__}' object has no attribute 'get_components'"
        )
    audio = video.audio or Audio(44100, 2, 0)
    return NodeResult((video.images, audio, video.fps))


@node("SaveVideo")
async def save_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """09: ``video/anchor_video`` -> ``anchor_video_00001_.mp4`` in subfolder "video", under ``images``."""
    video = inputs["video"]
    if not isinstance(video, Video):
        raise NodeError("AttributeError", f"'{type(video).__name__}' object has no attribute 'save_to'")
    images = video.images
    folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(
        str(inputs.get("filename_prefix", "video/ComfyUI")),
        ctx.folders.output_dir,
        images.width,
        images.height,
    )
    file = f"{filename}_{counter:05}_.mp4"
    cost = images.width * images.height * images.batch * S_PER_FRAME_PX_ENCODE
    await ctx.work(cost)
    await _write_file(
        ctx,
        os.path.join(folder, file),
        mp4_bytes(images.width, images.height, images.batch, video.fps),
        _frames_for("execute", "comfy_extras/nodes_video.py", 121),
    )
    return NodeResult((), _animated_ui(file, subfolder))


@node("SaveWEBM")
async def save_webm(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = expect_image(inputs["images"])
    folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(
        str(inputs.get("filename_prefix", "ComfyUI")), ctx.folders.output_dir, images.width, images.height
    )
    file = f"{filename}_{counter:05}_.webm"
    fps = float(inputs.get("fps", 24.0))
    await ctx.work(images.width * images.height * images.batch * S_PER_FRAME_PX_ENCODE * 4)
    await _write_file(
        ctx,
        os.path.join(folder, file),
        webm_bytes(images.width, images.height, images.batch, fps),
        _frames_for("execute", "comfy_extras/nodes_video.py", 60),
    )
    return NodeResult((), _animated_ui(file, subfolder))


# --------------------------------------------------------------------------- audio
@node("EmptyAudio")
async def empty_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    rate = int(inputs.get("sample_rate", 44100))
    channels = int(inputs.get("channels", 2))
    duration = float(inputs.get("duration", 60.0))
    return NodeResult((Audio(rate, channels, int(duration * rate)),))


def _audio_file(fmt: str, audio: Audio) -> bytes:
    if fmt == "mp3":
        return mp3_bytes(audio.samples / max(1, audio.sample_rate))
    if fmt == "opus":
        return opus_bytes(audio.sample_rate, audio.channels)
    return flac_bytes(audio.sample_rate, audio.channels, audio.samples)


async def _save_audio(ctx: NodeContext, inputs: dict[str, Any], fmt: str, temp: bool) -> NodeResult:
    audio = inputs["audio"]
    if not isinstance(audio, Audio):
        raise NodeError("TypeError", f"'{type(audio).__name__}' object is not subscriptable")
    if temp:
        prefix, directory, kind = "ComfyUI" + temp_prefix(), ctx.folders.temp_dir, "temp"
    else:
        prefix, directory, kind = (
            str(inputs.get("filename_prefix", "audio/ComfyUI")),
            ctx.folders.output_dir,
            "output",
        )
    folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(prefix, directory)
    results = []
    for batch_number in range(max(1, audio.batch)):
        name = filename.replace("%batch_num%", str(batch_number))
        file = f"{name}_{counter:05}_.{fmt}"
        await _write_file(
            ctx,
            os.path.join(folder, file),
            _audio_file(fmt, audio),
            _frames_for("save_audio", "comfy_extras/nodes_audio.py", 180),
        )
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return NodeResult((), {"audio": results})


@node("SaveAudio")
async def save_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _save_audio(ctx, inputs, "flac", temp=False)


@node("SaveAudioMP3")
async def save_audio_mp3(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _save_audio(ctx, inputs, "mp3", temp=False)


@node("SaveAudioOpus")
async def save_audio_opus(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _save_audio(ctx, inputs, "opus", temp=False)


@node("PreviewAudio")
async def preview_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _save_audio(ctx, inputs, "flac", temp=True)


@node("LoadAudio")
async def load_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """A WAV file's real rate, channels and length (ComfyUI decodes any format with PyAV and keeps the
    file's rate); other formats get a rough length from their size."""
    path = ctx.folders.get_annotated_filepath(str(inputs["audio"]))
    try:
        with wave.open(path, "rb") as wav:
            return NodeResult((Audio(wav.getframerate(), wav.getnchannels(), wav.getnframes()),))
    except (wave.Error, EOFError):
        size = file_size(path)
        return NodeResult((Audio(44100, 2, max(44100, size // 4)),))


@node("LoadVideo")
async def load_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    from .images import dummy_image

    return NodeResult((Video(dummy_image({"width": 64, "height": 64, "batch_size": 8}), 24.0),))
