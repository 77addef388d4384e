"""Staging a job's input files on disk: every source form, real HTTP servers, cleanup on failure, and
the check that content fits its name."""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import re
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.errors import DiskFullError, InvalidInputError
from comfy_serverless.media import staging
from comfy_serverless.media.inputs import InputFetcher
from comfy_serverless.media.signatures import checked_extensions, content_mismatch, sniff
from comfy_serverless.media.staging import InputSource, StagedFile, stage_inputs
from tests.support.http_servers import FileServer, file_server, image_bytes

LIMIT = 50_000
PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class FakeS3:
    """Stands in for the boto3 reader: objects from a table, written to the file it is given."""

    def __init__(self, objects: dict[tuple[str, str], bytes], delay: float = 0.0):
        self.objects = objects
        self.delay = delay
        self.calls: list[tuple[str, str, int, str]] = []

    async def download(self, bucket: str, key: str, dest: Path, *, limit: int, field: str) -> int:
        self.calls.append((bucket, key, limit, field))
        await asyncio.sleep(self.delay)
        if (bucket, key) not in self.objects:
            raise InvalidInputError(f"{field}: s3://{bucket}/{key} does not exist", details={"field": field})
        data = self.objects[(bucket, key)]
        await asyncio.to_thread(dest.write_bytes, data)
        return len(data)


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    async with file_server(
        "127.0.0.1", {"img.png": PNG, "photo.jpg": JPEG, "big.bin": b"x" * (LIMIT + 5000)}
    ) as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[InputFetcher]:
    # The test servers are on loopback: allow-list it, as an operator would a private file server.
    fetcher = InputFetcher(limit=LIMIT, timeout=5, allowed_hosts="127.0.0.1")
    yield fetcher
    await fetcher.close()


Stage = Callable[..., Awaitable[list[StagedFile]]]


@pytest.fixture
def stage(tmp_path: Path, fetcher: InputFetcher) -> Stage:
    async def run(*sources: InputSource, **options: Any) -> list[StagedFile]:
        options.setdefault("fetcher", fetcher)
        options.setdefault("s3", None)
        return await stage_inputs(list(sources), tmp_path / "job", **options)

    return run


async def stage_error(stage: Stage, *sources: InputSource, **options: Any) -> str:
    with pytest.raises(InvalidInputError) as caught:
        await stage(*sources, **options)
    return caught.value.message


# --- Every source form ------------------------------------------------------------------------------


async def test_each_source_form_lands_on_disk_with_its_exact_bytes(
    stage: Stage, server: FileServer, tmp_path: Path
) -> None:
    clip = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 4
    s3 = FakeS3({("bucket", "clips/a b.mp4"): clip})
    sources = [
        InputSource("images[0].image", "input.png", b64(PNG)),
        InputSource("inputs[0].data", "masks/mask.png", "data:image/png;base64," + b64(PNG)),
        InputSource("inputs[1].data", "notes.txt", "data:text/plain,hello%20there"),
        InputSource("inputs[2].url", "photo.jpg", server.url("/file/photo.jpg") + "?token=abc"),
        InputSource("inputs[3].url", "video/clip.mp4", "s3://bucket/clips/a b.mp4"),
        InputSource("image", "image.png", base64.urlsafe_b64encode(PNG).decode().rstrip("=")),
    ]
    staged = await stage(*sources, s3=s3)
    job = tmp_path / "job"
    assert [s.source for s in staged] == sources
    assert [s.path for s in staged] == [job / s.name for s in sources]
    expected = [PNG, PNG, b"hello there", JPEG, clip, PNG]
    assert [s.path.read_bytes() for s in staged] == expected
    assert [s.size for s in staged] == [len(data) for data in expected]
    assert s3.calls == [("bucket", "clips/a b.mp4", LIMIT, "inputs[3].url")]


async def test_downloads_run_concurrently_up_to_the_limit(stage: Stage, server: FileServer) -> None:
    server.gate_size = 3  # each answer waits until three requests are in flight (or 1 s)
    server.files.update({f"{i}.png": image_bytes(color=(i, i, i)) for i in range(5)})
    sources = [InputSource(f"inputs[{i}].url", f"{i}.png", server.url(f"/gate/{i}.png")) for i in range(5)]
    started = time.monotonic()
    staged = await stage(*sources, concurrency=3)
    assert time.monotonic() - started < 1.5
    assert server.most_in_flight == 3
    assert [s.path.read_bytes() for s in staged] == [image_bytes(color=(i, i, i)) for i in range(5)]


async def test_large_downloads_reach_the_disk_in_pieces(server: FileServer, fetcher: InputFetcher) -> None:
    server.files["large.bin"] = bytes(range(256)) * 12_000  # 3 MB
    roomy = InputFetcher(limit=10_000_000, allowed_hosts="127.0.0.1")
    pieces: list[int] = []
    received = bytearray()

    async def write(chunk: bytes) -> None:
        pieces.append(len(chunk))
        received.extend(chunk)

    size = await roomy.download(server.url("/chunked/large.bin"), "inputs[0].url", write)
    await roomy.close()
    assert size == len(server.files["large.bin"]) and bytes(received) == server.files["large.bin"]
    assert len(pieces) >= 3 and max(pieces) <= (1 << 20) + (1 << 16)


# --- Failures name the field, and nothing stays behind ----------------------------------------------


async def test_a_failure_removes_every_file_already_written(
    stage: Stage, server: FileServer, tmp_path: Path
) -> None:
    sources = [
        InputSource("inputs[0].url", "masks/a.png", server.url("/file/img.png")),
        InputSource("inputs[1].data", "masks/deep/b.png", b64(PNG)),
        InputSource("inputs[2].url", "c.png", server.url("/status/404") + "?delay=0.2&token=secret"),
        InputSource("inputs[3].url", "d.png", server.url("/slow")),  # still downloading when [2] fails
    ]
    message = await stage_error(stage, *sources)
    assert message == f"inputs[2].url: downloading {server.url('/status/404')} answered HTTP 404"
    assert "/file/img.png" in server.hits and "/slow" in server.hits
    assert files_under(tmp_path / "job") == []


async def test_a_cancelled_staging_removes_its_files(
    stage: Stage, server: FileServer, tmp_path: Path
) -> None:
    task = asyncio.ensure_future(
        stage(
            InputSource("inputs[0].data", "a.png", b64(PNG)),
            InputSource("inputs[1].url", "sub/b.png", server.url("/slow")),
        )
    )
    for _ in range(200):
        if "/slow" in server.hits:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(tmp_path / "job") == []


async def test_declared_size_over_the_cap_is_refused_before_reading(stage: Stage, server: FileServer) -> None:
    message = await stage_error(stage, InputSource("inputs[0].url", "a.bin", server.url("/sized/120000")))
    assert message == "inputs[0].url is 120.0 kB, more than the 50.0 kB allowed (MAX_INPUT_BYTES)"


async def test_undeclared_size_over_the_cap_stops_the_download(
    stage: Stage, server: FileServer, tmp_path: Path
) -> None:
    message = await stage_error(stage, InputSource("inputs[0].url", "a.bin", server.url("/chunked/big.bin")))
    assert re.fullmatch(
        r"inputs\[0\]\.url is 5\d\.\d kB, more than the 50\.0 kB allowed \(MAX_INPUT_BYTES\)", message
    )
    assert files_under(tmp_path / "job") == []


async def test_decoded_input_over_the_cap_is_refused(stage: Stage) -> None:
    message = await stage_error(stage, InputSource("inputs[0].data", "a.bin", b64(b"x" * 60_000)))
    assert message == "inputs[0].data is 60.0 kB, more than the 50.0 kB allowed (MAX_INPUT_BYTES)"


async def test_a_slow_server_fails_at_the_timeout(server: FileServer, tmp_path: Path) -> None:
    fetcher = InputFetcher(limit=LIMIT, timeout=0.3, allowed_hosts="127.0.0.1")
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as caught:
        await stage_inputs(
            [InputSource("inputs[0].url", "a.png", server.url("/slow") + "?token=secret")],
            tmp_path / "job",
            fetcher=fetcher,
            s3=None,
        )
    await fetcher.close()
    assert time.monotonic() - started < 1.5
    assert (
        caught.value.message
        == f"inputs[0].url: downloading {server.url('/slow')} did not finish within 0.3 s"
    )
    assert files_under(tmp_path / "job") == []


async def test_an_unreachable_host_names_the_field(stage: Stage, server: FileServer) -> None:
    url = server.url("/file/img.png")
    await server.server.close()
    message = await stage_error(stage, InputSource("images[1].image", "a.png", url + "?token=secret"))
    assert message.startswith(f"images[1].image: could not download {url}: ")
    assert "secret" not in message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (InputSource("inputs[0].data", "a.png", "data:,"), "inputs[0].data decodes to an empty file"),
        (InputSource("inputs[0].data", "a.png", "\n \n"), "inputs[0].data decodes to an empty file"),
        (
            InputSource("inputs[0].data", "a.png", "data:image/png;base64,"),
            "inputs[0].data decodes to an empty file",
        ),
    ],
)
async def test_empty_inline_content_is_refused(stage: Stage, source: InputSource, message: str) -> None:
    assert await stage_error(stage, source) == message


async def test_empty_downloads_are_refused(stage: Stage, server: FileServer, tmp_path: Path) -> None:
    message = await stage_error(stage, InputSource("inputs[4].url", "a.png", server.url("/empty") + "?t=1"))
    assert message == f"inputs[4].url: {server.url('/empty')} is empty"
    s3 = FakeS3({("b", "empty.png"): b""})
    message = await stage_error(stage, InputSource("inputs[5].url", "b.png", "s3://b/empty.png"), s3=s3)
    assert message == "inputs[5].url: s3://b/empty.png is empty"
    assert files_under(tmp_path / "job") == []


async def test_invalid_base64_and_unknown_schemes_name_the_field(stage: Stage) -> None:
    message = await stage_error(stage, InputSource("images[0].image", "a.png", "not base64!"))
    assert message.startswith("images[0].image is not valid base64, a data: URI or an http(s) URL")
    message = await stage_error(stage, InputSource("inputs[0].url", "a.png", "ftp://host/a.png"))
    assert message == (
        "inputs[0].url: ftp:// URLs are not supported; use base64, a data: URI, an http(s) URL or s3://bucket/key"
    )


async def test_private_urls_stay_refused_without_an_allow_list(server: FileServer, tmp_path: Path) -> None:
    fetcher = InputFetcher(limit=LIMIT)
    with pytest.raises(InvalidInputError) as caught:
        await stage_inputs(
            [InputSource("inputs[0].url", "a.png", server.url("/file/img.png"))],
            tmp_path / "job",
            fetcher=fetcher,
            s3=None,
        )
    await fetcher.close()
    assert caught.value.message == (
        f"inputs[0].url: refusing to fetch {server.url('/file/img.png')}: 127.0.0.1 is not a public address"
    )
    assert server.hits == []


# --- s3:// --------------------------------------------------------------------------------------------


async def test_s3_inputs_without_credentials_say_what_is_needed(stage: Stage) -> None:
    message = await stage_error(stage, InputSource("inputs[0].url", "a.png", "s3://bucket/a.png"))
    assert message.startswith("inputs[0].url: s3:// inputs need storage credentials")
    assert "S3 settings" in message and "s3Config" in message


async def test_s3_reader_errors_go_through_and_files_are_removed(stage: Stage, tmp_path: Path) -> None:
    s3 = FakeS3({("b", "a.png"): PNG})
    sources = [
        InputSource("inputs[0].url", "a.png", "s3://b/a.png"),
        InputSource("inputs[1].url", "x/missing.png", "s3://b/missing.png"),
    ]
    message = await stage_error(stage, *sources, s3=s3)
    assert message == "inputs[1].url: s3://b/missing.png does not exist"
    assert files_under(tmp_path / "job") == []


async def test_s3_reads_have_the_download_timeout(tmp_path: Path) -> None:
    fetcher = InputFetcher(limit=LIMIT, timeout=0.2)
    with pytest.raises(InvalidInputError) as caught:
        await stage_inputs(
            [InputSource("inputs[0].url", "a.png", "s3://b/a.png")],
            tmp_path / "job",
            fetcher=fetcher,
            s3=FakeS3({("b", "a.png"): PNG}, delay=5),
        )
    assert caught.value.message == "inputs[0].url: reading s3://b/a.png did not finish within 0.2 s"
    assert files_under(tmp_path / "job") == []


@pytest.mark.parametrize("value", ["s3://bucket", "s3://bucket/", "s3:///key"])
async def test_s3_urls_need_a_bucket_and_a_key(stage: Stage, value: str) -> None:
    message = await stage_error(stage, InputSource("inputs[0].url", "a.png", value), s3=FakeS3({}))
    assert (
        message.startswith("inputs[0].url: ")
        and "is not an S3 object; write s3://bucket/path/to/key" in message
    )


async def test_s3_objects_over_the_cap_are_refused(stage: Stage) -> None:
    s3 = FakeS3({("b", "a.bin"): b"x" * (LIMIT + 1)})
    message = await stage_error(stage, InputSource("inputs[0].url", "a.bin", "s3://b/a.bin"), s3=s3)
    assert message == "inputs[0].url is 50.0 kB, more than the 50.0 kB allowed (MAX_INPUT_BYTES)"


# --- Names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../a.png", "/etc/a.png", "a//b.png", "a/./b.png", "", "a\\b.png"])
async def test_names_must_stay_inside_the_job_folder(stage: Stage, name: str, tmp_path: Path) -> None:
    message = await stage_error(stage, InputSource("inputs[0].data", name, b64(PNG)))
    assert "must be a file name, optionally below relative folders, inside the job's input folder" in message
    assert not (tmp_path / "a.png").exists()


async def test_names_that_collide_are_refused(stage: Stage) -> None:
    message = await stage_error(
        stage, InputSource("images[0].image", "a.png", b64(PNG)), InputSource("image", "a.png", b64(PNG))
    )
    assert message == "image is stored as 'a.png', as images[0].image is"
    message = await stage_error(
        stage,
        InputSource("inputs[0].data", "m", b64(PNG)),
        InputSource("inputs[1].data", "m/a.png", b64(PNG)),
    )
    assert message == "inputs[0].data is stored as 'm', which inputs[1].data needs as a folder"


# --- Content fits the name ----------------------------------------------------------------------------


async def test_content_that_does_not_fit_its_name_is_refused(
    stage: Stage, server: FileServer, tmp_path: Path
) -> None:
    sources = [
        InputSource("inputs[0].data", "a.png", b64(PNG)),
        InputSource("inputs[2].url", "clip.mp4", server.url("/file/img.png")),
    ]
    message = await stage_error(stage, *sources)
    assert message == "inputs[2].name 'clip.mp4' holds a PNG image, not an MP4 video"
    assert files_under(tmp_path / "job") == []
    message = await stage_error(stage, InputSource("images[0].image", "input.png", b64(JPEG)))
    assert message == "images[0].name 'input.png' holds a JPEG image, not a PNG image"
    message = await stage_error(stage, InputSource("image", "image.png", b64(b"<!DOCTYPE html><p>denied")))
    assert message == "image (stored as 'image.png') holds an HTML page, not a PNG image"
    message = await stage_error(stage, InputSource("inputs[0].data", "masks/m.webp", b64(b"\x00\x01\x02")))
    assert message == "inputs[0].name 'm.webp' holds data of an unknown type, not a WEBP image"


async def test_type_check_can_be_left_off_and_unknown_extensions_are_not_checked(stage: Stage) -> None:
    staged = await stage(
        InputSource("images[0].image", "input.png", b64(JPEG), check_type=False),
        InputSource("inputs[0].data", "weights.safetensors", b64(b"anything")),
    )
    assert [s.path.read_bytes() for s in staged] == [JPEG, b"anything"]


async def test_json_inputs_must_parse(stage: Stage) -> None:
    staged = await stage(InputSource("inputs[0].data", "pose.json", "data:," + json.dumps({"a": [1, 2]})))
    assert json.loads(staged[0].path.read_bytes()) == {"a": [1, 2]}
    message = await stage_error(stage, InputSource("inputs[1].data", "bad.json", b64(b'{"a": ')))
    assert message.startswith("inputs[1].name 'bad.json' is not valid JSON (Expecting value")
    message = await stage_error(stage, InputSource("inputs[2].data", "image.json", b64(PNG)))
    assert message == "inputs[2].name 'image.json' holds a PNG image, not JSON"


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


def _ogg(codec: bytes) -> bytes:
    return b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13" + codec + b"\x00" * 32


# One sample of each checked type, with the extensions it fits.
SAMPLES: list[tuple[str, bytes, set[str]]] = [
    ("a PNG image", PNG, {".png"}),
    ("a JPEG image", JPEG, {".jpg", ".jpeg"}),
    ("a WEBP image", image_bytes("WEBP"), {".webp"}),
    ("a GIF image", image_bytes("GIF"), {".gif"}),
    ("a BMP image", image_bytes("BMP"), {".bmp"}),
    ("a TIFF image", image_bytes("TIFF"), {".tif", ".tiff"}),
    (
        "an MP4 video",
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41",
        {".mp4", ".mov", ".m4v", ".m4a"},
    ),
    ("a QuickTime movie", b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", {".mp4", ".mov", ".m4v", ".m4a"}),
    (
        "an M4A audio file",
        b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isom",
        {".mp4", ".mov", ".m4v", ".m4a"},
    ),
    ("a WEBM video", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", {".webm", ".mkv"}),
    (
        "a Matroska (MKV) video",
        b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska",
        {".webm", ".mkv"},
    ),
    ("an AVI video", b"RIFF\x24\x00\x00\x00AVI LIST", {".avi"}),
    ("a WAV audio file", _wav(), {".wav"}),
    ("an MP3 audio file", b"\xff\xfb\x90\x64" + b"\x00" * 60, {".mp3"}),
    ("an MP3 audio file", b"ID3\x04\x00\x00\x00\x00\x00\x05TALB\x00\xff\xfb\x90\x64\x00\x00", {".mp3"}),
    ("a FLAC audio file", b"fLaC\x00\x00\x00\x22" + b"\x00" * 34, {".flac"}),
    ("a FLAC audio file", b"ID3\x03\x00\x00\x00\x00\x00\x02\x00\x00fLaC\x00\x00\x00\x22", {".flac"}),
    ("an Ogg Opus audio file", _ogg(b"OpusHead"), {".ogg", ".opus"}),
    ("an Ogg Vorbis audio file", _ogg(b"\x01vorbis"), {".ogg", ".opus"}),
    ("a GLB 3D model", b"glTF\x02\x00\x00\x00\x0c\x00\x00\x00", {".glb"}),
]


@pytest.mark.parametrize(
    ("label", "data", "fits"), SAMPLES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)]
)
def test_each_checked_type_is_recognised_and_fits_only_its_extensions(
    tmp_path: Path, label: str, data: bytes, fits: set[str]
) -> None:
    path = tmp_path / "sample"
    path.write_bytes(data)
    for extension in sorted(checked_extensions()):
        mismatch = content_mismatch(f"x{extension.upper()}", path)
        if extension in fits:
            assert mismatch is None, extension
        elif extension == ".json":
            assert mismatch == f"holds {label}, not JSON"
        else:
            assert mismatch is not None and mismatch.startswith(f"holds {label}, not "), (extension, mismatch)


def label(head: bytes) -> str | None:
    found = sniff(head)
    return found.label if found else None


def test_sniffing_recognises_what_else_people_send() -> None:
    assert sniff(b"") is None
    assert sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1") == sniff(b"\x00\x00\x00\x18ftypheic")
    assert label(b"\x00\x00\x00\x1cftypavif") == "a HEIF/AVIF image"
    assert label(b"<?xml version='1.0'?><svg xmlns=''/>") == "an SVG image"
    assert label(b"%PDF-1.7") == "a PDF document"
    assert label("caf\u00e9".encode()[:4]) == "text"
    assert sniff(b"\xff\xf1\x50\x80") is None  # AAC (ADTS), not MP3


async def test_a_full_disk_names_the_field_and_the_free_space(
    stage: Stage, server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FullFile(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    create = staging._Written.create

    def create_on_a_full_disk(self: Any, path: Path) -> Any:
        create(self, path).close()
        return FullFile()

    monkeypatch.setattr(staging._Written, "create", create_on_a_full_disk)
    with pytest.raises(DiskFullError) as caught:
        await stage(InputSource("inputs[0].url", "a.png", server.url("/file/img.png")))
    assert re.fullmatch(
        r"inputs\[0\]\.url \(a\.png\) could not be stored: the worker's disk is full \(\d+ MB free\)",
        caught.value.message,
    )
    assert files_under(tmp_path / "job") == []
