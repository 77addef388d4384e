"""Still image outputs re-encoded as WEBP, JPEG or PNG before delivery (Pillow).

Metadata: ComfyUI stores the ``prompt`` and ``workflow`` JSON of a PNG in its text chunks, and of a
WEBP in EXIF, as ``"prompt:<json>"`` in tag 0x0110 (Model) and each other entry as ``"<key>:<json>"``
from tag 0x010F (Make) downwards (here at most three: 0x010F to 0x010D). Kept, they are written the same way: PNG text chunks for a PNG, those
EXIF tags for a WEBP or JPEG, so ComfyUI reads the workflow back from the converted file. Other EXIF
tags go along unchanged. A JPEG's EXIF must fit in 64 kB: texts that do not fit are left out (the
prompt first in line) and a warning is logged. Not kept, no text, EXIF or XMP is written. The ICC colour
profile is kept either way: it is part of what the pixels mean.

Pixels: JPEG has no alpha, so transparent images are laid on white. 16-bit and 32-bit integer
greyscale is scaled to 8 bits (a PNG keeps 16-bit greyscale as it is), floating point greyscale is read
as 0..1 when it lies there and clipped to 0..255 otherwise; CMYK, YCbCr, LAB and HSV become RGB;
palette images become RGB, or RGBA when they have transparency.

A file already in the requested format is left as it is (the same path comes back) when the metadata
is to be kept or it has none to strip: re-encoding it would only lose quality. Multi-frame files are
left as they are too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps, PngImagePlugin

from ..errors import OutputError
from .outputs import OutputFile

log = logging.getLogger(__name__)

ImageFormat = Literal["webp", "jpeg", "png"]

EXTENSIONS: dict[str, str] = {"webp": ".webp", "jpeg": ".jpg", "png": ".png"}
MIME_TYPES: dict[str, str] = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
_PIL_FORMATS = {"webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}
#: What :func:`convertible` accepts: still images Pillow reads and writes faithfully.
CONVERTIBLE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff"})

_PROMPT_TAG = 0x0110  # Model
_FIRST_EXTRA_TAG = 0x010F  # Make, then downwards
_LAST_EXTRA_TAG = 0x010D  # DocumentName; below it lie tags such as ImageWidth that must stay numbers
_COMFY_ENTRY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):([\[{].*)", re.DOTALL)
#: Bytes of EXIF a JPEG's APP1 segment holds, less its header.
_JPEG_EXIF_LIMIT = 65_533 - 8
_WHITE = 255


def convertible(output: OutputFile) -> bool:
    """Whether :func:`convert_image` may convert this output: a still image of a common format."""
    return output.kind == "image" and not output.animated and output.mime in CONVERTIBLE_MIME_TYPES


def converted_name(filename: str, fmt: ImageFormat) -> str:
    """``ComfyUI_00001_.png`` as ``fmt``: ``ComfyUI_00001_.webp``."""
    return Path(filename).stem + EXTENSIONS[fmt]


# --- metadata --------------------------------------------------------------------------------------


def _texts_of(image: Image.Image, exif: Image.Exif) -> dict[str, str]:
    """PNG text chunks and ComfyUI-style EXIF entries (removed from ``exif``), prompt first."""
    texts: dict[str, str] = {}
    chunks = getattr(image, "text", None)
    if isinstance(chunks, dict):
        texts.update({str(k): str(v) for k, v in chunks.items() if isinstance(v, str)})
    for tag in range(_PROMPT_TAG, _LAST_EXTRA_TAG - 1, -1):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            continue
        match = _COMFY_ENTRY.fullmatch(value.rstrip("\x00"))
        if match:
            texts.setdefault(match.group(1), match.group(2))
            del exif[tag]
    ordered = {"prompt": texts.pop("prompt")} if "prompt" in texts else {}
    ordered.update(texts)
    return ordered


def _ascii(text: str) -> str:
    """EXIF strings are ASCII: JSON is re-written with escapes, anything else backslash-escaped."""
    if text.isascii():
        return text
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return text.encode("ascii", "backslashreplace").decode("ascii")


def _exif_with_texts(exif: Image.Exif, texts: dict[str, str], limit: int | None, label: str) -> Image.Exif:
    tag = _FIRST_EXTRA_TAG
    dropped: list[str] = []
    for key, value in texts.items():
        if key == "prompt":
            target = _PROMPT_TAG
        elif tag >= _LAST_EXTRA_TAG:
            target, tag = tag, tag - 1
        else:
            dropped.append(key)
            continue
        exif[target] = f"{key}:{_ascii(value)}"
        if limit is not None and len(exif.tobytes()) > limit:
            del exif[target]
            dropped.append(key)
    if dropped:
        log.warning("%s: metadata %s left out of the converted file (too large)", label, ", ".join(dropped))
    return exif


def _has_metadata(image: Image.Image) -> bool:
    info = image.info
    return bool(
        getattr(image, "text", None)
        or len(image.getexif())
        or info.get("xmp")
        or info.get("XML:com.adobe.xmp")
        or info.get("comment")
    )


# --- pixels ----------------------------------------------------------------------------------------


def _eight_bit(image: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits as 8-bit ``L``."""
    if image.mode == "F":
        low, high = image.getextrema()
        if isinstance(low, int | float) and isinstance(high, int | float) and low >= 0 and high <= 1:
            image = image.point(lambda v: v * 255)
        return image.convert("L")
    return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")


def _pixels_for(image: Image.Image, fmt: ImageFormat) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16") and fmt == "png":
        return image if mode == "I;16" else image.convert("I").convert("I;16")
    if mode.startswith("I") or mode == "F":
        image = _eight_bit(image)
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("P", "PA", "RGBa", "La", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        alpha = mode in ("PA", "RGBa", "La") or image.has_transparency_data
        image = image.convert("RGBA" if alpha else "RGB")
    elif mode in ("L", "RGB") and image.has_transparency_data:
        image = image.convert("LA" if mode == "L" else "RGBA")
    if fmt == "jpeg" and image.mode in ("LA", "RGBA"):
        white = _WHITE if image.mode == "LA" else (_WHITE, _WHITE, _WHITE)
        background = Image.new(image.mode[:-1], image.size, white)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if fmt == "webp" and image.mode in ("L", "LA"):
        image = image.convert("RGB" if image.mode == "L" else "RGBA")
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    return image


# --- conversion ------------------------------------------------------------------------------------


def convert_image(
    path: Path,
    fmt: ImageFormat,
    quality: int = 90,
    *,
    keep_metadata: bool,
    dest_dir: Path,
    label: str | None = None,
) -> Path:
    """Write ``path`` as ``fmt`` into ``dest_dir``, named like it with the new extension, and return the
    new file's path; or ``path`` itself when nothing needs to change (see the module's notes).
    ``quality`` (1-100) is the WEBP and JPEG encoder's; PNG is lossless. Blocking: run it in a thread.

    ``label`` names the file in errors (e.g. "output x.png of node 9"). Raises OutputError when the file
    is not a readable image (truncated, corrupt, too many pixels) or the new file cannot be written."""
    if fmt not in _PIL_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, not {quality}")
    label = label or path.name
    target = dest_dir / converted_name(path.name, fmt)
    try:
        with Image.open(path) as source:
            if getattr(source, "n_frames", 1) > 1:
                log.info("%s has several frames; delivered as it is", label)
                return path
            source_format = (source.format or "").lower()
            if source_format == fmt and (keep_metadata or not _has_metadata(source)):
                return path
            source.load()
            exif = source.getexif()
            texts = _texts_of(source, exif) if keep_metadata else {}
            icc = source.info.get("icc_profile")
            # Without its EXIF, an image turned by its Orientation tag must be turned for real.
            upright = source if keep_metadata else ImageOps.exif_transpose(source)
            pixels = _pixels_for(upright, fmt)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise OutputError(
            f"{label} could not be converted to {fmt.upper()}: it is not a readable image ({exc})",
            details={"filename": path.name, "format": fmt},
        ) from None

    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if fmt == "png":
        options["compress_level"] = 4
        if keep_metadata:
            info = PngImagePlugin.PngInfo()
            for key, value in texts.items():
                info.add_text(key, value)
            options["pnginfo"] = info
            if len(exif):
                options["exif"] = exif
    else:
        options["quality"] = quality
        if fmt == "webp":
            options["method"] = 4
        if keep_metadata:
            limit = _JPEG_EXIF_LIMIT if fmt == "jpeg" else None
            exif = _exif_with_texts(exif, texts, limit, label)
            if len(exif):
                options["exif"] = exif

    temporary = dest_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        pixels.save(temporary, _PIL_FORMATS[fmt], **options)
        os.replace(temporary, target)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(
            f"{label} could not be converted to {fmt.upper()}: writing {target.name} failed: {reason}",
            details={"filename": path.name, "format": fmt},
        ) from None
    return target
