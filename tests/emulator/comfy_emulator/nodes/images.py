"""Image nodes that produce real pictures with Pillow (no torch, no numpy).

Emulated costs come from the recorded timings of 16_long_chain (2048x2048 on 2 CPU cores):
EmptyImage ~60 ms, ImageAddNoise ~185 ms, ImageBlur(r=31) ~4.6 s, ImageScale ~18 ms.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from ..values import ImageBatch, Latent, MaskBatch
from .base import V3_FRAMES, NodeContext, NodeError, NodeResult, frame, node

S_PER_PX_EMPTY = 1.4e-8
S_PER_PX_NOISE = 4.4e-8
S_PER_PX_KERNEL = 2.8e-10  # ImageBlur: pixels * (2r+1)^2 * this
S_PER_PX_SCALE = 4.0e-9
S_PER_PX_SIMPLE = 5.0e-9

RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bislerp": Image.Resampling.BICUBIC,
}

# PreviewImage/PreviewAudio temp prefix alphabet (07_preview_image_temp: "ComfyUI_temp_oytau")
TEMP_ALPHABET = "abcdefghijklmnopqrstupvxyz"

SAVE_IMAGE_FRAMES = [
    frame(
        "/opt/ComfyUI/nodes.py",
        1652,
        "save_images",
        "img.save(os.path.join(full_output_folder, file), pnginfo=metadata, "
        "compress_level=self.compress_level)",
    ),
    frame(
        "/usr/local/lib/python3.11/site-packages/PIL/Image.py",
        2596,
        "save",
        "save_handler(self, fp, filename)",
    ),
    frame("/usr/local/lib/python3.11/site-packages/PIL/PngImagePlugin.py", 1491, "_save", "ImageFile._save("),
    frame("/usr/local/lib/python3.11/site-packages/PIL/ImageFile.py", 675, "_encode_tile", "fp.write(data)"),
]
IMAGE_TO_MASK_FRAME = (
    '  File "/opt/ComfyUI/comfy_extras/nodes_mask.py", line 141, in execute\n'
    "    mask = image[:, :, :, channels.index(channel)]\n"
    "           ~~~~~^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)


def temp_prefix() -> str:
    return "_temp_" + "".join(random.choice(TEMP_ALPHABET) for _ in range(5))


def expect_image(value: Any, name: str = "image") -> ImageBatch:
    if isinstance(value, ImageBatch):
        return value
    raise NodeError("AttributeError", f"'{type(value).__name__}' object has no attribute 'shape'")


def expect_mask(value: Any) -> MaskBatch:
    if isinstance(value, MaskBatch):
        return value
    raise NodeError("AttributeError", f"'{type(value).__name__}' object has no attribute 'reshape'")


def rgb_of(color: int) -> tuple[int, int, int]:
    return ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def disk_full_error(frames: list[str]) -> NodeError:
    return NodeError("OSError", "[Errno 28] No space left on device", frames)


def check_disk(ctx: NodeContext, path: str, frames: list[str]) -> None:
    """``disk_full`` fault: the file is created (empty) and the write fails, as on a full disk."""
    if ctx.fault("disk_full"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb"):
            pass
        raise disk_full_error(frames)


# --------------------------------------------------------------------------- sources
@node("EmptyImage")
async def empty_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    width, height = int(inputs["width"]), int(inputs["height"])
    batch = int(inputs["batch_size"])
    color = rgb_of(int(inputs["color"]))
    img = await ctx.work(width * height * batch * S_PER_PX_EMPTY, Image.new, "RGB", (width, height), color)
    assert img is not None
    return NodeResult((ImageBatch([img] * batch),))


def _load_frames(path: str) -> tuple[list[Image.Image], list[Image.Image]]:
    if not os.path.isfile(path):
        raise NodeError("FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'")
    images: list[Image.Image] = []
    masks: list[Image.Image] = []
    with Image.open(path) as opened:
        size: tuple[int, int] | None = None
        for raw in ImageSequence.Iterator(opened):
            frame_img = ImageOps.exif_transpose(raw) or raw
            if frame_img.mode == "I":
                frame_img = frame_img.point(lambda i: i * (1 / 255))
            rgb = frame_img.convert("RGB")
            if size is None:
                size = rgb.size
            if rgb.size != size:
                continue
            if "A" in frame_img.getbands():
                mask = ImageOps.invert(frame_img.getchannel("A"))
            elif frame_img.mode == "P" and "transparency" in frame_img.info:
                mask = ImageOps.invert(frame_img.convert("RGBA").getchannel("A"))
            else:
                mask = Image.new("L", (64, 64), 0)
            images.append(rgb.copy())
            masks.append(mask.copy())
            if opened.format == "MPO":
                break
    return images, masks


@node("LoadImage", "LoadImageOutput")
async def load_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """Reads the real file; ``sub/name.png`` and ``name.png [output]`` both work (06, 20)."""
    default_dir = ctx.folders.output_dir if ctx.class_type == "LoadImageOutput" else None
    path = ctx.folders.get_annotated_filepath(str(inputs["image"]), default_dir)
    result = await ctx.work(0.0, _load_frames, path)
    assert result is not None
    images, masks = result
    return NodeResult((ImageBatch(images), MaskBatch(masks)))


@node("LoadImageMask")
async def load_image_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    path = ctx.folders.get_annotated_filepath(str(inputs["image"]))
    channel = str(inputs.get("channel", "alpha"))

    def load() -> Image.Image:
        with Image.open(path) as opened:
            img: Image.Image = ImageOps.exif_transpose(opened) or opened
            bands = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}
            band = bands.get(channel, "A")
            if img.mode == "P":
                img = img.convert("RGBA")
            if band in img.getbands():
                mask = img.getchannel(band)
                return ImageOps.invert(mask) if band == "A" else mask.copy()
            return Image.new("L", (64, 64), 0)

    mask = await ctx.work(0.0, load)
    assert mask is not None
    return NodeResult((MaskBatch([mask]),))


# --------------------------------------------------------------------------- transforms
@node("ImageInvert")
async def image_invert(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    cost = batch.width * batch.height * batch.batch * S_PER_PX_SIMPLE
    frames = await ctx.work(cost, lambda: [ImageOps.invert(f) for f in batch.frames])
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


@node("ImageBlur")
async def image_blur(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    radius = int(inputs["blur_radius"])
    sigma = float(inputs["sigma"])
    cost = batch.width * batch.height * batch.batch * (2 * radius + 1) ** 2 * S_PER_PX_KERNEL
    blur = ImageFilter.GaussianBlur(radius=min(sigma, float(radius)))
    frames = await ctx.work(cost, lambda: [f.filter(blur) for f in batch.frames])
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


@node("ImageAddNoise")
async def image_add_noise(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    strength = float(inputs.get("strength", 0.5))
    cost = batch.width * batch.height * batch.batch * S_PER_PX_NOISE

    def add() -> list[Image.Image]:
        out = []
        for f in batch.frames:
            sigma = max(1.0, 255.0 * strength)
            noise = Image.merge("RGB", [Image.effect_noise(f.size, sigma) for _ in range(3)])
            out.append(ImageChops.add(f, noise, scale=1.0, offset=-128))
        return out

    frames = await ctx.work(cost, add)
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


def _scale_frames(
    frames: list[Image.Image], width: int, height: int, method: str, crop: str
) -> list[Image.Image]:
    out = []
    for f in frames:
        src = f
        if crop == "center":
            old_ratio = f.width / f.height
            new_ratio = width / height
            if old_ratio > new_ratio:
                w = round(f.height * new_ratio)
                x = (f.width - w) // 2
                src = f.crop((x, 0, x + w, f.height))
            elif old_ratio < new_ratio:
                h = round(f.width / new_ratio)
                y = (f.height - h) // 2
                src = f.crop((0, y, f.width, y + h))
        out.append(src.resize((width, height), RESAMPLE.get(method, Image.Resampling.BILINEAR)))
    return out


@node("ImageScale")
async def image_scale(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    width, height = int(inputs["width"]), int(inputs["height"])
    if width == 0 and height == 0:
        return NodeResult((batch,))
    if width == 0:
        width = max(1, round(batch.width * height / batch.height))
    elif height == 0:
        height = max(1, round(batch.height * width / batch.width))
    cost = max(width * height, batch.width * batch.height) * batch.batch * S_PER_PX_SCALE
    frames = await ctx.work(
        cost,
        _scale_frames,
        batch.frames,
        width,
        height,
        str(inputs["upscale_method"]),
        str(inputs.get("crop")),
    )
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


@node("ImageScaleBy")
async def image_scale_by(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    factor = float(inputs["scale_by"])
    width = max(1, round(batch.width * factor))
    height = max(1, round(batch.height * factor))
    cost = max(width * height, batch.width * batch.height) * batch.batch * S_PER_PX_SCALE
    frames = await ctx.work(
        cost, _scale_frames, batch.frames, width, height, str(inputs["upscale_method"]), ""
    )
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


@node("ImageToMask")
async def image_to_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = expect_image(inputs["image"])
    channel = str(inputs["channel"])
    channels = ["red", "green", "blue", "alpha"]
    index = channels.index(channel)
    if index >= 3:
        # 14_runtime_error: ComfyUI images have 3 channels, so 'alpha' always fails like this.
        raise NodeError(
            "IndexError",
            "index 3 is out of bounds for dimension 3 with size 3",
            [*V3_FRAMES, IMAGE_TO_MASK_FRAME],
        )
    return NodeResult((MaskBatch([f.getchannel(index) for f in batch.frames]),))


@node("MaskToImage")
async def mask_to_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    masks = expect_mask(inputs["mask"])
    return NodeResult((ImageBatch([Image.merge("RGB", [m, m, m]) for m in masks.frames]),))


@node("ImageBatch")
async def image_batch(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    a = expect_image(inputs["image1"])
    b = expect_image(inputs["image2"])
    second = b.frames
    if b.width != a.width or b.height != a.height:
        second = _scale_frames(b.frames, a.width, a.height, "bilinear", "center")
    return NodeResult((ImageBatch(a.frames + second),))


# --------------------------------------------------------------------------- info / text
@node("GetImageSize")
async def get_image_size(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """11/22: sends a binary TEXT frame to every socket, outputs (width, height, batch_size)."""
    value = inputs["image"]
    if isinstance(value, Latent):
        width, height, batch = value.width * 8, value.height * 8, value.batch
    else:
        img = expect_image(value)
        width, height, batch = img.width, img.height, img.batch
    ctx.send_text(f"width: {width}, height: {height}\n batch size: {batch}")
    return NodeResult((width, height, batch))


@node("PreviewAny")
async def preview_any(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """11: ``{"text": ["48"]}``."""
    source = inputs.get("source")
    value = "None"
    if isinstance(source, str):
        value = source
    elif isinstance(source, (int, float, bool)):
        value = str(source)
    elif source is not None:
        try:
            value = json.dumps(source)
        except (TypeError, ValueError):
            value = str(source)
    return NodeResult((), {"text": [value]})


# --------------------------------------------------------------------------- saving
def _png_info(ctx: NodeContext) -> PngInfo | None:
    if ctx.settings.disable_metadata:
        return None
    info = PngInfo()
    info.add_text("prompt", json.dumps(ctx.prompt))
    extra = ctx.extra_data.get("extra_pnginfo")
    if isinstance(extra, dict):
        for key, value in extra.items():
            info.add_text(str(key), json.dumps(value))
    return info


async def save_image_batch(ctx: NodeContext, batch: ImageBatch, prefix: str, temp: bool) -> dict[str, Any]:
    output_dir = ctx.folders.temp_dir if temp else ctx.folders.output_dir
    kind = "temp" if temp else "output"
    compress_level = 1 if temp else 4
    full_folder, filename, counter, subfolder, _ = ctx.folders.get_save_image_path(
        prefix, output_dir, batch.width, batch.height
    )
    results = []
    metadata = _png_info(ctx)
    for batch_number, img in enumerate(batch.frames):
        name = filename.replace("%batch_num%", str(batch_number))
        file = f"{name}_{counter:05}_.png"
        path = os.path.join(full_folder, file)
        check_disk(ctx, path, SAVE_IMAGE_FRAMES)
        await ctx.work(
            0.0, lambda img=img, path=path: img.save(path, pnginfo=metadata, compress_level=compress_level)
        )
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"images": results}


@node("SaveImage")
async def save_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """03: ``{prefix}_{counter:05}_.png``; 06: prefix ``sub/x`` -> subfolder "sub"."""
    batch = expect_image(inputs["images"])
    ui = await save_image_batch(ctx, batch, str(inputs.get("filename_prefix", "ComfyUI")), temp=False)
    return NodeResult((), ui)


@node("PreviewImage")
async def preview_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """07: type "temp", ``ComfyUI_temp_xxxxx_00001_.png``."""
    batch = expect_image(inputs["images"])
    ui = await save_image_batch(ctx, batch, "ComfyUI" + temp_prefix(), temp=True)
    return NodeResult((), ui)


@node("MaskPreview")
async def mask_preview(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    masks = expect_mask(inputs["mask"])
    batch = ImageBatch([Image.merge("RGB", [m, m, m]) for m in masks.frames])
    ui = await save_image_batch(ctx, batch, "ComfyUI" + temp_prefix(), temp=True)
    return NodeResult((), ui)


def _noise_frame(width: int, height: int) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise((width, height), 64) for _ in range(3)])


def noise_frames(width: int, height: int, batch: int) -> list[Image.Image]:
    return [_noise_frame(width, height) for _ in range(batch)]


def dummy_image(inputs: dict[str, Any]) -> ImageBatch:
    width = int(inputs.get("width", 512) or 512) if isinstance(inputs.get("width", 512), int) else 512
    height = int(inputs.get("height", 512) or 512) if isinstance(inputs.get("height", 512), int) else 512
    batch_value = inputs.get("batch_size", 1)
    batch = batch_value if isinstance(batch_value, int) and batch_value > 0 else 1
    width, height = max(1, min(width, 4096)), max(1, min(height, 4096))
    return ImageBatch([Image.new("RGB", (width, height), (0, 0, 0))] * batch)
