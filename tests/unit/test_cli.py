"""The comfy-serverless command: convert an editor workflow, list templates, print their schemas."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_serverless.cli import main
from tests.support.reference import REFERENCE, object_info_raw, workflow

OBJECT_INFO = REFERENCE / "transcripts" / "object_info.json"
EDITOR = {
    "version": 0.4,
    "nodes": [
        {
            "id": 4,
            "type": "EmptyImage",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [7]}],
            "properties": {},
            "widgets_values": [32, 16, 1, 255],
        },
        {
            "id": 9,
            "type": "SaveImage",
            "title": "Result",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 7}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["cli"],
        },
    ],
    "links": [[7, 4, 0, 9, 0, "IMAGE"]],
}


@pytest.fixture
def object_info_server() -> Iterator[str]:
    body = json.dumps(object_info_raw()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path == "/object_info" else 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if code == 200:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _convert(tmp_path: Path, capsys: pytest.CaptureFixture[str], *source: str) -> tuple[int, str, str]:
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(EDITOR))
    status = main(["convert", str(path), *source])
    out, err = capsys.readouterr()
    return status, out, err


def test_convert_prints_the_api_prompt_from_a_saved_object_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _convert(tmp_path, capsys, "--object-info", str(OBJECT_INFO))
    assert status == 0 and err == ""
    prompt = json.loads(out)
    assert prompt["4"]["inputs"] == {"width": 32, "height": 16, "batch_size": 1, "color": 255}
    assert prompt["9"] == {
        "inputs": {"filename_prefix": "cli", "images": ["4", 0]},
        "class_type": "SaveImage",
        "_meta": {"title": "Result"},
    }


def test_convert_reads_object_info_from_a_running_comfyui(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], object_info_server: str
) -> None:
    status, out, _ = _convert(tmp_path, capsys, "--comfy-url", object_info_server)
    assert status == 0
    assert json.loads(out)["9"]["inputs"]["images"] == ["4", 0]


def test_convert_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _convert(tmp_path, capsys, "--comfy-url", "http://127.0.0.1:9")
    assert status == 1 and out == ""
    assert "cannot read http://127.0.0.1:9/object_info" in err
    broken = json.loads(json.dumps(EDITOR))
    broken["nodes"][1]["type"] = "SaveEverything"
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    assert main(["convert", str(tmp_path / "bad.json"), "--object-info", str(OBJECT_INFO)]) == 1
    assert "node 9 ('SaveEverything')" in capsys.readouterr().err


def test_convert_passes_an_api_workflow_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "api.json").write_text(json.dumps(workflow("tiny_image")))
    assert main(["convert", str(tmp_path / "api.json"), "--object-info", str(OBJECT_INFO)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == workflow("tiny_image")
    assert "already in API format" in err


def test_templates_lists_names_and_parameters_and_prints_a_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 0
    listing = capsys.readouterr().out
    assert "ltx2_t2v" in listing and "LTX-2 text to video" in listing
    assert "prompt:string, negative_prompt?:string, duration?:number" in listing
    assert main(["templates", "sdxl_t2i"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["template"] == {"const": "sdxl_t2i", "description": "The template's name."}
    assert main(["templates", "nope"]) == 1
    assert "there is no template 'nope' (available: flux1_schnell_t2i" in capsys.readouterr().err
