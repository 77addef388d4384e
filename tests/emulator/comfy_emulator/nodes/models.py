"""Model nodes: loaders, text encoding, sampling (with progress + previews), VAE, upscale models,
and the generic pass-through used for every other class of the catalogue.

Timings follow 25_ksampler_no_preview (CPU): checkpoint load ~2.4 s for a ~2 GB file, CLIPTextEncode
~0.2 s, KSampler ~2 s per step at 128x128, VAEDecode ~1 s at 128x128; and 15_progress_upscale: ~70 ms per
512-pixel tile with 32 px overlap (16 tiles for 1536x1536).
"""

from __future__ import annotations

import io
import math
import os
import re
from functools import lru_cache
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from ..catalog import MODEL_INPUTS
from ..values import Audio, Handle, ImageBatch, Latent, MaskBatch, Video
from .base import NodeContext, NodeError, NodeResult, node
from .images import dummy_image, expect_image, noise_frames

LOAD_BASE_S = 0.3
LOAD_S_PER_BYTE = 1.0e-9
CLIP_ENCODE_S = 0.2
STEP_S_AT_128 = 2.0
VAE_S_AT_128 = 1.0
UPSCALE_TILE_S = 0.07
UPSCALE_TILE = 512
UPSCALE_OVERLAP = 32


def type_of(value: Any) -> str | None:
    if isinstance(value, ImageBatch):
        return "IMAGE"
    if isinstance(value, MaskBatch):
        return "MASK"
    if isinstance(value, Latent):
        return "LATENT"
    if isinstance(value, Audio):
        return "AUDIO"
    if isinstance(value, Video):
        return "VIDEO"
    if isinstance(value, Handle):
        return value.type_name
    return None


def dummy_value(type_name: Any, inputs: dict[str, Any]) -> Any:
    if type_name == "IMAGE":
        return dummy_image(inputs)
    if type_name == "MASK":
        return MaskBatch([Image.new("L", (64, 64), 0)])
    if type_name == "LATENT":
        img = dummy_image(inputs)
        return Latent(max(1, img.width // 8), max(1, img.height // 8), img.batch)
    if type_name == "AUDIO":
        return Audio(44100, 2, 44100)
    if type_name == "VIDEO":
        return Video(dummy_image({"width": 64, "height": 64, "batch_size": 8}), 24.0)
    if type_name == "INT":
        return 0
    if type_name == "FLOAT":
        return 0.0
    if type_name == "STRING":
        return ""
    if type_name == "BOOLEAN":
        return False
    if isinstance(type_name, list):  # COMBO output
        return type_name[0] if type_name else ""
    return Handle(str(type_name))


def passthrough_outputs(return_types: tuple[Any, ...], inputs: dict[str, Any]) -> tuple[Any, ...]:
    """Outputs of a node nobody implemented: an input of the same type if there is one, else a dummy.
    An output whose type follows the inputs (V3 match-type, ``*``) passes the first typed input on,
    as ResizeImageMaskNode returns the IMAGE or MASK it was given."""
    by_type: dict[str, Any] = {}
    first: Any = None
    for value in inputs.values():
        kind = type_of(value)
        if kind is not None and kind not in by_type:
            by_type[kind] = value
            first = value if first is None else first
    return tuple(
        by_type[t]
        if isinstance(t, str) and t in by_type
        else first
        if t in ("*", "COMFY_MATCHTYPE_V3") and first is not None
        else dummy_value(t, inputs)
        for t in return_types
    )


def model_files(ctx: NodeContext, inputs: dict[str, Any]) -> list[str]:
    """Full paths of the model files this loader names; missing ones fail like ComfyUI."""
    paths = []
    for name, folder in MODEL_INPUTS.get(ctx.class_type, {}).items():
        if name not in inputs:
            continue
        filename = str(inputs[name])
        full = ctx.folders.get_full_path(folder, filename)
        if full is None:
            raise NodeError(
                "FileNotFoundError", f"Model in folder '{folder}' with filename '{filename}' not found."
            )
        paths.append(full)
    return paths


def load_cost(paths: list[str]) -> float:
    total = 0.0
    for path in paths:
        try:
            size = os.path.getsize(path) if os.path.isfile(path) else 0
        except OSError:
            size = 0
        total += LOAD_BASE_S + size * LOAD_S_PER_BYTE
    return total


async def generic(ctx: NodeContext, inputs: dict[str, Any], return_types: tuple[Any, ...]) -> NodeResult:
    if ctx.class_type in MODEL_INPUTS:
        await ctx.work(load_cost(model_files(ctx, inputs)))
    outputs = passthrough_outputs(return_types, inputs)
    if ctx.class_type in MODEL_INPUTS:
        names = [str(inputs[n]) for n in MODEL_INPUTS[ctx.class_type] if n in inputs]
        outputs = tuple(
            Handle(o.type_name, names[0] if names else "", {}) if isinstance(o, Handle) else o
            for o in outputs
        )
    return NodeResult(outputs)


# --------------------------------------------------------------------------- loaders
@node("CheckpointLoaderSimple")
async def checkpoint_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    paths = model_files(ctx, inputs)
    await ctx.work(load_cost(paths))
    name = str(inputs["ckpt_name"])
    return NodeResult((Handle("MODEL", name), Handle("CLIP", name), Handle("VAE", name)))


@node("UpscaleModelLoader")
async def upscale_model_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    paths = model_files(ctx, inputs)
    await ctx.work(load_cost(paths) * 0.1)
    name = str(inputs["model_name"])
    return NodeResult((Handle("UPSCALE_MODEL", name, {"scale": guess_scale(name)}),))


def guess_scale(name: str) -> int:
    """Scale of an upscale model from its name (``..._x2...``, ``4x-...``); 4 when unknown."""
    base = os.path.basename(name).lower()
    match = re.search(r"(?:^|[^0-9a-z])x([1-8])(?:[^0-9]|$)", base) or re.search(
        r"(?:^|[^0-9])([1-8])x", base
    )
    return int(match.group(1)) if match else 4


# --------------------------------------------------------------------------- conditioning / sampling
@node("CLIPTextEncode")
async def clip_text_encode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    clip = inputs.get("clip")
    if clip is None:
        raise NodeError(
            "RuntimeError",
            "ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your "
            "checkpoint does not contain a valid clip or text encoder model.",
        )
    await ctx.work(CLIP_ENCODE_S)
    return NodeResult((Handle("CONDITIONING", "", {"text": str(inputs.get("text", ""))}),))


@node("EmptyLatentImage")
async def empty_latent_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult(
        (Latent(int(inputs["width"]) // 8, int(inputs["height"]) // 8, int(inputs.get("batch_size", 1))),)
    )


@lru_cache(maxsize=8)
def preview_jpeg(width: int, height: int, max_size: int) -> bytes:
    """A latent preview: noise, scaled up to ``max_size`` like ComfyUI's (26: 512x512 JPEG for 16x16)."""
    small = Image.merge("RGB", [Image.effect_noise((max(1, width), max(1, height)), 48) for _ in range(3)])
    scale = max_size / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    big = small.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


async def sample(ctx: NodeContext, latent: Any, steps: int) -> NodeResult:
    if not isinstance(latent, Latent):
        raise NodeError("TypeError", f"'{type(latent).__name__}' object is not subscriptable")
    px = latent.width * latent.height * latent.batch * latent.frames
    step_s = STEP_S_AT_128 * math.sqrt(px / 256.0)
    previews = ctx.preview_method not in ("none", "")
    for step in range(1, steps + 1):
        await ctx.work(step_s)
        preview = preview_jpeg(latent.width, latent.height, ctx.settings.preview_size) if previews else None
        await ctx.progress(step, steps, preview)
    return NodeResult((Latent(latent.width, latent.height, latent.batch, latent.channels, latent.frames),))


@node("KSampler")
async def ksampler(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """25/26/27: one ``progress`` per step (+ preview frames when a preview method is active)."""
    return await sample(ctx, inputs["latent_image"], int(inputs["steps"]))


@node("KSamplerAdvanced")
async def ksampler_advanced(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    steps = int(inputs["steps"])
    start = int(inputs.get("start_at_step", 0))
    end = min(int(inputs.get("end_at_step", steps)), steps)
    return await sample(ctx, inputs["latent_image"], max(0, end - start))


@node("VAEDecode", "VAEDecodeTiled")
async def vae_decode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    latent = inputs["samples"]
    if not isinstance(latent, Latent):
        raise NodeError("TypeError", f"'{type(latent).__name__}' object is not subscriptable")
    width, height = latent.width * 8, latent.height * 8
    batch = latent.batch * latent.frames
    cost = VAE_S_AT_128 * math.sqrt(width * height / 16384.0) * batch
    frames = await ctx.work(cost, noise_frames, width, height, batch)
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


@node("VAEEncode", "VAEEncodeTiled")
async def vae_encode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images = expect_image(inputs["pixels"])
    cost = VAE_S_AT_128 * math.sqrt(images.width * images.height / 16384.0) * images.batch
    await ctx.work(cost)
    return NodeResult((Latent(max(1, images.width // 8), max(1, images.height // 8), images.batch),))


# --------------------------------------------------------------------------- upscale with model
def tiled_steps(width: int, height: int, tile: int = UPSCALE_TILE, overlap: int = UPSCALE_OVERLAP) -> int:
    rows = 1 if height <= tile else math.ceil((height - overlap) / (tile - overlap))
    cols = 1 if width <= tile else math.ceil((width - overlap) / (tile - overlap))
    return rows * cols


@node("ImageUpscaleWithModel")
async def image_upscale_with_model(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """15: one ``progress`` per tile (16 for 1536x1536), then the scaled image."""
    model = inputs["upscale_model"]
    images = expect_image(inputs["image"])
    scale = int(model.info.get("scale", 4)) if isinstance(model, Handle) else 4
    total = tiled_steps(images.width, images.height) * images.batch
    for step in range(1, total + 1):
        await ctx.work(UPSCALE_TILE_S)
        await ctx.progress(step, total)
    size = (images.width * scale, images.height * scale)
    out_px = size[0] * size[1] * images.batch
    frames = await ctx.work(
        0.3 * out_px / (3072 * 3072),
        lambda: [f.resize(size, Image.Resampling.BICUBIC) for f in images.frames],
    )
    assert frames is not None
    return NodeResult((ImageBatch(frames),))


# --------------------------------------------------------------------------- misc
@node("LoraLoader", "LoraLoaderModelOnly")
async def lora_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    paths = model_files(ctx, inputs)
    await ctx.work(load_cost(paths) * 0.2)
    outputs = [inputs.get("model", Handle("MODEL"))]
    if ctx.class_type == "LoraLoader":
        outputs.append(inputs.get("clip", Handle("CLIP")))
    return NodeResult(tuple(outputs))


@node("SolidMask")
async def solid_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    value = max(0.0, min(1.0, float(inputs.get("value", 1.0))))
    size = (int(inputs.get("width", 512)), int(inputs.get("height", 512)))
    return NodeResult((MaskBatch([Image.new("L", size, round(value * 255))]),))


@node("InvertMask")
async def invert_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    mask = inputs["mask"]
    if not isinstance(mask, MaskBatch):
        raise NodeError(
            "TypeError", "unsupported operand type(s) for -: 'float' and '" + type(mask).__name__ + "'"
        )
    return NodeResult((MaskBatch([ImageOps.invert(m) for m in mask.frames]),))
