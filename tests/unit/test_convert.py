"""Converting still image outputs: the right format and size, alpha on white for JPEG, deep and odd
pixel modes, ComfyUI's prompt/workflow metadata kept where ComfyUI reads it or stripped, and broken
files reported by name."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from comfy_serverless.errors import OutputError
from comfy_serverless.media.convert import convert_image, converted_name, convertible
from comfy_serverless.media.outputs import OutputFile

PROMPT = {"3": {"class_type": "KSampler", "inputs": {"seed": 42}}}
WORKFLOW = {"nodes": [{"id": 3, "type": "KSampler"}], "links": []}


def _png(path: Path, image: Image.Image, texts: dict[str, str] | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in (texts or {}).items():
        info.add_text(key, value)
    image.save(path, "PNG", pnginfo=info)
    return path


def _comfy_png(tmp_path: Path, workflow: object = WORKFLOW) -> Path:
    """A PNG as ComfyUI's SaveImage writes it: prompt and workflow JSON in text chunks."""
    return _png(
        tmp_path / "ComfyUI_00001_.png",
        Image.new("RGB", (37, 23), (200, 30, 40)),
        {"prompt": json.dumps(PROMPT), "workflow": json.dumps(workflow)},
    )


def _texts(path: Path) -> dict[str, str]:
    """The metadata texts ComfyUI would find: PNG text chunks, or its "key:value" EXIF entries."""
    with Image.open(path) as image:
        found = dict(getattr(image, "text", {}))
        for tag in (0x0110, 0x010F, 0x010E, 0x010D):
            value = image.getexif().get(tag)
            if isinstance(value, str) and ":" in value:
                key, _, text = value.partition(":")
                found[key] = text
        return found


@pytest.mark.parametrize(
    ("fmt", "pil_format", "suffix"),
    [("webp", "WEBP", ".webp"), ("jpeg", "JPEG", ".jpg"), ("png", "PNG", ".png")],
)
def test_each_format_decodes_with_the_same_size(
    tmp_path: Path, fmt: str, pil_format: str, suffix: str
) -> None:
    source = tmp_path / "ComfyUI_00001_.bmp"
    Image.new("RGB", (37, 23), (10, 200, 30)).save(source, "BMP")
    out_dir = tmp_path / "out"
    result = convert_image(source, fmt, 80, keep_metadata=False, dest_dir=out_dir)  # type: ignore[arg-type]
    assert result == out_dir / f"ComfyUI_00001_{suffix}"
    with Image.open(result) as image:
        assert image.format == pil_format and image.size == (37, 23)
        red, green, blue = image.convert("RGB").getpixel((18, 11))  # type: ignore[misc]
        assert abs(red - 10) < 12 and abs(green - 200) < 12 and abs(blue - 30) < 12
    assert [p.name for p in out_dir.iterdir()] == [result.name]  # no temporary file left behind


def test_converted_name() -> None:
    assert converted_name("ComfyUI_00001_.png", "webp") == "ComfyUI_00001_.webp"
    assert converted_name("a.b.tiff", "jpeg") == "a.b.jpg"


def test_jpeg_lays_transparency_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (32, 16), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (16, 0, 32, 16))
    source = _png(tmp_path / "a.png", image)
    with Image.open(convert_image(source, "jpeg", 95, keep_metadata=False, dest_dir=tmp_path / "o")) as out:
        assert out.mode == "RGB"
        assert all(channel > 245 for channel in out.getpixel((4, 8)))  # type: ignore[union-attr]
        red, green, blue = out.getpixel((28, 8))  # type: ignore[misc]
        assert red > 240 and green < 15 and blue < 15


def test_a_palette_with_transparency_keeps_it_in_webp_and_png_and_is_white_in_jpeg(tmp_path: Path) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (4, 0, 8, 8))
    image.info["transparency"] = 0
    source = tmp_path / "p.png"
    image.save(source, transparency=0)
    for fmt in ("webp", "png"):
        with Image.open(convert_image(source, fmt, 90, keep_metadata=False, dest_dir=tmp_path / fmt)) as out:
            rgba = out.convert("RGBA")
            assert rgba.getpixel((1, 4))[3] == 0  # type: ignore[index]
            assert rgba.getpixel((6, 4))[2:] == (255, 255)  # type: ignore[index]
    with Image.open(convert_image(source, "jpeg", 95, keep_metadata=False, dest_dir=tmp_path / "j")) as out:
        assert all(channel > 245 for channel in out.getpixel((1, 4)))  # type: ignore[union-attr]


def test_greyscale_with_alpha_on_white_in_jpeg(tmp_path: Path) -> None:
    source = _png(tmp_path / "la.png", Image.new("LA", (4, 4), (0, 0)))
    with Image.open(convert_image(source, "jpeg", 95, keep_metadata=False, dest_dir=tmp_path / "o")) as out:
        assert out.mode == "L" and out.getpixel((2, 2)) > 245  # type: ignore[operator]


def test_16_bit_greyscale_is_scaled_to_8_bits_and_png_keeps_16(tmp_path: Path) -> None:
    source = _png(tmp_path / "deep.png", Image.new("I;16", (6, 5), 60000))
    with Image.open(convert_image(source, "jpeg", 95, keep_metadata=False, dest_dir=tmp_path / "j")) as out:
        assert out.size == (6, 5) and abs(out.getpixel((3, 2)) - 234) <= 2  # type: ignore[operator]
    with Image.open(convert_image(source, "webp", 95, keep_metadata=False, dest_dir=tmp_path / "w")) as out:
        assert abs(out.convert("L").getpixel((3, 2)) - 234) <= 2  # type: ignore[operator]
    tiff = tmp_path / "deep.tiff"
    Image.new("I;16", (6, 5), 60000).save(tiff)
    with Image.open(convert_image(tiff, "png", 90, keep_metadata=False, dest_dir=tmp_path / "p")) as out:
        assert out.mode.startswith("I") and out.getpixel((3, 2)) == 60000


def test_float_and_cmyk_images_convert(tmp_path: Path) -> None:
    floating = tmp_path / "f.tiff"
    Image.new("F", (3, 3), 0.5).save(floating)
    with Image.open(convert_image(floating, "png", 90, keep_metadata=False, dest_dir=tmp_path / "f")) as out:
        assert out.mode == "L" and out.getpixel((1, 1)) in (127, 128)
    cmyk = tmp_path / "c.tiff"
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(cmyk)
    with Image.open(convert_image(cmyk, "webp", 95, keep_metadata=False, dest_dir=tmp_path / "c")) as out:
        red, green, blue = out.convert("RGB").getpixel((1, 1))  # type: ignore[misc]
        assert red > 240 and green < 20 and blue < 20


def test_png_metadata_kept_in_png_webp_and_jpeg(tmp_path: Path) -> None:
    source = _comfy_png(tmp_path)
    for fmt in ("png", "webp", "jpeg"):
        out = convert_image(source, fmt, 90, keep_metadata=True, dest_dir=tmp_path / fmt)  # type: ignore[arg-type]
        texts = _texts(out)
        assert json.loads(texts["prompt"]) == PROMPT, fmt
        assert json.loads(texts["workflow"]) == WORKFLOW, fmt


def test_webp_metadata_is_where_comfyui_writes_it(tmp_path: Path) -> None:
    out = convert_image(_comfy_png(tmp_path), "webp", 90, keep_metadata=True, dest_dir=tmp_path / "o")
    with Image.open(out) as image:
        exif = image.getexif()
        assert exif[0x0110] == f"prompt:{json.dumps(PROMPT)}"
        assert exif[0x010F] == f"workflow:{json.dumps(WORKFLOW)}"


def test_comfyui_webp_metadata_becomes_png_text(tmp_path: Path) -> None:
    image = Image.new("RGB", (5, 5))
    exif = image.getexif()
    exif[0x0110] = f"prompt:{json.dumps(PROMPT)}"
    exif[0x010F] = f"workflow:{json.dumps(WORKFLOW)}"
    source = tmp_path / "ComfyUI_00001_.webp"
    image.save(source, "WEBP", exif=exif)
    with Image.open(convert_image(source, "png", 90, keep_metadata=True, dest_dir=tmp_path / "o")) as out:
        assert json.loads(out.text["prompt"]) == PROMPT  # type: ignore[attr-defined]
        assert json.loads(out.text["workflow"]) == WORKFLOW  # type: ignore[attr-defined]


def test_metadata_stripped_when_not_kept(tmp_path: Path) -> None:
    source = _comfy_png(tmp_path)
    for fmt in ("png", "webp", "jpeg"):
        out = convert_image(source, fmt, 90, keep_metadata=False, dest_dir=tmp_path / fmt)  # type: ignore[arg-type]
        assert _texts(out) == {}, fmt
        assert b"KSampler" not in out.read_bytes(), fmt


def test_a_workflow_too_large_for_jpeg_exif_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = {"nodes": [{"id": i, "type": "Note", "text": "x" * 100} for i in range(1000)]}
    source = _comfy_png(tmp_path, workflow=big)
    out = convert_image(
        source, "jpeg", 90, keep_metadata=True, dest_dir=tmp_path / "o", label="output a.png of node 9"
    )
    texts = _texts(out)
    assert json.loads(texts["prompt"]) == PROMPT and "workflow" not in texts
    assert "output a.png of node 9: metadata workflow left out of the converted file" in caplog.text
    webp = convert_image(source, "webp", 90, keep_metadata=True, dest_dir=tmp_path / "w")
    assert json.loads(_texts(webp)["workflow"]) == big  # WEBP has room for it


def test_the_same_format_is_left_alone_unless_metadata_must_go(tmp_path: Path) -> None:
    source = _comfy_png(tmp_path)
    before = source.read_bytes()
    assert convert_image(source, "png", 90, keep_metadata=True, dest_dir=tmp_path / "o") == source
    plain = _png(tmp_path / "plain.png", Image.new("RGB", (3, 3)))
    assert convert_image(plain, "png", 90, keep_metadata=False, dest_dir=tmp_path / "o") == plain
    stripped = convert_image(source, "png", 90, keep_metadata=False, dest_dir=tmp_path)
    assert stripped == source  # rewritten in place, now without its metadata
    assert _texts(stripped) == {} and before != stripped.read_bytes()
    with Image.open(stripped) as image:
        assert image.size == (37, 23)


def test_stripping_exif_turns_an_image_by_its_orientation(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    source = tmp_path / "photo.jpg"
    image.save(source, "JPEG", exif=exif)
    with Image.open(convert_image(source, "png", 90, keep_metadata=False, dest_dir=tmp_path / "o")) as out:
        assert out.size == (20, 40)


def test_multi_frame_files_are_left_as_they_are(tmp_path: Path) -> None:
    source = tmp_path / "pages.tiff"
    Image.new("RGB", (4, 4)).save(source, save_all=True, append_images=[Image.new("RGB", (4, 4), "red")])
    assert convert_image(source, "webp", 90, keep_metadata=False, dest_dir=tmp_path / "o") == source


def test_a_truncated_image_is_an_output_error_naming_it(tmp_path: Path) -> None:
    data = io.BytesIO()
    Image.effect_noise((256, 256), 64).save(data, "PNG")
    source = tmp_path / "ComfyUI_00002_.png"
    source.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(OutputError) as caught:
        convert_image(
            source,
            "webp",
            90,
            keep_metadata=False,
            dest_dir=tmp_path / "o",
            label="output ComfyUI_00002_.png of node 9",
        )
    assert caught.value.message.startswith(
        "output ComfyUI_00002_.png of node 9 could not be converted to WEBP: it is not a readable image"
    )
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_a_file_that_is_no_image_is_an_output_error(tmp_path: Path) -> None:
    source = tmp_path / "x.png"
    source.write_bytes(b"not an image at all")
    with pytest.raises(
        OutputError, match=r"^x\.png could not be converted to JPEG: it is not a readable image"
    ):
        convert_image(source, "jpeg", 90, keep_metadata=False, dest_dir=tmp_path)


@pytest.mark.parametrize(
    ("kind", "mime", "animated", "expected"),
    [
        ("image", "image/png", False, True),
        ("image", "image/jpeg", False, True),
        ("image", "image/webp", False, True),
        ("image", "image/bmp", False, True),
        ("image", "image/tiff", False, True),
        ("video", "image/webp", True, False),
        ("image", "image/gif", False, False),
        ("video", "video/mp4", False, False),
        ("file", "model/gltf-binary", False, False),
    ],
)
def test_only_still_images_are_convertible(kind: str, mime: str, animated: bool, expected: bool) -> None:
    output = OutputFile("9", kind, "x", "", "output", mime, animated=animated)  # type: ignore[arg-type]
    assert convertible(output) is expected


def test_log_is_quiet_for_plain_conversions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    convert_image(_comfy_png(tmp_path), "jpeg", 90, keep_metadata=True, dest_dir=tmp_path / "o")
    assert caplog.text == ""
