"""Attach mode (COMFYUI_URL: use a ComfyUI the worker did not start) and URL inputs."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.support.reference import workflow
from tests.support.worker_process import free_port

from .helpers import assert_completed, assert_failed, assert_rgb_close, decode_image, png_b64, tiny


def test_attach_mode_with_known_folders_reads_and_cleans_them(make_worker, running_comfyui) -> None:
    url, folders, _ = running_comfyui
    worker = make_worker(
        comfyui_url=url,
        comfyui_input_dir=folders / "input",
        comfyui_output_dir=folders / "output",
        comfyui_temp_dir=folders / "temp",
    )
    job = {"workflow": workflow("load_invert"), "images": [{"name": "anchor_input.png", "image": png_b64()}]}
    output = assert_completed(worker.runsync(job))
    assert decode_image(output["outputs"][0]).size == (32, 24)
    assert [p for p in folders.rglob("*") if p.is_file()] == []


def test_attach_mode_without_folders_downloads_through_view(
    make_worker, running_comfyui, emulator_only
) -> None:
    url, _, _ = running_comfyui
    worker = make_worker(comfyui_url=url)
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert decode_image(output["outputs"][0]).size == (64, 64)
    assert "job files cannot be removed" in worker.log_text()


def test_attach_mode_reports_an_unreachable_comfyui(make_worker, emulator_only) -> None:
    worker = make_worker(comfyui_url=f"http://127.0.0.1:{free_port()}", comfyui_boot_timeout=2)
    assert_failed(worker.runsync({"workflow": tiny()}), "did not become ready within 2 s")


@pytest.fixture
def image_server(tmp_path) -> Iterator[str]:
    (tmp_path / "img.png").write_bytes(base64.b64decode(png_b64(color=(1, 2, 3))))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "/img.png")
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_input_is_downloaded_when_private_urls_are_allowed(
    make_worker, image_server, emulator_only
) -> None:
    worker = make_worker(allow_private_input_urls=True)
    wf = workflow("load_invert")
    job = {
        "workflow": wf,
        "images": [{"name": "anchor_input.png", "image": image_server + "/redirect?token=abc"}],
    }
    output = assert_completed(worker.runsync(job))
    assert_rgb_close(decode_image(output["outputs"][0]).convert("RGB").getpixel((0, 0)), (254, 253, 252))
    missing = {
        "workflow": wf,
        "images": [{"name": "anchor_input.png", "image": image_server + "/nope.png?token=abc"}],
    }
    error = assert_failed(
        worker.runsync(missing), "images[0].image: downloading", "/nope.png answered HTTP 404"
    )
    assert "token=abc" not in error


def test_url_input_to_loopback_is_refused_by_default(worker, image_server) -> None:
    job = {
        "workflow": workflow("load_invert"),
        "images": [{"name": "anchor_input.png", "image": image_server + "/img.png"}],
    }
    assert_failed(worker.runsync(job), "images[0].image: refusing to fetch", "not a public address")
