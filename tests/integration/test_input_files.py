"""Files of every kind reach ComfyUI's loader nodes through ``inputs``: base64, data: URIs and URLs,
below subfolders; what does not fit is refused with the entry at fault, and nothing stays on disk."""

from __future__ import annotations

import base64
import http.server
import io
import struct
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .helpers import assert_completed, assert_failed, assert_rgb_close, decode_image, png_b64, tiny

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "media"
# six_frames_64x48.mp4: H.264, 8 fps, six flat frames in these colours (made with PyAV).
VIDEO_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def wav_bytes(rate: int, channels: int, frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(
            b"".join(struct.pack("<h", (i * 97) % 20000 - 10000) for i in range(frames * channels))
        )
    return buffer.getvalue()


def flac_stream_info(data: bytes) -> tuple[int, int, int]:
    """(sample rate, channels, total samples) from a FLAC file's STREAMINFO block."""
    assert data[:4] == b"fLaC", data[:16]
    assert data[4] & 0x7F == 0, "STREAMINFO must come first"
    packed = int.from_bytes(data[8 + 10 : 8 + 18], "big")
    return packed >> 44, ((packed >> 41) & 0x7) + 1, packed & ((1 << 36) - 1)


def rgba_png(size: tuple[int, int], colour: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves a folder on 127.0.0.1; /slow sends one byte and then nothing for a long time."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/slow"):
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(20)
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def leftover_inputs(worker: Any) -> list[Path]:
    return [p for p in (worker.data_dir / "input").rglob("*") if p.is_file()]


def test_image_mask_and_audio_inputs_reach_their_loaders(make_worker, backend, file_server) -> None:
    backend.require("LoadImageMask", "MaskToImage", "LoadAudio", "SaveAudio")
    url, served = file_server
    (served / "photo.png").write_bytes(base64.b64decode(png_b64(40, 30, (10, 20, 30))))
    # Only the listed host is opened; everything else private stays refused.
    worker = make_worker(input_url_allowed_hosts="127.0.0.1")
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "photo"}},
        "4": {"class_type": "LoadImageMask", "inputs": {"image": "masks/m.png", "channel": "red"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "mask"}},
        "7": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
        "8": {"class_type": "SaveAudio", "inputs": {"audio": ["7", 0], "filename_prefix": "voice"}},
    }
    wav = wav_bytes(8000, 1, 4000)
    job = {
        "workflow": workflow,
        "inputs": [
            {"name": "photo.png", "url": url + "/photo.png?sig=secret-token"},
            {
                "name": "m.png",
                "subfolder": "masks",
                "data": base64.b64encode(rgba_png((16, 8), (77, 0, 0, 255))).decode(),
            },
            {"name": "voice.wav", "data": "data:audio/wav;base64," + base64.b64encode(wav).decode()},
        ],
    }
    output = assert_completed(worker.runsync(job))
    by_node = {item["node_id"]: item for item in output["outputs"]}
    photo = decode_image(by_node["3"])
    assert photo.size == (40, 30)
    assert_rgb_close(photo.convert("RGB").getpixel((5, 5)), (245, 235, 225))
    mask = decode_image(by_node["6"])
    assert mask.size == (16, 8)
    assert_rgb_close(mask.convert("RGB").getpixel((3, 3)), (77, 77, 77))
    assert by_node["8"]["type"] == "audio"
    assert flac_stream_info(base64.b64decode(by_node["8"]["data"])) == (8000, 1, 4000)
    assert leftover_inputs(worker) == []
    assert "secret-token" not in worker.log_text()


def test_a_video_input_reaches_load_video(worker, backend) -> None:
    if not backend.is_real:
        pytest.skip("the emulator's LoadVideo does not decode files; this checks what ComfyUI reads")
    backend.require("LoadVideo", "GetVideoComponents")
    job = {
        "workflow": {
            "1": {"class_type": "LoadVideo", "inputs": {"file": "clips/six.mp4"}},
            "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "frame"}},
        },
        "inputs": [
            {
                "name": "six.mp4",
                "subfolder": "clips",
                "data": base64.b64encode((FIXTURES / "six_frames_64x48.mp4").read_bytes()).decode(),
            }
        ],
    }
    output = assert_completed(worker.runsync(job))
    frames = [decode_image(item).convert("RGB") for item in output["outputs"]]
    assert [frame.size for frame in frames] == [(64, 48)] * 6
    for frame, colour in zip(frames, VIDEO_COLOURS, strict=True):
        actual = frame.getpixel((32, 24))
        assert all(abs(a - e) <= 12 for a, e in zip(actual, colour, strict=True)), (actual, colour)


def test_content_that_does_not_fit_its_name_is_refused_and_nothing_stays(worker) -> None:
    job = {
        "workflow": tiny(),
        "inputs": [
            {"name": "ok.png", "data": png_b64()},
            {"name": "clip.mp4", "data": png_b64()},
        ],
    }
    assert_failed(worker.runsync(job), "inputs[1].name 'clip.mp4' holds a PNG image, not an MP4 video")
    assert leftover_inputs(worker) == []
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_unreachable_and_refused_urls_name_the_entry(make_worker, file_server, emulator_only) -> None:
    url, served = file_server
    (served / "empty.png").write_bytes(b"")
    worker = make_worker(input_url_allowed_hosts="127.0.0.1", input_download_timeout=2, max_input_bytes=5000)
    (served / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 6000)

    def failing(entry: dict[str, str]) -> str:
        return assert_failed(worker.runsync({"workflow": tiny(), "inputs": [{"name": "a.png", **entry}]}))

    assert "inputs[0].url" in (error := failing({"url": url + "/missing.png?key=k1"}))
    assert "HTTP 404" in error and "k1" not in error
    assert "inputs[0].url" in (error := failing({"url": url + "/empty.png"})) and "empty" in error
    error = failing({"url": url + "/big.png"})
    assert "inputs[0].url" in error and "5.0 kB" in error
    error = failing({"url": url + "/slow"})
    assert "inputs[0].url" in error and "2 s" in error
    # Not allow-listed: 127.0.0.2 is loopback too, and stays refused.
    error = failing({"url": url.replace("127.0.0.1", "127.0.0.2") + "/photo.png"})
    assert "inputs[0].url: refusing to fetch" in error
    assert "inputs[0].url: refusing to fetch" in failing({"url": "http://[::ffff:169.254.169.254]/latest"})
    assert leftover_inputs(worker) == []
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_inputs_reach_an_attached_comfyui_through_its_upload_route(
    emulator_only, make_worker, running_comfyui
) -> None:
    url, folders, _ = running_comfyui
    worker = make_worker(comfyui_url=url)  # no COMFYUI_INPUT_DIR: the files go through /upload/image
    job = {
        "workflow": {
            "1": {"class_type": "LoadImage", "inputs": {"image": "sub/dir/in.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}},
        },
        "inputs": [{"name": "in.png", "subfolder": "sub/dir", "data": png_b64(12, 10, (1, 2, 3))}],
    }
    output = assert_completed(worker.runsync(job))
    assert decode_image(output["outputs"][0]).size == (12, 10)
    uploaded = [p.relative_to(folders / "input") for p in (folders / "input").rglob("*.png")]
    assert len(uploaded) == 1 and uploaded[0].parts[1:] == ("sub", "dir", "in.png")
    assert uploaded[0].parts[0].startswith("job-")
    # The worker's own staging copy is gone.
    assert [p for p in (worker.data_dir / "scratch").rglob("*") if p.is_file()] == []


def test_a_refused_upload_names_the_input(emulator_only, make_worker, running_comfyui) -> None:
    url, _, faults = running_comfyui
    assert faults is not None
    worker = make_worker(comfyui_url=url)
    faults.set(disk_full=True)
    job = {"workflow": tiny(), "inputs": [{"name": "up.png", "data": png_b64()}]}
    assert_failed(
        worker.runsync(job), "ComfyUI refused inputs[0].data (up.png): HTTP 500", "disk may be full"
    )
    faults.clear()
    assert_completed(worker.runsync(job))
