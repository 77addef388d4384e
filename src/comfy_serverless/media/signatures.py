"""What a file's first bytes say it is, and whether that fits its name's extension.

A small signature table rather than a library: the check needs families, not exact types (any ISO BMFF
``ftyp`` is fine for ``.mp4``, ``.mov``, ``.m4v`` and ``.m4a``; WEBM and Matroska share EBML), it needs
GLB, JSON and Opus, and its messages should say in words what the content is instead ("holds a PNG
image"). Extensions not listed here are not checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Bytes read from the start of a file to recognise it.
HEAD_BYTES = 4096

# ISO BMFF major brands of still images (HEIF, HEIC, AVIF), not videos.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
# QuickTime files older than the ftyp box start with one of these atoms.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the content is: a family the extension table uses, and words for messages."""

    kind: str
    label: str


#: extension: (the families it accepts, what it should hold in words)
_EXPECTED: dict[str, tuple[frozenset[str], str]] = {
    ".png": (frozenset({"png"}), "a PNG image"),
    ".jpg": (frozenset({"jpeg"}), "a JPEG image"),
    ".jpeg": (frozenset({"jpeg"}), "a JPEG image"),
    ".webp": (frozenset({"webp"}), "a WEBP image"),
    ".gif": (frozenset({"gif"}), "a GIF image"),
    ".bmp": (frozenset({"bmp"}), "a BMP image"),
    ".tif": (frozenset({"tiff"}), "a TIFF image"),
    ".tiff": (frozenset({"tiff"}), "a TIFF image"),
    ".mp4": (frozenset({"isobmff"}), "an MP4 video"),
    ".mov": (frozenset({"isobmff"}), "a QuickTime movie"),
    ".m4v": (frozenset({"isobmff"}), "an M4V video"),
    ".m4a": (frozenset({"isobmff"}), "an M4A audio file"),
    ".webm": (frozenset({"ebml"}), "a WEBM video"),
    ".mkv": (frozenset({"ebml"}), "a Matroska (MKV) video"),
    ".avi": (frozenset({"avi"}), "an AVI video"),
    ".wav": (frozenset({"wav"}), "a WAV audio file"),
    ".mp3": (frozenset({"mp3"}), "an MP3 audio file"),
    ".flac": (frozenset({"flac"}), "a FLAC audio file"),
    ".ogg": (frozenset({"ogg"}), "an Ogg file"),
    ".opus": (frozenset({"ogg"}), "an Opus audio file"),
    ".glb": (frozenset({"glb"}), "a GLB 3D model"),
    ".json": (frozenset({"json"}), "JSON"),
}


def checked_extensions() -> frozenset[str]:
    """The extensions whose content is checked."""
    return frozenset(_EXPECTED)


def _isobmff(head: bytes) -> Sniffed | None:
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return Sniffed("heif", "a HEIF/AVIF image")
        if brand == b"qt  ":
            return Sniffed("isobmff", "a QuickTime movie")
        if brand.startswith((b"M4A", b"M4B")):
            return Sniffed("isobmff", "an M4A audio file")
        return Sniffed("isobmff", "an MP4 video")
    if box in _QUICKTIME_ATOMS and len(head) >= 8:
        return Sniffed("isobmff", "a QuickTime movie")
    return None


def _riff(head: bytes) -> Sniffed | None:
    if head[:4] not in (b"RIFF", b"RF64", b"BW64"):
        return None
    form = head[8:12]
    if form == b"WAVE":
        return Sniffed("wav", "a WAV audio file")
    if head[:4] != b"RIFF":
        return None
    if form == b"WEBP":
        return Sniffed("webp", "a WEBP image")
    if form in (b"AVI ", b"AVIX"):
        return Sniffed("avi", "an AVI video")
    return Sniffed("riff", "a RIFF file")


def _ogg(head: bytes) -> Sniffed:
    codec = head[28:36]
    if codec.startswith(b"OpusHead"):
        return Sniffed("ogg", "an Ogg Opus audio file")
    if codec.startswith(b"\x01vorbis"):
        return Sniffed("ogg", "an Ogg Vorbis audio file")
    if codec.startswith(b"\x80theora"):
        return Sniffed("ogg", "an Ogg Theora video")
    if codec.startswith(b"\x7fFLAC"):
        return Sniffed("ogg", "an Ogg FLAC audio file")
    return Sniffed("ogg", "an Ogg file")


def _mpeg_audio_frame(head: bytes) -> bool:
    # 11 sync bits, then a version other than "reserved" and a layer other than "reserved" (which also
    # keeps AAC's ADTS headers, layer 00, out).
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _text(head: bytes) -> Sniffed | None:
    if b"\x00" in head:
        return None
    # The head may end inside a multi-byte character.
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")):
        return Sniffed("html", "an HTML page")
    if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in start):
        return Sniffed("svg", "an SVG image")
    if start.startswith("<?xml"):
        return Sniffed("xml", "an XML document")
    if start.startswith(("{", "[")):
        return Sniffed("text", "JSON or other text")
    return Sniffed("text", "text")


def sniff(head: bytes) -> Sniffed | None:
    """What the first bytes of a file say it is; None for nothing recognised (empty included)."""
    if not head:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("png", "a PNG image")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("jpeg", "a JPEG image")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("gif", "a GIF image")
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return Sniffed("tiff", "a TIFF image")
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return Sniffed("bmp", "a BMP image")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        start = head[:64]
        if b"webm" in start:
            return Sniffed("ebml", "a WEBM video")
        if b"matroska" in start:
            return Sniffed("ebml", "a Matroska (MKV) video")
        return Sniffed("ebml", "an EBML (Matroska/WEBM) file")
    if head.startswith(b"fLaC"):
        return Sniffed("flac", "a FLAC audio file")
    if head.startswith(b"OggS"):
        return _ogg(head)
    if head.startswith(b"glTF"):
        return Sniffed("glb", "a GLB 3D model")
    if head.startswith(b"%PDF-"):
        return Sniffed("pdf", "a PDF document")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("zip", "a ZIP archive")
    if head.startswith(b"\x1f\x8b"):
        return Sniffed("gzip", "a gzip archive")
    for found in (_riff(head), _isobmff(head)):
        if found is not None:
            return found
    if _mpeg_audio_frame(head):
        return Sniffed("mp3", "an MP3 audio file")
    return _text(head)


def _id3_end(head: bytes) -> int | None:
    """Where the audio after a leading ID3v2 tag starts, or None without one."""
    if not head.startswith(b"ID3") or len(head) < 10:
        return None
    size = 0
    for byte in head[6:10]:  # "syncsafe": 7 bits a byte
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def sniff_file(path: Path) -> Sniffed | None:
    """What a file on disk is, looking past a leading ID3 tag (MP3 and some FLAC files carry one)."""
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
        end = _id3_end(head)
        if end is None:
            return sniff(head)
        file.seek(end)
        after = file.read(64)
    found = sniff(after)
    if found is not None and found.kind in ("flac", "mp3"):
        return found
    return Sniffed("mp3", "an MP3 audio file")  # an ID3 tag on anything else is an MP3 in practice


def content_mismatch(name: str, path: Path) -> str | None:
    """Why the file at ``path`` does not fit ``name``'s extension, as the end of a sentence that starts
    with the name ("holds a PNG image, not an MP4 video"); None when it fits or the extension is not
    checked. Reads the whole file only for JSON."""
    expected = _EXPECTED.get(PurePosixPath(name).suffix.lower())
    if expected is None:
        return None
    kinds, wanted = expected
    found = sniff_file(path)
    if "json" in kinds:
        if found is not None and found.kind not in ("text", "xml", "html", "svg"):
            return f"holds {found.label}, not JSON"
        try:
            json.loads(path.read_bytes())
        except ValueError as exc:
            return f"is not valid JSON ({exc})"
        return None
    if found is not None and found.kind in kinds:
        return None
    return f"holds {found.label if found else 'data of an unknown type'}, not {wanted}"
